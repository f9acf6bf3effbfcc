//! The `switchyard` binary: a thin dispatcher over `switchyard_controller::cli`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchyard_controller::cli;
use switchyard_controller::cli::logging::LogFormat;
use switchyard_controller::cli::ops::{self, Output, Switch};
use switchyard_controller::cli::remote;

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
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Show the page of events before this one (the cursor the
        /// previous page printed), to page back through history.
        #[arg(long, value_name = "CURSOR")]
        before: Option<String>,
    },
    /// Print history events as they are written, until interrupted.
    Watch {
        #[command(flatten)]
        target: Target,
    },
    /// Pause automation: plans are computed and shown, nothing is executed.
    Pause {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        why: Why,
    },
    /// Resume automation.
    Resume {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        why: Why,
    },
    /// Take a region out of traffic whatever its health.
    Drain {
        #[command(flatten)]
        target: Target,
        /// The region to drain.
        #[arg(long)]
        region: String,
        #[command(flatten)]
        why: Why,
    },
    /// Give a drained region back to the engine.
    Undrain {
        #[command(flatten)]
        target: Target,
        /// The region to undrain.
        #[arg(long)]
        region: String,
        #[command(flatten)]
        why: Why,
    },
    /// Approve the manual failback of a recovered region: its traffic ramps
    /// back in steps from now on.
    Failback {
        #[command(flatten)]
        target: Target,
        /// The recovered region.
        #[arg(long)]
        region: String,
        #[command(flatten)]
        why: Why,
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
        /// writes (powered off, fenced by hand); history records it. Needs
        /// the admin role.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        request: RequestArgs,
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
        #[command(flatten)]
        request: RequestArgs,
    },
    /// Withdraw a failover or switchover the leader has not started (one
    /// waiting at the promotion gate, say).
    Cancel {
        #[command(flatten)]
        target: Target,
        /// The request's id, as `failover`/`switchover` printed it.
        #[arg(long)]
        id: String,
        #[command(flatten)]
        why: Why,
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
    /// Output format (JSON: `status` prints the lab's state, `lab.json`;
    /// the other verbs one object `{"command", "ok", "output"}`).
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
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

/// Which cluster an operator command talks to, as whom, and how it prints.
/// Commands go to a controller's operator API: the operator's machine
/// needs a token, not etcd access.
#[derive(clap::Args, Debug)]
struct Target {
    /// The cluster's config file: its controllers' addresses, and `[tls]`
    /// for mutual TLS (its certificate and key are this CLI's).
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    config: Option<PathBuf>,
    /// A controller's gRPC URL or `host:port` (repeat, or comma-separate in
    /// SWITCHYARD_SERVER); tried in order. Default: the config's
    /// `[[controllers]]`.
    #[arg(long = "server", env = "SWITCHYARD_SERVER", value_delimiter = ',')]
    servers: Vec<String>,
    /// The file holding this operator's token (else the token itself in
    /// SWITCHYARD_TOKEN; never on the command line).
    #[arg(long, env = "SWITCHYARD_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// The CA of the controllers' certificates, instead of the config's
    /// `[tls]`.
    #[arg(long, env = "SWITCHYARD_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// This operator's client certificate for mutual TLS (with --ca-file).
    #[arg(long, env = "SWITCHYARD_CERT_FILE")]
    cert_file: Option<PathBuf>,
    /// Its private key.
    #[arg(long, env = "SWITCHYARD_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

impl Target {
    fn remote(&self) -> Result<cli::client::Remote, ops::OpsError> {
        cli::client::Remote::from_args(&cli::client::ApiArgs {
            config: self.config.clone(),
            servers: self.servers.clone(),
            token_file: self.token_file.clone(),
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
        })
    }
}

/// Why a change is made: required, recorded in history with who made it.
#[derive(clap::Args, Debug)]
struct Why {
    /// Why you make this change (one line; recorded in history).
    #[arg(long)]
    reason: String,
}

/// How a failover or switchover is asked for and waited on.
#[derive(clap::Args, Debug)]
struct RequestArgs {
    #[command(flatten)]
    why: Why,
    /// The primary you expect to replace: the leader refuses the request
    /// if the primary is another by the time it would act (default: the
    /// one recorded when the request is written).
    #[arg(long)]
    expect_primary: Option<String>,
    /// The leader drops the request if it has not started it by then.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
    deadline: std::time::Duration,
    /// Seconds to wait for the outcome.
    #[arg(long, default_value_t = 120)]
    wait: u64,
}

impl RequestArgs {
    fn options(self) -> remote::RequestOptions {
        remote::RequestOptions {
            reason: self.why.reason,
            expect_primary: self.expect_primary,
            deadline: self.deadline,
            wait: std::time::Duration::from_secs(self.wait),
        }
    }
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
        Command::Status { target } => ops_command(async move {
            remote::status(&target.remote()?, target.output, &mut std::io::stdout()).await
        })?,
        Command::Plan { target } => ops_command(async move {
            remote::plan(&target.remote()?, target.output, &mut std::io::stdout()).await
        })?,
        Command::History {
            target,
            limit,
            before,
        } => ops_command(async move {
            remote::history(
                &target.remote()?,
                limit,
                before.as_deref(),
                target.output,
                &mut std::io::stdout(),
            )
            .await
        })?,
        Command::Watch { target } => ops_command(async move {
            remote::watch(&target.remote()?, target.output, &mut std::io::stdout()).await
        })?,
        Command::Pause { target, why } => switch(target, Switch::Pause, why)?,
        Command::Resume { target, why } => switch(target, Switch::Resume, why)?,
        Command::Drain {
            target,
            region,
            why,
        } => switch(target, Switch::Drain(region), why)?,
        Command::Undrain {
            target,
            region,
            why,
        } => switch(target, Switch::Undrain(region), why)?,
        Command::Failback {
            target,
            region,
            why,
        } => switch(target, Switch::Failback(region), why)?,
        Command::Failover {
            target,
            database,
            to,
            force,
            request,
        } => ops_code(async move {
            remote::request(
                &target.remote()?,
                ops::DbRequest::Failover {
                    database,
                    to,
                    force,
                },
                request.options(),
                target.output,
                &mut std::io::stdout(),
            )
            .await
        })?,
        Command::Switchover {
            target,
            database,
            to,
            request,
        } => ops_code(async move {
            remote::request(
                &target.remote()?,
                ops::DbRequest::Switchover { database, to },
                request.options(),
                target.output,
                &mut std::io::stdout(),
            )
            .await
        })?,
        Command::Cancel { target, id, why } => ops_code(async move {
            remote::cancel(
                &target.remote()?,
                &id,
                &why.reason,
                target.output,
                &mut std::io::stdout(),
            )
            .await
        })?,
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

/// Runs a lab verb; its error is printed plainly (exit 1), or as JSON.
fn lab_verb(verb: LabVerb) -> anyhow::Result<i32> {
    use switchyard_controller::lab::{daemon, verbs};
    let (name, output) = match &verb {
        LabVerb::Up { dir } => ("up", dir.output),
        LabVerb::Status { dir } => ("status", dir.output),
        LabVerb::Fail { dir, .. } => ("fail", dir.output),
        LabVerb::Partition { dir, .. } => ("partition", dir.output),
        LabVerb::Heal { dir, .. } => ("heal", dir.output),
        LabVerb::RenewCerts { dir, .. } => ("renew-certs", dir.output),
        LabVerb::Down { dir, .. } => ("down", dir.output),
        LabVerb::Serve { dir } => ("serve", dir.output),
    };
    if output == Output::Json {
        return lab_verb_json(name, verb);
    }
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

/// A lab verb with `--output json`: `status` prints `lab.json`; the others
/// one object with what they would have printed.
fn lab_verb_json(name: &str, verb: LabVerb) -> anyhow::Result<i32> {
    use switchyard_controller::lab::verbs;
    let mut text = Vec::new();
    let result = match verb {
        LabVerb::Status { dir } => {
            let state = verbs::status(&dir.dir, &mut text)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    std::fs::read_to_string(dir.dir.join(verbs::STATE))
                        .map_err(|e| format!("{}: {e}", dir.dir.join(verbs::STATE).display()))
                });
            match state {
                Ok(json) => {
                    println!("{}", json.trim_end());
                    return Ok(0);
                }
                Err(e) => Err(e),
            }
        }
        LabVerb::Up { dir } => verbs::up(&dir.dir, &mut text).map_err(|e| e.to_string()),
        LabVerb::Fail { region, only, dir } => {
            verbs::fail(&dir.dir, &region, &only, &mut text).map_err(|e| e.to_string())
        }
        LabVerb::Partition { region, dir } => {
            verbs::partition(&dir.dir, &region, &mut text).map_err(|e| e.to_string())
        }
        LabVerb::Heal { region, dir } => {
            verbs::heal(&dir.dir, &region, &mut text).map_err(|e| e.to_string())
        }
        LabVerb::RenewCerts { days, dir } => {
            verbs::renew_certs(&dir.dir, days, &mut text).map_err(|e| e.to_string())
        }
        LabVerb::Down { dir, purge } => {
            verbs::down(&dir.dir, purge, &mut text).map_err(|e| e.to_string())
        }
        LabVerb::Serve { .. } => Err("serve has no JSON form: it is the lab's server".into()),
    };
    let output = String::from_utf8_lossy(&text).into_owned();
    let (ok, output) = match result {
        Ok(()) => (true, output),
        Err(e) => (false, format!("{output}error: {e}")),
    };
    println!(
        "{}",
        serde_json::json!({ "command": format!("lab {name}"), "ok": ok, "output": output })
    );
    Ok(if ok { 0 } else { 1 })
}

/// Runs a switch through the operator API.
fn switch(target: Target, which: Switch, why: Why) -> anyhow::Result<i32> {
    ops_command(async move {
        remote::switch(
            &target.remote()?,
            which,
            &why.reason,
            target.output,
            &mut std::io::stdout(),
        )
        .await
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
