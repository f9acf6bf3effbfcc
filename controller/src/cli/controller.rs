//! `switchyard controller --config F`: loads the config, binds its
//! listeners, prints the bound addresses on one line (harnesses read it),
//! and runs until SIGTERM or SIGINT, then resigns leadership and exits.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::operator::reload::OperatorReloader;
use crate::clock::SystemClock;
use crate::config;
use crate::runtime;

/// Overrides from the command line.
#[derive(Debug, Clone, Default)]
pub struct ControllerArgs {
    /// Which `[[controllers]]` entry this process is (optional with one).
    pub id: Option<String>,
    /// gRPC listen address instead of the config's (e.g. `127.0.0.1:0`).
    pub listen: Option<SocketAddr>,
    /// Metrics listen address instead of the config's.
    pub metrics_listen: Option<SocketAddr>,
    /// Embedded DNS listen address instead of the config's.
    pub dns_listen: Option<SocketAddr>,
    /// Local state directory (see [`state_dir`]).
    pub state_dir: Option<std::path::PathBuf>,
}

/// The local state directory: the one given, else systemd's
/// `$STATE_DIRECTORY`, else `/var/lib/switchyard/<id>`.
pub fn state_dir(given: Option<&Path>, id: &str) -> std::path::PathBuf {
    given.map(Path::to_path_buf).unwrap_or_else(|| {
        std::env::var_os("STATE_DIRECTORY")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| Path::new("/var/lib/switchyard").join(id))
    })
}

/// Runs a controller until a termination signal. Returns the exit code.
pub async fn run(path: &Path, args: ControllerArgs) -> anyhow::Result<i32> {
    let checked = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(1);
        }
    };
    for w in &checked.warnings {
        tracing::warn!("{}", w.render(path));
    }
    let cfg = checked.config;
    let me = runtime::find_controller(&cfg, args.id.as_deref())?.clone();
    // A token file that cannot be read stops the controller here, naming
    // the operator and the file.
    let operators = OperatorReloader::new(path.to_path_buf(), &cfg.operators)?;
    let grpc_addr = args.listen.unwrap_or(me.listen);
    let grpc = TcpListener::bind(grpc_addr)
        .await
        .with_context(|| format!("binding gRPC listener {grpc_addr}"))?;
    let metrics_addr = args.metrics_listen.or(me.metrics_listen);
    let metrics = match metrics_addr {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .with_context(|| format!("binding metrics listener {a}"))?,
        ),
        None => None,
    };
    let state = state_dir(args.state_dir.as_deref(), &me.id);
    std::fs::create_dir_all(&state)
        .with_context(|| format!("creating the state directory {}", state.display()))?;
    let traffic = runtime::traffic_backend(&cfg, args.dns_listen).await?;
    let grpc_bound = grpc.local_addr()?;
    let metrics_bound = metrics.as_ref().map(|l| l.local_addr()).transpose()?;
    // One line, on stdout, for people and harnesses alike.
    println!(
        "switchyard controller {} region={} grpc={} metrics={} dns={}",
        me.id,
        me.region,
        grpc_bound,
        metrics_bound.map_or_else(|| "off".to_string(), |a| a.to_string()),
        traffic
            .dns
            .map_or_else(|| "off".to_string(), |a| a.to_string()),
    );
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let operators = operators.spawn(shutdown_rx.clone());
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("termination signal received");
        shutdown_tx.send_replace(true);
    });
    runtime::run(
        cfg,
        me,
        runtime::Listeners {
            grpc,
            metrics,
            traffic,
        },
        state,
        operators,
        Arc::new(SystemClock),
        shutdown_rx,
    )
    .await?;
    Ok(0)
}

/// Resolves on SIGTERM or SIGINT.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
