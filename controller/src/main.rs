//! The `switchyard` binary: a thin dispatcher over `switchyard_controller::cli`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchyard_controller::cli;
use switchyard_controller::cli::logging::LogFormat;
use switchyard_controller::cli::ops::{self, Output, Switch};

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
        /// Embedded DNS listen address (UDP and TCP), overriding the config.
        #[arg(long)]
        dns_listen: Option<SocketAddr>,
        /// Where the controller keeps local state that must survive etcd
        /// being unreachable (the record of fences done while isolated).
        /// Default: `$STATE_DIRECTORY` (systemd), else
        /// `/var/lib/switchyard/<id>`.
        #[arg(long)]
        state_dir: Option<std::path::PathBuf>,
    },
    /// Show the leader, region states, traffic weights and pending intents.
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// Show what the engine would do now and why (also while paused), the
    /// failovers the promotion gate holds, and the standing alarms.
    Plan {
        #[command(flatten)]
        target: Target,
    },
    /// Show what was done, by whom and why (newest last).
    History {
        #[command(flatten)]
        target: Target,
        /// How many events (one page; read in one small request however
        /// long the history is).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Show the page of events before this one (the cursor the
        /// previous page printed), to page back through history.
        #[arg(long, value_name = "CURSOR")]
        before: Option<String>,
    },
    /// Pause automation: plans are computed and shown, nothing is executed.
    Pause {
        #[command(flatten)]
        target: Target,
    },
    /// Resume automation.
    Resume {
        #[command(flatten)]
        target: Target,
    },
    /// Take a region out of traffic whatever its health.
    Drain {
        #[command(flatten)]
        target: Target,
        /// The region to drain.
        #[arg(long)]
        region: String,
    },
    /// Give a drained region back to the engine.
    Undrain {
        #[command(flatten)]
        target: Target,
        /// The region to undrain.
        #[arg(long)]
        region: String,
    },
    /// Approve the manual failback of a recovered region: its traffic ramps
    /// back in steps from now on.
    Failback {
        #[command(flatten)]
        target: Target,
        /// The recovered region.
        #[arg(long)]
        region: String,
    },
    /// Replace a database's primary now (unplanned); the leader runs it.
    Failover {
        #[command(flatten)]
        target: Target,
        /// The database.
        #[arg(long)]
        database: String,
        /// The member to promote (default: the best candidate).
        #[arg(long)]
        to: Option<String>,
        /// Promote against the candidate rules (lag, must_not, divergence)
        /// and skip the promotion gate: do not wait for the old primary's
        /// lease to expire. Only when you know the old primary cannot take
        /// writes (powered off, fenced by hand); history records it.
        #[arg(long)]
        force: bool,
        /// Seconds to wait for the outcome.
        #[arg(long, default_value_t = 120)]
        wait: u64,
    },
    /// Move a database's primary with zero loss (planned); the leader runs it.
    Switchover {
        #[command(flatten)]
        target: Target,
        /// The database.
        #[arg(long)]
        database: String,
        /// The member to promote.
        #[arg(long)]
        to: String,
        /// Seconds to wait for the outcome.
        #[arg(long, default_value_t = 120)]
        wait: u64,
    },
    /// Run one regional probe: check every region's targets from this
    /// region and stream the results to every controller.
    Probe {
        /// The config file (the same file for every controller and probe).
        #[arg(long)]
        config: PathBuf,
        /// The region (or witness) this probe runs in: its vantage.
        #[arg(long)]
        region: String,
        /// Stable probe id (default `<region>@<hostname>`).
        #[arg(long)]
        id: Option<String>,
        /// A controller's gRPC URL, overriding the config's listen addresses
        /// (repeat for each controller).
        #[arg(long = "controller")]
        controllers: Vec<String>,
        /// Source address for network checks.
        #[arg(long)]
        source_address: Option<std::net::IpAddr>,
        /// Serve Prometheus metrics on `/metrics` at this address (port 0:
        /// any free port; the bound address is printed). Off when absent.
        #[arg(long)]
        metrics_listen: Option<SocketAddr>,
    },
    /// Run a whole three-region deployment on this machine. Alone: show it
    /// fail over, then run until Ctrl-C. With a verb: run it in the
    /// background and break, heal and inspect it (`lab up --dir D`).
    #[command(args_conflicts_with_subcommands = true)]
    Lab {
        /// Exit after the demonstration instead of running until Ctrl-C.
        #[arg(long)]
        demo: bool,
        #[command(subcommand)]
        verb: Option<LabVerb>,
    },
}

