//! The fault matrix's monitor: every 10 ms, from outside every network, it
//! reads each member's `read_only` (unix sockets), the record's weights
//! (the file backend) and the journal (etcd), and checks each sample
//! against the invariants. A breach is kept with the moment it was seen;
//! the trial fails on any.
//!
//! The checks are a pure function of the samples ([`Checker`]), so they
//! are tested on their own with breaches made by hand.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql_async::prelude::*;
use switchyard_controller::store::Store;
use switchyard_core::step::{Step, blind_repeat};
use switchyard_tests::MariaDbTopology;
use tokio::time::Instant;

/// How often the monitor samples.
pub const EVERY: Duration = Duration::from_millis(10);
/// How long one read may take before the sample records it unread.
const READ_TIMEOUT: Duration = Duration::from_millis(150);

/// Where the record's weights are read.
#[derive(Debug, Clone)]
pub enum WeightsAt {
    /// The file backend's weights file, read every sample.
    File(PathBuf),
    /// A Route 53 API (moto), read every tenth sample (100 ms, each read
    /// given up to 1 s): a list call every 10 ms would load the API more
    /// than the controllers do.
    Route53 {
        /// Its client.
        client: aws_sdk_route53::Client,
        /// The hosted zone.
        zone: String,
    },
}

impl WeightsAt {
    /// Where `lab`'s weights are.
    pub fn of(lab: &super::SplitLab) -> Self {
        match &lab.settings.route53 {
            Some(r) => WeightsAt::Route53 {
                client: r.client.clone(),
                zone: r.zone_id.clone(),
            },
            None => WeightsAt::File(lab.weights.clone()),
        }
    }

    /// The record's weights, `None` when not read this time.
    async fn read(&self, record: &str, sample: u64) -> Option<BTreeMap<String, u32>> {
        match self {
            WeightsAt::File(path) => Some(read_weights(path, record)),
            WeightsAt::Route53 { .. } if !sample.is_multiple_of(10) => None,
            WeightsAt::Route53 { client, zone } => {
                let out = tokio::time::timeout(
                    Duration::from_secs(1),
                    client
                        .list_resource_record_sets()
                        .hosted_zone_id(zone)
                        .send(),
                )
                .await
                .ok()?
                .ok()?;
                Some(
                    out.resource_record_sets()
                        .iter()
                        .filter(|r| r.name() == record)
                        .filter_map(|r| {
                            Some((
                                r.set_identifier()?.to_string(),
                                u32::try_from(r.weight()?).ok()?,
                            ))
                        })
                        .collect(),
                )
            }
        }
    }
}

/// What one sample saw.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// Milliseconds since the monitor started.
    pub at_ms: u64,
    /// m0, m1, m2: `Some(true)` read-only, `Some(false)` writable, `None`
    /// unread (down, paused, or slower than the read timeout).
    pub read_only: [Option<bool>; 3],
    /// The record's weights, region → weight (empty when unread).
    pub weights: BTreeMap<String, u32>,
    /// Every journal entry, `None` when etcd could not be read.
    pub journal: Option<Vec<serde_json::Value>>,
}

/// The invariants over a run of samples. Keeps what it needs of earlier
/// samples (each entry's step cursor and status).
#[derive(Debug, Default)]
pub struct Checker {
    entries: BTreeMap<String, (String, Vec<serde_json::Value>)>,
    /// Steps already reported twice (intent id, step): reported once.
    doubled: std::collections::BTreeSet<(String, String)>,
}

