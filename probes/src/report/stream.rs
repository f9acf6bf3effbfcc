//! One controller's link: open a client stream of `ProbeReport`, feed it
//! from the controller's buffer, and when it ends for any reason, wait
//! (capped exponential backoff) and open another. A rejected stream
//! (`INVALID_ARGUMENT`: the controller's config does not know something in
//! this probe's plan) is logged at error level and retried like the rest.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::time::Instant;
use tonic::Code;
use tonic::transport::Endpoint;

use crate::error::StreamError;
use crate::metrics::{self, ControllerMetrics};
use crate::proto::probe_ingest_client::ProbeIngestClient;
use crate::stats::ControllerStats;

use super::backoff::{Backoff, BackoffState};
use super::buffer::ReportBuffer;

/// A stream that stayed open this long resets the backoff.
const STEADY: Duration = Duration::from_secs(5);

/// Everything one controller's link needs.
pub(crate) struct Link {
    pub url: String,
    /// The controller's endpoint without TLS; [`Self::tls`] is applied at
    /// each connection.
    pub endpoint: Endpoint,
    /// The TLS client config in use, if any.
    pub tls: Option<tokio::sync::watch::Receiver<tonic::transport::ClientTlsConfig>>,
    pub buffer: Arc<ReportBuffer>,
    pub stats: Arc<ControllerStats>,
    pub metrics: ControllerMetrics,
    pub backoff: Backoff,
    /// Links with an open stream, over all controllers (for the gauge).
    pub connected: Arc<AtomicUsize>,
}

// By hand: the TLS config holds this probe's private key, which must never
// reach a log through a `{:?}`.
impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("url", &self.url)
            .field("tls", &self.tls.as_ref().map(|_| "<redacted>"))
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// Streams until the buffer is closed and drained.
    pub async fn run(self) {
        let mut backoff = BackoffState::new(self.backoff);
        loop {
            if self.buffer.is_finished() {
                return;
            }
            let opened = Instant::now();
            let end = self.one_stream().await;
            match &end {
                Ok(accepted) => {
                    tracing::debug!(controller = %self.url, accepted, "report stream closed");
                }
                Err(e) if e.is_config_mismatch() => {
                    self.stats.rejected.fetch_add(1, Relaxed);
                    tracing::error!(
                        controller = %self.url,
                        error = %e,
                        "controller REJECTED this probe's reports: its config and the probe's \
                         plan disagree (unknown target or region, or clock skew); retrying"
                    );
                }
                Err(StreamError::Connect(why)) => {
                    tracing::debug!(controller = %self.url, %why, "cannot connect");
                }
                Err(e) => {
                    tracing::warn!(controller = %self.url, error = %e, "report stream ended");
                }
            }
            if let Err(e) = &end {
                self.metrics.stream_ended(e.label());
            }
            if self.buffer.is_finished() {
                return;
            }
            if opened.elapsed() >= STEADY {
                backoff.reset();
            }
            tokio::time::sleep(backoff.next_wait()).await;
        }
    }

    /// Opens one stream and feeds it until it ends; `Ok` carries the
    /// controller's count when the stream ended cleanly (buffer closed).
    async fn one_stream(&self) -> Result<u64, StreamError> {
        let endpoint = match &self.tls {
            None => self.endpoint.clone(),
            Some(tls) => {
                let current = tls.borrow().clone();
                self.endpoint
                    .clone()
                    .tls_config(current)
                    .map_err(|e| StreamError::Connect(crate::error::error_chain(&e)))?
            }
        };
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| StreamError::Connect(crate::error::error_chain(&e)))?;
        self.stats.connects.fetch_add(1, Relaxed);
        let _up = Connected::new(self);
        let buffer = self.buffer.clone();
        let stats = self.stats.clone();
        let sent = self.metrics.sent.clone();
        let reports = futures_util::stream::unfold(buffer, move |buffer| {
            let stats = stats.clone();
            let sent = sent.clone();
            async move {
                let report = buffer.pop().await?;
                stats.sent.fetch_add(1, Relaxed);
                sent.increment(1);
                Some((report, buffer))
            }
        });
        let mut client = ProbeIngestClient::new(channel);
        match client.report(reports).await {
            Ok(summary) => Ok(summary.into_inner().accepted),
            Err(status) if status.code() == Code::InvalidArgument => {
                Err(StreamError::Rejected(status.message().to_string()))
            }
            Err(status) => Err(StreamError::Broken(format!(
                "{:?}: {}",
                status.code(),
                status.message()
            ))),
        }
    }
}

/// Marks a link connected for as long as it lives.
struct Connected<'a> {
    link: &'a Link,
}

impl<'a> Connected<'a> {
    fn new(link: &'a Link) -> Self {
        link.stats.connected.store(true, Relaxed);
        link.metrics.connected.set(1.0);
        let n = link.connected.fetch_add(1, Relaxed) + 1;
        metrics::set_connected(n);
        Connected { link }
    }
}

impl Drop for Connected<'_> {
    fn drop(&mut self) {
        self.link.stats.connected.store(false, Relaxed);
        self.link.metrics.connected.set(0.0);
        let n = self.link.connected.fetch_sub(1, Relaxed).saturating_sub(1);
        metrics::set_connected(n);
    }
}