/// Where a background lab keeps its state.
#[derive(clap::Args, Debug)]
struct LabDirArg {
    /// The lab's directory: config, logs, addresses (`lab.json`), control
    /// socket. `up` creates it, or takes an empty one.
    #[arg(long, env = "SWITCHYARD_LAB_DIR")]
    dir: PathBuf,
}

#[derive(Subcommand, Debug)]
enum LabVerb {
    /// Start the lab in the background; returns once a controller leads.
    Up {
        #[command(flatten)]
        dir: LabDirArg,
    },
    /// What runs where, what is failed, who leads.
    Status {
        #[command(flatten)]
        dir: LabDirArg,
    },
    /// Break a region: by default its endpoint refuses connections and its
    /// controller, probe and database member are killed; `--only` picks
    /// parts (etcd: its etcd member; network: a partition).
    Fail {
        /// us-east, eu-west or ap-south.
        region: String,
        /// Only these parts (comma-separated).
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<switchyard_controller::lab::verbs::Part>,
        #[command(flatten)]
        dir: LabDirArg,
    },
    /// Cut a region off the network: every packet in or out of its
    /// namespace is dropped (its processes keep running, as in a real
    /// partition). Needs the lab in namespaces (root).
    Partition {
        /// us-east, eu-west or ap-south.
        region: String,
        #[command(flatten)]
        dir: LabDirArg,
    },
    /// Issue every certificate of the lab again from its CA, over the same
    /// files (controllers', probes'); the processes reload them.
    RenewCerts {
        /// How long the new certificates are valid.
        #[arg(long, default_value_t = 90)]
        days: u32,
        #[command(flatten)]
        dir: LabDirArg,
    },
    /// Restart or repair whatever is failed in a region (a partition too).
    Heal {
        /// us-east, eu-west or ap-south.
        region: String,
        #[command(flatten)]
        dir: LabDirArg,
    },
    /// Stop every process of the lab (logs stay unless --purge).
    Down {
        #[command(flatten)]
        dir: LabDirArg,
        /// Also delete the directory (only one `lab up` created).
        #[arg(long)]
        purge: bool,
    },
    /// The background server `up` starts (not for direct use).
    #[command(hide = true)]
    Serve {
        #[command(flatten)]
        dir: LabDirArg,
    },
}

