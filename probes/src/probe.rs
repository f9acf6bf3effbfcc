//! The probe: builds every check from the plan, starts the scheduler and
//! one report link per controller, and runs until told to stop.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::transport::Endpoint;

use crate::checks::{self, CheckContext};
use crate::clock::{Clock, SystemClock};
use crate::error::{PlanError, ProbeError};
use crate::metrics::ControllerMetrics;
use crate::plan::ProbePlan;
use crate::report::stream::Link;
use crate::report::{Backoff, ReportBuffer, Reporter};
use crate::schedule::phase::phase;
use crate::schedule::{CheckStatsHandle, Job, Scheduler};
use crate::stats::{CheckStats, ControllerStats, ProbeStats};

/// Knobs that are not part of the plan: time, reconnection, shutdown.
#[derive(Clone)]
pub struct ProbeOptions {
    /// Stamps `observed_at_unix_ms` on reports.
    pub clock: Arc<dyn Clock>,
    /// Reconnection backoff for report streams.
    pub backoff: Backoff,
    /// Longest wait for a controller's TCP + HTTP/2 connection.
    pub connect_timeout: Duration,
    /// HTTP/2 keepalive ping interval on report streams: how soon a
    /// controller that vanished without closing (host down, partition) is
    /// noticed (about twice this).
    pub keepalive: Duration,
    /// On shutdown, how long buffered reports may take to flush.
    pub flush_timeout: Duration,
    /// TLS to the controllers (`https://` URLs): the CA to check them
    /// against and this probe's certificate, which names its vantage. A
    /// channel, so that rotated certificates are used from the next
    /// connection on (a fixed config: a channel whose sender is dropped).
    pub tls: Option<tokio::sync::watch::Receiver<tonic::transport::ClientTlsConfig>>,
}

// By hand: the TLS config holds the private key, which must never reach a
// log through a `{:?}`.
impl std::fmt::Debug for ProbeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeOptions")
            .field("backoff", &self.backoff)
            .field("connect_timeout", &self.connect_timeout)
            .field("keepalive", &self.keepalive)
            .field("flush_timeout", &self.flush_timeout)
            .field("tls", &self.tls.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            clock: Arc::new(SystemClock),
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(1),
            keepalive: Duration::from_secs(5),
            flush_timeout: Duration::from_secs(2),
            tls: None,
        }
    }
}

/// A probe ready to run; [`Probe::stats`] can be read while it runs.
#[derive(Debug)]
pub struct Probe {
    plan: ProbePlan,
    jobs: Vec<(Job, Arc<CheckStatsHandle>)>,
    links: Vec<Link>,
    buffers: Vec<Arc<ReportBuffer>>,
    options: ProbeOptions,
    stats: Arc<ProbeStats>,
}

impl Probe {
    /// Validates the plan and the controller URLs and builds every check.
    /// Every error here is fatal: nothing would work by retrying.
    pub fn new(
        plan: ProbePlan,
        controllers: Vec<String>,
        options: ProbeOptions,
    ) -> Result<Self, ProbeError> {
        plan.validate()?;
        if controllers.is_empty() {
            return Err(ProbeError::NoControllers);
        }
        let ctx = CheckContext::new(plan.source_address, plan.extra_ca_pem.as_deref())?;

        let mut jobs = Vec::with_capacity(plan.check_count());
        for target in &plan.targets {
            let target_id: Arc<str> = target.id.as_str().into();
            for spec in &target.checks {
                let check = checks::build(spec, &ctx).map_err(|e| match e {
                    PlanError::BadCheck { check, why, .. } => PlanError::BadCheck {
                        target: target.id.clone(),
                        check,
                        why,
                    },
                    other => other,
                })?;
                let kind = spec.kind_label();
                let stats = Arc::new(CheckStats::new(&target.id, &spec.name));
                let job = Job {
                    target: target_id.clone(),
                    check_name: spec.name.as_str().into(),
                    interval: spec.interval,
                    timeout: spec.timeout,
                    phase: phase(&plan.probe_id, &target.id, &spec.name, spec.interval),
                    check,
                };
                jobs.push((job, Arc::new(CheckStatsHandle::new(stats, kind))));
            }
        }

        let connected = Arc::new(AtomicUsize::new(0));
        let mut links = Vec::with_capacity(controllers.len());
        let mut buffers = Vec::with_capacity(controllers.len());
        let mut controller_stats = Vec::with_capacity(controllers.len());
        for url in controllers {
            let endpoint = Endpoint::from_shared(url.clone())
                .map_err(|e| ProbeError::BadController {
                    url: url.clone(),
                    why: e.to_string(),
                })?
                .connect_timeout(options.connect_timeout)
                .http2_keep_alive_interval(options.keepalive)
                .keep_alive_timeout(options.keepalive)
                .keep_alive_while_idle(true)
                .tcp_nodelay(true);
            // Checked now, with the config in use, so a URL TLS cannot
            // use stops the probe at start; each connection applies the
            // config current then.
            if let Some(tls) = &options.tls {
                let current = tls.borrow().clone();
                endpoint
                    .clone()
                    .tls_config(current)
                    .map_err(|e| ProbeError::BadController {
                        url: url.clone(),
                        why: e.to_string(),
                    })?;
            }
            let stats = Arc::new(ControllerStats::new(&url));
            let metrics = ControllerMetrics::new(&url);
            let buffer = Arc::new(ReportBuffer::new(
                plan.buffer_per_controller,
                stats.clone(),
                metrics.clone(),
            ));
            buffers.push(buffer.clone());
            controller_stats.push(stats.clone());
            links.push(Link {
                url,
                endpoint,
                tls: options.tls.clone(),
                buffer,
                stats,
                metrics,
                backoff: options.backoff,
                connected: connected.clone(),
            });
        }
        let stats = Arc::new(ProbeStats::new(
            jobs.iter().map(|(_, h)| h.stats.clone()).collect(),
            controller_stats,
        ));
        Ok(Probe {
            plan,
            jobs,
            links,
            buffers,
            options,
            stats,
        })
    }