impl Checker {
    /// The breaches `obs` shows, each in one line.
    pub fn check(&mut self, obs: &Observation) -> Vec<String> {
        let mut out = Vec::new();
        let writable: Vec<String> = obs
            .read_only
            .iter()
            .enumerate()
            .filter(|(_, ro)| **ro == Some(false))
            .map(|(i, _)| format!("m{i}"))
            .collect();
        if writable.len() > 1 {
            out.push(format!(
                "{} ms: two writable members: {}",
                obs.at_ms,
                writable.join(", ")
            ));
        }
        if !obs.weights.is_empty() && obs.weights.values().all(|w| *w == 0) {
            out.push(format!(
                "{} ms: every weight of the record is 0: {:?}",
                obs.at_ms, obs.weights
            ));
        }
        for e in obs.journal.iter().flatten() {
            let Some(id) = e["id"].as_str() else { continue };
            let status = e["status"].as_str().unwrap_or_default().to_string();
            let steps: Vec<serde_json::Value> = e["steps"].as_array().cloned().unwrap_or_default();
            out.extend(self.cursor(id, e, obs.at_ms));
            if let Some((was, before)) = self.entries.get(id) {
                if !steps.starts_with(before) {
                    out.push(format!(
                        "{} ms: intent {id} rewrote its steps: {before:?} -> {steps:?}",
                        obs.at_ms
                    ));
                }
                if was != "pending" && status == "pending" {
                    out.push(format!(
                        "{} ms: intent {id} went from {was} back to pending",
                        obs.at_ms
                    ));
                }
            }
            self.entries.insert(id.to_string(), (status, steps));
        }
        out
    }
}

impl Checker {
    /// The breach in one intent's step cursor (`entry`: a journal entry or
    /// a history event), if any: a step performed again with nothing
    /// between that undid it, or a cursor that cannot be read (which would
    /// hide one). Each is reported once.
    pub fn cursor(&mut self, id: &str, entry: &serde_json::Value, at_ms: u64) -> Option<String> {
        let steps = entry.get("steps").cloned().unwrap_or(serde_json::json!([]));
        let typed: Vec<Step> = match serde_json::from_value(steps) {
            Ok(t) => t,
            Err(e) => {
                return self
                    .doubled
                    .insert((id.to_string(), "unreadable".to_string()))
                    .then(|| format!("{at_ms} ms: intent {id}'s steps cannot be read: {e}"));
            }
        };
        let s = blind_repeat(&typed)?;
        self.doubled
            .insert((id.to_string(), s.to_string()))
            .then(|| {
                format!("{at_ms} ms: intent {id} performed {s} twice, nothing between undid it")
            })
    }
}

#[derive(Debug, Default)]
struct Shared {
    samples: u64,
    /// Samples in which at least two members were read (enough to see
    /// two writable ones; a row may kill the third).
    two_read: u64,
    breaches: Vec<String>,
    last: Observation,
    /// Per member, the first sample (ms) that read it read-only.
    first_read_only: [Option<u64>; 3],
    /// Per member, the first sample (ms) that read it writable.
    first_writable: [Option<u64>; 3],
}

/// Samples the lab every [`EVERY`] until dropped.
pub struct Monitor {
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
    started: Instant,
}

/// What a monitor saw over a trial.
#[derive(Debug, Clone)]
pub struct Report {
    /// Samples taken.
    pub samples: u64,
    /// Samples in which at least two members were read.
    pub two_read: u64,
    /// How long it ran.
    pub ran: Duration,
    /// Every breach, in order.
    pub breaches: Vec<String>,
}

