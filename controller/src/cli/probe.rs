//! `switchyard probe --config F --region R`: one regional probe (or a
//! witness's, when R names a `[[witnesses]]` entry). It checks every
//! region's targets from its own vantage and streams every result to every
//! controller, until SIGTERM or SIGINT.

use std::path::Path;

use anyhow::Context as _;
use tokio::sync::watch;

use crate::config;
use crate::runtime::probe_plan::{default_probe_id, probe_plan};

/// Overrides from the command line.
#[derive(Debug, Clone, Default)]
pub struct ProbeArgs {
    /// The region or witness this probe runs in (its vantage).
    pub region: String,
    /// Stable probe id (default `<region>@<hostname>`).
    pub id: Option<String>,
    /// Controller gRPC URLs instead of the config's `[[controllers]]` listen
    /// addresses (e.g. when controllers listen on port 0 in tests).
    pub controllers: Vec<String>,
    /// Source address for network checks (a probe's own network path).
    pub source_address: Option<std::net::IpAddr>,
    /// Where to serve `/metrics`: the probe records its check and stream
    /// metrics, and without an exporter nobody could alert on a silent
    /// probe from the probe's own side.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// Runs the probe. Returns the exit code.
pub async fn run(path: &Path, args: ProbeArgs) -> anyhow::Result<i32> {
    let cfg = match config::load(path) {
        Ok(c) => c.config,
        Err(e) => {
            eprintln!("{e}");
            return Ok(1);
        }
    };
    // A probe runs in a region or at a witness: both vote.
    if !cfg.is_vantage(&args.region) {
        let declared: Vec<&str> = cfg.regions.iter().map(|r| r.name.as_str()).collect();
        let witnesses: Vec<&str> = cfg.witnesses.iter().map(|w| w.name.as_str()).collect();
        eprintln!(
            "error: region {:?} is not declared; declared regions: {}{}",
            args.region,
            declared.join(", "),
            if witnesses.is_empty() {
                String::new()
            } else {
                format!("; witnesses: {}", witnesses.join(", "))
            }
        );
        return Ok(1);
    }
    let id = args.id.unwrap_or_else(|| default_probe_id(&args.region));
    let mut plan = probe_plan(&cfg, &id, &args.region)?;
    plan.source_address = args.source_address;
    // With `[tls]`: https to the controllers, this host's certificate
    // presented (it names the vantages this probe may report for).
    let material = cfg
        .tls
        .as_ref()
        .map(crate::tls::GrpcTlsMaterial::load)
        .transpose()?;
    let tls_in_use = material.is_some();
    let scheme = if tls_in_use { "https" } else { "http" };
    let controllers = if args.controllers.is_empty() {
        cfg.controllers
            .iter()
            .map(|c| format!("{scheme}://{}", c.listen))
            .collect()
    } else {
        args.controllers
    };
    if tls_in_use {
        for url in &controllers {
            if let Err(e) = crate::tls::require_https(url) {
                eprintln!("error: {e}");
                return Ok(1);
            }
        }
    }
    let metrics = match args.metrics_listen {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("binding metrics listener {a}"))?,
        ),
        None => None,
    };
    let metrics_bound = metrics.as_ref().map(|l| l.local_addr()).transpose()?;
    // One line, on stdout, for people and harnesses alike (the lab reads
    // `metrics=`).
    println!(
        "switchyard probe {id} region={} targets={} checks={} controllers={} metrics={}",
        args.region,
        plan.targets.len(),
        plan.check_count(),
        controllers.join(","),
        metrics_bound.map_or_else(|| "off".to_string(), |a| a.to_string()),
    );
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    if let Some(listener) = metrics {
        // The same recorder and endpoint as the controller's: the probes
        // crate records through the `metrics` facade.
        let handle = crate::runtime::metrics::install();
        if let Some(m) = &material {
            m.record_expiry();
        }
        tokio::spawn(crate::runtime::metrics::serve(
            listener,
            handle,
            shutdown_rx.clone(),
        ));
    }
    tokio::spawn(async move {
        crate::cli::controller::wait_for_signal().await;
        shutdown_tx.send_replace(true);
    });
    // The `[tls]` files are watched from here on: rotated certificates
    // are used from the next connection to a controller.
    let tls = match (material, &cfg.tls) {
        (Some(m), Some(files)) => {
            let materials =
                crate::tls_reload::TlsReloader::new(files.clone(), m).spawn(shutdown_rx.clone());
            Some(client_configs(materials, shutdown_rx.clone()))
        }
        _ => None,
    };
    let options = switchyard_probes::ProbeOptions {
        tls,
        ..Default::default()
    };
    switchyard_probes::run_with(plan, controllers, options, shutdown_rx).await?;
    Ok(0)
}

/// The client side of each set of certificates `materials` publishes, as
/// the probe's report streams take it.
fn client_configs(
    mut materials: watch::Receiver<std::sync::Arc<crate::tls::GrpcTlsMaterial>>,
    mut shutdown: watch::Receiver<bool>,
) -> watch::Receiver<tonic::transport::ClientTlsConfig> {
    let (tx, rx) = watch::channel(materials.borrow_and_update().client());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                c = materials.changed() => if c.is_err() { return },
                _ = shutdown.wait_for(|s| *s) => return,
            }
            tx.send_replace(materials.borrow_and_update().client());
        }
    });
    rx
}