    /// Live counters: checks run, scheduling delays, per-controller sent,
    /// dropped and connected.
    pub fn stats(&self) -> Arc<ProbeStats> {
        self.stats.clone()
    }

    /// Probes and reports until `shutdown` turns true (or its sender is
    /// dropped), then stops the checks and flushes buffered reports for at
    /// most `flush_timeout`. Fails only if a probe task died (a bug).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), ProbeError> {
        let Probe {
            plan,
            jobs,
            links,
            buffers,
            options,
            stats,
        } = self;
        let worst = plan.worst_case_concurrency();
        if plan.max_concurrency < worst {
            tracing::warn!(
                max_concurrency = plan.max_concurrency,
                worst_case = worst,
                "max_concurrency is below the slots hung targets could hold: while many \
                 targets hang, healthy checks will start late"
            );
        }
        tracing::info!(
            probe = %plan.probe_id,
            vantage = %plan.vantage,
            checks = jobs.len(),
            controllers = links.len(),
            max_concurrency = plan.max_concurrency,
            "probe starting"
        );

        let mut link_tasks = JoinSet::new();
        for link in links {
            link_tasks.spawn(link.run());
        }
        let reporter = Arc::new(Reporter::new(
            plan.probe_id.clone(),
            plan.vantage.clone(),
            plan.cluster.clone(),
            options.clock.clone(),
            buffers.clone(),
        ));
        let mut scheduler =
            Scheduler::start(jobs, plan.max_concurrency, reporter, stats, Instant::now());

        let failure = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => None,
            failed = scheduler.failed() => failed,
        };
        scheduler.shutdown().await;
        for b in &buffers {
            b.close();
        }
        let flushed = tokio::time::timeout(options.flush_timeout, async {
            while link_tasks.join_next().await.is_some() {}
        })
        .await;
        if flushed.is_err() {
            let left: usize = buffers.iter().map(|b| b.len()).sum();
            tracing::warn!(left, "stopping with reports not yet delivered");
        }
        link_tasks.shutdown().await;
        tracing::info!(probe = %plan.probe_id, "probe stopped");
        match failure {
            Some(why) => Err(ProbeError::TaskFailed(why)),
            None => Ok(()),
        }
    }
}

/// Runs `plan`, reporting to every controller in `controllers` (gRPC URLs
/// such as `http://10.0.0.1:7400`), until `shutdown` turns true. The
/// shortcut for [`Probe::new`] with default [`ProbeOptions`] and
/// [`Probe::run`].
pub async fn run(
    plan: ProbePlan,
    controllers: Vec<String>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ProbeError> {
    run_with(plan, controllers, ProbeOptions::default(), shutdown).await
}

/// [`run`] with other [`ProbeOptions`] (TLS, for one).
pub async fn run_with(
    plan: ProbePlan,
    controllers: Vec<String>,
    options: ProbeOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ProbeError> {
    Probe::new(plan, controllers, options)?.run(shutdown).await
}
