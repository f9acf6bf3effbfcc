//! A controller stand-in that only counts what the probe streams to it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use switchyard_probes::proto::probe_ingest_server::{ProbeIngest, ProbeIngestServer};
use switchyard_probes::proto::{IngestSummary, Outcome, ProbeReport};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

/// Reports received, and how many said down.
#[derive(Debug, Default)]
pub struct Counts {
    pub reports: AtomicU64,
    pub down: AtomicU64,
}

#[derive(Debug, Clone)]
struct Sink(Arc<Counts>);

#[tonic::async_trait]
impl ProbeIngest for Sink {
    async fn report(
        &self,
        request: Request<Streaming<ProbeReport>>,
    ) -> Result<Response<IngestSummary>, Status> {
        let mut stream = request.into_inner();
        let mut accepted = 0;
        while let Some(r) = stream.message().await? {
            self.0.reports.fetch_add(1, Relaxed);
            if r.outcome == Outcome::Down as i32 {
                self.0.down.fetch_add(1, Relaxed);
            }
            accepted += 1;
        }
        Ok(Response::new(IngestSummary {
            accepted,
            rejected: 0,
        }))
    }
}

/// Serves on a free loopback port (on the current runtime).
pub async fn start() -> anyhow::Result<(SocketAddr, Arc<Counts>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let counts = Arc::new(Counts::default());
    tokio::spawn(
        Server::builder()
            .add_service(ProbeIngestServer::new(Sink(counts.clone())))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    Ok((addr, counts))
}
