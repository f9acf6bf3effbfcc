//! What the probe tests share: a `ProbeIngest` server of our own that
//! records every report (and can be killed and restarted like a controller
//! process), and plan builders.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_probes::proto::probe_ingest_server::{ProbeIngest, ProbeIngestServer};
use switchyard_probes::proto::{IngestSummary, Outcome, ProbeReport};
use switchyard_probes::{CheckKind, CheckSpec, HttpCheck, ProbePlan, TargetPlan};
use tokio::runtime::Runtime;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

/// One report as the server got it.
#[derive(Debug, Clone)]
pub struct Received {
    /// When the server's handler read it.
    pub at: Instant,
    /// The report.
    pub report: ProbeReport,
}

impl Received {
    /// Down?
    pub fn is_down(&self) -> bool {
        self.report.outcome == Outcome::Down as i32
    }
}

#[derive(Debug, Default)]
struct Shared {
    reports: Mutex<Vec<Received>>,
    /// Reports for this target end the stream with INVALID_ARGUMENT.
    reject_target: Mutex<Option<String>>,
}

#[derive(Debug, Clone)]
struct Recorder(Arc<Shared>);

#[tonic::async_trait]
impl ProbeIngest for Recorder {
    async fn report(
        &self,
        request: Request<Streaming<ProbeReport>>,
    ) -> Result<Response<IngestSummary>, Status> {
        let mut stream = request.into_inner();
        let mut accepted = 0;
        while let Some(report) = stream.message().await? {
            let reject = self
                .0
                .reject_target
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if reject.as_deref() == Some(report.target.as_str()) {
                return Err(Status::invalid_argument(format!(
                    "report {} rejected: unknown target {:?}",
                    report.sequence, report.target
                )));
            }
            self.0
                .reports
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Received {
                    at: Instant::now(),
                    report,
                });
            accepted += 1;
        }
        Ok(Response::new(IngestSummary {
            accepted,
            rejected: 0,
        }))
    }
}

/// A controller stand-in on its own runtime: `kill` drops the runtime, so
/// every socket closes at once, as when a controller process dies.
pub struct IngestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<Runtime>,
}

impl IngestServer {
    /// Starts on a free loopback port.
    pub fn start() -> anyhow::Result<Self> {
        let mut s = IngestServer {
            addr: "127.0.0.1:0".parse()?,
            shared: Arc::new(Shared::default()),
            runtime: None,
        };
        s.serve()?;
        Ok(s)
    }

    fn serve(&mut self) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        // std binds with SO_REUSEADDR on Unix: the port can be taken again
        // at once after a kill, as a restarted controller would.
        let listener = std::net::TcpListener::bind(self.addr)?;
        listener.set_nonblocking(true)?;
        self.addr = listener.local_addr()?;
        let listener = {
            let _in = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let service = ProbeIngestServer::new(Recorder(self.shared.clone()));
        runtime.spawn(
            Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpIncoming::from(listener)),
        );
        self.runtime = Some(runtime);
        Ok(())
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Dies: every connection and the listener close.
    pub fn kill(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }

    /// Comes back on the same port, keeping what it recorded.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.serve()
    }

    /// Ends every stream carrying a report for `target` with INVALID_ARGUMENT.
    pub fn reject_target(&self, target: &str) {
        *self
            .shared
            .reject_target
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(target.to_string());
    }

    /// Everything received so far.
    pub fn reports(&self) -> Vec<Received> {
        self.shared
            .reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every sequence number received so far.
    pub fn sequences(&self) -> BTreeSet<u64> {
        self.reports().iter().map(|r| r.report.sequence).collect()
    }
}

impl Drop for IngestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An HTTP check of `url` every `interval`, cut at `timeout`.
pub fn http_check(url: &str, interval: Duration, timeout: Duration) -> CheckSpec {
    CheckSpec {
        name: "http".into(),
        interval,
        timeout,
        kind: CheckKind::Http(HttpCheck::get(url)),
    }
}

/// A target `svc:<name>@b` with the given checks.
pub fn target(name: &str, checks: Vec<CheckSpec>) -> TargetPlan {
    TargetPlan {
        id: format!("svc:{name}@b"),
        region: "b".into(),
        checks,
    }
}

/// A plan for probe `p-a` in region `a`.
pub fn plan(targets: Vec<TargetPlan>) -> ProbePlan {
    ProbePlan::new("p-a", "a", targets)
}

/// Sequence numbers in `1..=last` that `got` lacks.
pub fn missing(got: &BTreeSet<u64>, last: u64) -> Vec<u64> {
    (1..=last).filter(|s| !got.contains(s)).collect()
}