/// Which cluster an operator command talks to, and how it prints.
#[derive(clap::Args, Debug)]
struct Target {
    /// The cluster's config file (for etcd endpoints and the cluster name).
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    config: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Check a config file: prints `ok` and a summary, or every error with
    /// its file:line:column, and exits 1.
    Check {
        /// The TOML config file to check.
        file: PathBuf,
        /// Output format (JSON: one object, `ok` and every diagnostic).
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    switchyard_controller::tls::install_crypto_provider();
    let code = match cli.command {
        Command::Config {
            command: ConfigCommand::Check { file, output },
        } => cli::config::check(&file, output, &mut std::io::stdout().lock())?,
        Command::Controller {
            config,
            id,
            listen,
            metrics_listen,
            dns_listen,
            state_dir,
        } => {
            cli::logging::init(cli.log_format);
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(cli::controller::run(
                &config,
                cli::controller::ControllerArgs {
                    id,
                    listen,
                    metrics_listen,
                    dns_listen,
                    state_dir,
                },
            ))?
        }
        Command::Status { target } => ops_command(ops::status(
            &target.config,
            target.output,
            &mut std::io::stdout(),
        ))?,
        Command::Plan { target } => ops_command(cli::plan::plan(
            &target.config,
            target.output,
            &mut std::io::stdout(),
        ))?,
        Command::History {
            target,
            limit,
            before,
        } => ops_command(ops::history(
            &target.config,
            limit,
            before.as_deref(),
            target.output,
            &mut std::io::stdout(),
        ))?,
        Command::Pause { target } => ops_command(ops::switch(
            &target.config,
            Switch::Pause,
            target.output,
            &mut std::io::stdout(),
        ))?,
        Command::Resume { target } => ops_command(ops::switch(
            &target.config,
            Switch::Resume,
            target.output,
            &mut std::io::stdout(),
        ))?,
        Command::Drain { target, region } => ops_command(ops::switch(
            &target.config,
            Switch::Drain(region),
            target.output,
            &mut std::io::stdout(),
        ))?,
        Command::Undrain { target, region } => ops_command(ops::switch(
            &target.config,
            Switch::Undrain(region),
            target.output,
            &mut std::io::stdout(),
        ))?,
        Command::Failback { target, region } => ops_command(ops::switch(
            &target.config,
            Switch::Failback(region),
            target.output,
            &mut std::io::stdout(),
        ))?,
        Command::Failover {
            target,
            database,
            to,
            force,
            wait,
        } => ops_code(ops::request(
            &target.config,
            ops::DbRequest::Failover {
                database,
                to,
                force,
            },
            std::time::Duration::from_secs(wait),
            target.output,
            &mut std::io::stdout(),
        ))?,
        Command::Switchover {
            target,
            database,
            to,
            wait,
        } => ops_code(ops::request(
            &target.config,
            ops::DbRequest::Switchover { database, to },
            std::time::Duration::from_secs(wait),
            target.output,
            &mut std::io::stdout(),
        ))?,
        Command::Probe {
            config,
            region,
            id,
            controllers,
            source_address,
            metrics_listen,
        } => {
            cli::logging::init(cli.log_format);
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(cli::probe::run(
                &config,
                cli::probe::ProbeArgs {
                    region,
                    id,
                    controllers,
                    source_address,
                    metrics_listen,
                },
            ))?
        }
        Command::Lab { demo, verb: None } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(switchyard_controller::lab::run(
                demo,
                &mut std::io::stdout(),
            ))?
        }
        Command::Lab {
            verb: Some(verb), ..
        } => lab_verb(verb)?,
    };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// Runs a lab verb; its error is printed plainly (exit 1).
fn lab_verb(verb: LabVerb) -> anyhow::Result<i32> {
    use switchyard_controller::lab::{daemon, verbs};
    let mut out = std::io::stdout();
    let result = match verb {
        LabVerb::Up { dir } => verbs::up(&dir.dir, &mut out),
        LabVerb::Status { dir } => verbs::status(&dir.dir, &mut out),
        LabVerb::Fail { region, only, dir } => verbs::fail(&dir.dir, &region, &only, &mut out),
        LabVerb::Partition { region, dir } => verbs::partition(&dir.dir, &region, &mut out),
        LabVerb::Heal { region, dir } => verbs::heal(&dir.dir, &region, &mut out),
        LabVerb::RenewCerts { days, dir } => verbs::renew_certs(&dir.dir, days, &mut out),
        LabVerb::Down { dir, purge } => verbs::down(&dir.dir, purge, &mut out),
        LabVerb::Serve { dir } => {
            let runtime = tokio::runtime::Runtime::new()?;
            return runtime.block_on(daemon::serve(&dir.dir, &mut out));
        }
    };
    Ok(match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    })
}

/// Runs an operator command on a small runtime, printing to stdout. Its error
/// is printed plainly (exit 1); a closed stdout (`| head`) is not an error.
fn ops_command<Fut>(fut: Fut) -> anyhow::Result<i32>
where
    Fut: std::future::Future<Output = Result<(), ops::OpsError>>,
{
    ops_code(async { fut.await.map(|()| 0) })
}

/// Like [`ops_command`] for commands that choose their own exit code.
fn ops_code<Fut>(fut: Fut) -> anyhow::Result<i32>
where
    Fut: std::future::Future<Output = Result<i32, ops::OpsError>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(match runtime.block_on(fut) {
        Ok(code) => code,
        Err(ops::OpsError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    })
}
