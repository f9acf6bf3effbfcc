//! Stands in for the probes: streams `ProbeReport`s to every controller, as
//! probes in several regions would, with outcomes the test sets per target
//! and vantage.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_probes::proto::probe_ingest_client::ProbeIngestClient;
use switchyard_probes::proto::{Outcome, ProbeReport};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// (target, vantage) → up?
type Outcomes = BTreeMap<(String, String), bool>;

/// A fleet of fake probes reporting every `interval` to every controller.
#[derive(Debug)]
pub struct ReportFleet {
    outcomes: Arc<Mutex<Outcomes>>,
    task: tokio::task::JoinHandle<()>,
}

impl ReportFleet {
    /// Reports every (target, vantage) in `outcomes` every `interval` to
    /// each of `controllers` (gRPC URLs), reconnecting when one goes away.
    pub fn start(controllers: Vec<String>, outcomes: Outcomes, interval: Duration) -> Self {
        let outcomes = Arc::new(Mutex::new(outcomes));
        let shared = outcomes.clone();
        let task = tokio::spawn(async move {
            let mut senders: Vec<Option<mpsc::Sender<ProbeReport>>> = vec![None; controllers.len()];
            let mut seq = 0u64;
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                let snapshot: Vec<((String, String), bool)> = shared
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect();
                let now = chrono::Utc::now().timestamp_millis();
                for (i, url) in controllers.iter().enumerate() {
                    if senders[i].as_ref().is_none_or(|s| s.is_closed()) {
                        senders[i] = connect(url.clone()).await;
                    }
                    let Some(tx) = senders[i].clone() else {
                        continue;
                    };
                    for ((target, vantage), up) in &snapshot {
                        seq += 1;
                        let report = ProbeReport {
                            probe_id: format!("test-probe-{vantage}"),
                            vantage_region: vantage.clone(),
                            target: target.clone(),
                            check: "http".into(),
                            outcome: if *up { Outcome::Up } else { Outcome::Down } as i32,
                            reason: if *up {
                                String::new()
                            } else {
                                "test says down".into()
                            },
                            latency_us: 100,
                            observed_at_unix_ms: now,
                            sequence: seq,
                            cluster: String::new(),
                        };
                        // A full buffer (a stopped controller) drops reports,
                        // as a real probe's bounded buffer would.
                        if tx.try_send(report).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        ReportFleet { outcomes, task }
    }

    /// Sets what `vantage` sees of `target` from the next round on.
    pub fn set(&self, target: &str, vantage: &str, up: bool) {
        self.outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((target.to_string(), vantage.to_string()), up);
    }

    /// Stops reporting anything from `vantage` (its probes are cut off from
    /// these controllers): its votes go stale.
    pub fn forget_vantage(&self, vantage: &str) {
        self.outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(_, v), _| v != vantage);
    }

    /// Sets what every listed vantage sees of `target`.
    pub fn set_all(&self, target: &str, vantages: &[&str], up: bool) {
        for v in vantages {
            self.set(target, v, up);
        }
    }
}

impl Drop for ReportFleet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn connect(url: String) -> Option<mpsc::Sender<ProbeReport>> {
    let channel = tonic::transport::Endpoint::from_shared(url)
        .ok()?
        .connect_timeout(Duration::from_millis(500))
        .connect()
        .await
        .ok()?;
    let (tx, rx) = mpsc::channel(10_000);
    let mut client = ProbeIngestClient::new(channel);
    tokio::spawn(async move {
        // Ends when the controller goes away or rejects the stream; the
        // sender then sees a closed channel and reconnects.
        let _ = client.report(ReceiverStream::new(rx)).await;
    });
    Some(tx)
}