impl Monitor {
    /// Starts sampling `db`'s members, the weights file and the journal.
    pub fn start(db: &MariaDbTopology, weights: WeightsAt, record: &str, store: Store) -> Self {
        let opts: Vec<mysql_async::Opts> = (0..3).map(|i| db.opts_socket(i)).collect();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let out = shared.clone();
        let record = record.to_string();
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let mut conns: Vec<Option<mysql_async::Conn>> = vec![None, None, None];
            let mut checker = Checker::default();
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let prefix = store.keys().journal_prefix();
            // Samples taken, and the weights last read (a Route 53 sample
            // reads them only every tenth time).
            let mut taken = 0u64;
            let mut last_weights = BTreeMap::new();
            loop {
                tick.tick().await;
                let mut obs = Observation {
                    at_ms: started.elapsed().as_millis() as u64,
                    ..Observation::default()
                };
                for (i, conn) in conns.iter_mut().enumerate() {
                    obs.read_only[i] = read_only(conn, &opts[i]).await;
                }
                if let Some(w) = weights.read(&record, taken).await {
                    last_weights = w;
                }
                obs.weights = last_weights.clone();
                taken += 1;
                obs.journal = tokio::time::timeout(
                    READ_TIMEOUT,
                    store.list_json::<serde_json::Value>(&prefix),
                )
                .await
                .ok()
                .and_then(Result::ok)
                .map(|v| v.into_iter().map(|(_, v)| v).collect());
                let breaches = checker.check(&obs);
                let mut s = out.lock().unwrap_or_else(|e| e.into_inner());
                s.samples += 1;
                if obs.read_only.iter().filter(|r| r.is_some()).count() >= 2 {
                    s.two_read += 1;
                }
                s.breaches.extend(breaches);
                for (i, ro) in obs.read_only.iter().enumerate() {
                    let first = match ro {
                        Some(true) => &mut s.first_read_only[i],
                        Some(false) => &mut s.first_writable[i],
                        None => continue,
                    };
                    first.get_or_insert(obs.at_ms);
                }
                s.last = obs;
            }
        });
        Monitor {
            shared,
            task,
            started,
        }
    }

    /// The newest sample.
    pub fn last(&self) -> Observation {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last
            .clone()
    }

    /// When (ms since the monitor started) member `i` was first read
    /// read-only.
    pub fn first_read_only(&self, i: usize) -> Option<u64> {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first_read_only[i]
    }

    /// When member `i` was first read writable.
    pub fn first_writable(&self, i: usize) -> Option<u64> {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first_writable[i]
    }

    /// Stops sampling and checks, once more, every intent's cursor the
    /// history holds (an intent compacted between two samples leaves the
    /// journal with its last steps unseen); what it saw.
    pub async fn finish(self, store: &Store) -> Report {
        self.task.abort();
        let ran = self.started.elapsed();
        let mut checker = Checker::default();
        let mut late = Vec::new();
        match store
            .list_json::<serde_json::Value>(&store.keys().history_prefix())
            .await
        {
            Ok(events) => {
                for (key, e) in events {
                    let id = e["journal_id"].as_str().unwrap_or(key.as_str()).to_string();
                    late.extend(checker.cursor(&id, &e, ran.as_millis() as u64));
                }
            }
            Err(e) => late.push(format!("the history could not be read at the end: {e}")),
        }
        let s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let mut breaches = s.breaches.clone();
        breaches.extend(late);
        Report {
            samples: s.samples,
            two_read: s.two_read,
            ran,
            breaches,
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One member's `read_only`, reconnecting when the session is gone (a
/// fence ends sessions; a killed server closes them).
async fn read_only(conn: &mut Option<mysql_async::Conn>, opts: &mysql_async::Opts) -> Option<bool> {
    if conn.is_none() {
        *conn = tokio::time::timeout(READ_TIMEOUT, mysql_async::Conn::new(opts.clone()))
            .await
            .ok()
            .and_then(Result::ok);
    }
    let c = conn.as_mut()?;
    match tokio::time::timeout(
        READ_TIMEOUT,
        c.query_first::<i64, _>("SELECT @@global.read_only"),
    )
    .await
    {
        Ok(Ok(v)) => v.map(|v| v != 0),
        _ => {
            *conn = None;
            None
        }
    }
}

fn read_weights(path: &std::path::Path, record: &str) -> BTreeMap<String, u32> {
    let all: BTreeMap<String, BTreeMap<String, u32>> =
        serde_json::from_slice(&std::fs::read(path).unwrap_or_default()).unwrap_or_default();
    all.get(record).cloned().unwrap_or_default()
}
