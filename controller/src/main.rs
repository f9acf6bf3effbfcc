//! The `switchyard` binary: a thin dispatcher over `switchyard_controller::cli`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchyard_controller::cli;
use switchyard_controller::cli::logging::LogFormat;

/// Multi-region failover and disaster-recovery controller.
#[derive(Parser, Debug)]
#[command(name = "switchyard", version, about)]
struct Cli {
    /// Log format of long-running commands.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Work with configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Run one controller: probe ingest, leader election, decisions, actions.
    Controller {
        /// The config file (the same file for every controller and probe).
        #[arg(long)]
        config: PathBuf,
        /// Which [[controllers]] entry this is (optional when there is one).
        #[arg(long)]
        id: Option<String>,
        /// gRPC listen address, overriding the config (port 0: any free port).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Metrics listen address, overriding the config.
        #[arg(long)]
        metrics_listen: Option<SocketAddr>,
    },
    /// Run a whole multi-region deployment on this machine.
    Lab,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Check a config file: prints `ok` and a summary, or every error with
    /// its file:line:column, and exits 1.
    Check {
        /// The TOML config file to check.
        file: PathBuf,
    },
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Config {
            command: ConfigCommand::Check { file },
        } => cli::config::check(&file, &mut std::io::stdout().lock())?,
        Command::Controller {
            config,
            id,
            listen,
            metrics_listen,
        } => {
            cli::logging::init(cli.log_format);
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(cli::controller::run(
                &config,
                cli::controller::ControllerArgs {
                    id,
                    listen,
                    metrics_listen,
                },
            ))?
        }
        Command::Lab => {
            let root = std::env::current_dir()?;
            cli::lab::run(&root, &mut std::io::stdout().lock())?
        }
    };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
