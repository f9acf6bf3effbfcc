//! Probe ingest: every controller takes every probe's report stream and
//! folds it into its [`Aggregator`], so a new leader starts with a warm view.
//! Only the leader acts on it.
//!
//! A report is checked before it counts: its cluster must be ours (or
//! unnamed), its target one the config declares, its vantage a declared
//! region, and its timestamp no more than [`MAX_FUTURE_SKEW`] ahead. A bad
//! report is refused alone: counted by reason, logged at a limited rate, and
//! the stream goes on, so one probe's bad report (a target it knows from a
//! newer config, say) never silences its good ones.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use switchyard_probes::proto::probe_ingest_server::ProbeIngest;
use switchyard_probes::proto::{IngestSummary, Outcome, ProbeReport};
use tonic::{Request, Response, Status, Streaming};

use crate::clock::Clock;
use crate::engine::{HealthBook, Observation, Policy, TargetId};

/// How far ahead of the controller's clock a report may be stamped. Small:
/// a report from the future would keep its vantage looking fresh after the
/// probe died, for as long as it is ahead. Hosts kept in sync by NTP are
/// milliseconds apart.
pub const MAX_FUTURE_SKEW: Duration = Duration::from_secs(2);

/// At most one log line per rejection reason in this period (the counter
/// counts every one).
pub const REJECTION_LOG_PERIOD: Duration = Duration::from_secs(10);

/// The controller's view of every (target, vantage): fed by ingest, read by
/// the decision loop.
#[derive(Debug)]
pub struct Aggregator {
    book: Mutex<HealthBook>,
    policy: Policy,
}

impl Aggregator {
    /// An empty view judged with `policy`'s rise/fall.
    pub fn new(policy: Policy) -> Self {
        Aggregator {
            book: Mutex::new(HealthBook::new()),
            policy,
        }
    }

    /// Folds one observation in; true when a vantage's status changed.
    pub fn record(&self, obs: &Observation) -> bool {
        let mut book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        book.record(obs, &self.policy)
    }

    /// Runs `f` on the current view (a short lock: decide is fast).
    pub fn with_book<R>(&self, f: impl FnOnce(&HealthBook) -> R) -> R {
        let book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        f(&book)
    }
}

/// What a report may name.
#[derive(Debug, Clone, Default)]
pub struct KnownNames {
    /// Our cluster's name: a report naming another is refused.
    pub cluster: String,
    /// Every target id the config declares.
    pub targets: HashSet<String>,
    /// Every declared region.
    pub regions: HashSet<String>,
}

/// Why a report was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The report names another cluster (a probe pointed at the wrong
    /// controllers).
    #[error("cluster: report is for cluster {0:?}, not ours")]
    OtherCluster(String),
    /// The target is not in the config.
    #[error("target: unknown target {0:?}")]
    UnknownTarget(String),
    /// The vantage region is not declared.
    #[error("vantage_region: {0:?} is not a declared region")]
    UnknownRegion(String),
    /// The timestamp is too far ahead of the controller's clock.
    #[error("observed_at_unix_ms: {0} ms in the future (more than {max} ms allowed)", max = MAX_FUTURE_SKEW.as_millis())]
    FromTheFuture(i64),
    /// The timestamp cannot be a time.
    #[error("observed_at_unix_ms: {0} is not a valid time")]
    BadTimestamp(i64),
    /// Neither up nor down.
    #[error("outcome: neither up nor down")]
    NoOutcome,
    /// With `[tls]`, the probe's certificate does not name this vantage
    /// (URI SAN `switchyard://<cluster>/vantage/<region>`): one host must
    /// not speak for another region.
    #[error("vantage_region: {0:?} is not named by the probe's certificate")]
    UncertifiedVantage(String),
}

impl Rejection {
    /// Every [`label`](Self::label), so the counters can start at 0.
    pub const LABELS: [&'static str; 7] = [
        "other_cluster",
        "unknown_target",
        "unknown_region",
        "future_timestamp",
        "bad_timestamp",
        "no_outcome",
        "uncertified_vantage",
    ];

    /// The `ProbeReport` field at fault, as the proto names it (every
    /// message starts with it, so a probe's operator knows what to fix).
    pub fn field(&self) -> &'static str {
        match self {
            Rejection::OtherCluster(_) => "cluster",
            Rejection::UnknownTarget(_) => "target",
            Rejection::UnknownRegion(_) | Rejection::UncertifiedVantage(_) => "vantage_region",
            Rejection::FromTheFuture(_) | Rejection::BadTimestamp(_) => "observed_at_unix_ms",
            Rejection::NoOutcome => "outcome",
        }
    }

    /// A short label for the rejection metric.
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::OtherCluster(_) => "other_cluster",
            Rejection::UnknownTarget(_) => "unknown_target",
            Rejection::UnknownRegion(_) => "unknown_region",
            Rejection::FromTheFuture(_) => "future_timestamp",
            Rejection::BadTimestamp(_) => "bad_timestamp",
            Rejection::NoOutcome => "no_outcome",
            Rejection::UncertifiedVantage(_) => "uncertified_vantage",
        }
    }
}

/// Checks a report and turns it into an observation, taking its target and
/// vantage strings (no copy on the hot path). Pure: `now` is given.
pub fn check_report(
    report: &mut ProbeReport,
    known: &KnownNames,
    now: DateTime<Utc>,
) -> Result<Observation, Rejection> {
    if !report.cluster.is_empty() && report.cluster != known.cluster {
        return Err(Rejection::OtherCluster(report.cluster.clone()));
    }
    if !known.regions.contains(&report.vantage_region) {
        return Err(Rejection::UnknownRegion(report.vantage_region.clone()));
    }
    if !known.targets.contains(&report.target) {
        return Err(Rejection::UnknownTarget(report.target.clone()));
    }
    let observed_at = DateTime::<Utc>::from_timestamp_millis(report.observed_at_unix_ms)
        .ok_or(Rejection::BadTimestamp(report.observed_at_unix_ms))?;
    let ahead = (observed_at - now).num_milliseconds();
    if ahead > MAX_FUTURE_SKEW.as_millis() as i64 {
        return Err(Rejection::FromTheFuture(ahead));
    }
    let ok = match Outcome::try_from(report.outcome) {
        Ok(Outcome::Up) => true,
        Ok(Outcome::Down) => false,
        _ => return Err(Rejection::NoOutcome),
    };
    Ok(Observation {
        target: TargetId(std::mem::take(&mut report.target)),
        vantage: std::mem::take(&mut report.vantage_region),
        ok,
        observed_at,
    })
}

/// The tonic service.
#[derive(Debug, Clone)]
pub struct IngestService {
    aggregator: Arc<Aggregator>,
    known: Arc<KnownNames>,
    clock: Arc<dyn Clock>,
    log_limit: Arc<RateLimitedLog>,
    certified_vantages_only: bool,
}

impl IngestService {
    /// A service feeding `aggregator`, accepting only `known` names.
    pub fn new(aggregator: Arc<Aggregator>, known: Arc<KnownNames>, clock: Arc<dyn Clock>) -> Self {
        IngestService {
            aggregator,
            known,
            clock,
            log_limit: Arc::new(RateLimitedLog::new(REJECTION_LOG_PERIOD)),
            certified_vantages_only: false,
        }
    }

    /// Accepts a report only for a vantage the client certificate names
    /// (with `[tls]`: the server then requires client certificates).
    pub fn certified_vantages_only(mut self) -> Self {
        self.certified_vantages_only = true;
        self
    }
}

/// Lets one log line per key through per period, and says how many were
/// held back since the last one: a probe sending thousands of bad reports a
/// second costs a counter each, not a log line each.
#[derive(Debug)]
pub struct RateLimitedLog {
    period: Duration,
    last: Mutex<HashMap<&'static str, (tokio::time::Instant, u64)>>,
}

impl RateLimitedLog {
    /// A limiter letting one line per key through each `period`.
    pub fn new(period: Duration) -> Self {
        RateLimitedLog {
            period,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(held back since the last line)` when a line for `key` may be
    /// logged at `now`; `None` when it must be held back.
    pub fn allow(&self, key: &'static str, now: tokio::time::Instant) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match last.get_mut(key) {
            Some((at, held)) if now.saturating_duration_since(*at) < self.period => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                let before = *held;
                *at = now;
                *held = 0;
                Some(before)
            }
            None => {
                last.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

#[tonic::async_trait]
impl ProbeIngest for IngestService {
    async fn report(
        &self,
        request: Request<Streaming<ProbeReport>>,
    ) -> Result<Response<IngestSummary>, Status> {
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "unknown".into());
        // The vantages this connection may speak for (with `[tls]`).
        let certified: Option<std::collections::BTreeSet<String>> =
            self.certified_vantages_only.then(|| {
                request
                    .peer_certs()
                    .and_then(|certs| {
                        certs.first().map(|c| {
                            crate::tls::certified_vantages(c.as_ref(), &self.known.cluster)
                        })
                    })
                    .unwrap_or_default()
            });
        let mut stream = request.into_inner();
        let mut accepted = 0u64;
        let mut rejected = 0u64;
        // One handle per stream: counting each report is then an atomic add.
        let accepted_total = metrics::counter!("switchyard_reports_accepted_total");
        let changes_total = metrics::counter!("switchyard_vantage_changes_total");
        // A message that cannot be decoded ends the stream (gRPC framing
        // cannot resynchronise); everything else is judged report by report.
        while let Some(mut report) = stream.message().await? {
            let checked = match &certified {
                Some(ok) if !ok.contains(&report.vantage_region) => {
                    Err(Rejection::UncertifiedVantage(report.vantage_region.clone()))
                }
                _ => check_report(&mut report, &self.known, self.clock.now()),
            };
            match checked {
                Ok(obs) => {
                    if self.aggregator.record(&obs) {
                        changes_total.increment(1);
                    }
                    accepted_total.increment(1);
                    accepted += 1;
                }
                Err(why) => {
                    rejected += 1;
                    metrics::counter!("switchyard_reports_rejected_total", "reason" => why.label())
                        .increment(1);
                    if let Some(held) = self
                        .log_limit
                        .allow(why.label(), switchyard_host::time::now())
                    {
                        tracing::warn!(
                            probe = %report.probe_id,
                            sequence = report.sequence,
                            from = %peer,
                            held_back = held,
                            "probe report refused: {why}"
                        );
                    }
                }
            }
        }
        Ok(Response::new(IngestSummary { accepted, rejected }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> KnownNames {
        KnownNames {
            cluster: "prod".into(),
            targets: ["svc:api@a".to_string()].into(),
            regions: ["a".to_string(), "b".to_string()].into(),
        }
    }

    fn report(target: &str, vantage: &str, at_ms: i64, outcome: Outcome) -> ProbeReport {
        ProbeReport {
            probe_id: "p1".into(),
            vantage_region: vantage.into(),
            target: target.into(),
            check: "http".into(),
            outcome: outcome as i32,
            reason: String::new(),
            latency_us: 10,
            observed_at_unix_ms: at_ms,
            sequence: 1,
            cluster: String::new(),
        }
    }

    #[test]
    fn reports_are_checked_before_they_count() {
        let now = DateTime::<Utc>::from_timestamp_millis(1_000_000).unwrap_or_default();
        let k = known();
        let ok = check_report(
            &mut report("svc:api@a", "b", 999_000, Outcome::Down),
            &k,
            now,
        );
        assert_eq!(ok.map(|o| o.ok), Ok(false));
        let cases = [
            (
                report("svc:nope@a", "b", 999_000, Outcome::Up),
                "unknown_target",
            ),
            (
                report("svc:api@a", "mars", 999_000, Outcome::Up),
                "unknown_region",
            ),
            (
                report("svc:api@a", "b", 1_000_000 + 31_000, Outcome::Up),
                "future_timestamp",
            ),
            (
                report("svc:api@a", "b", i64::MAX, Outcome::Up),
                "bad_timestamp",
            ),
            (
                report("svc:api@a", "b", 999_000, Outcome::Unspecified),
                "no_outcome",
            ),
            (
                ProbeReport {
                    cluster: "staging".into(),
                    ..report("svc:api@a", "b", 999_000, Outcome::Up)
                },
                "other_cluster",
            ),
            (
                report("svc:api@a", "b", 1_000_000 + 2_500, Outcome::Up),
                "future_timestamp",
            ),
        ];
        for (mut r, label) in cases {
            let got = check_report(&mut r, &k, now).expect_err(label);
            assert_eq!(got.label(), label, "{got}");
        }
        // Slightly ahead (clock skew within bounds) is fine, and so are
        // our cluster's name and an unnamed one.
        for (cluster, ahead) in [("prod", 1_500), ("", 0)] {
            let mut r = ProbeReport {
                cluster: cluster.into(),
                ..report("svc:api@a", "b", 1_000_000 + ahead, Outcome::Up)
            };
            assert!(check_report(&mut r, &k, now).is_ok(), "{cluster:?} {ahead}");
        }
    }

    proptest::proptest! {
        /// Any report, well formed or not: no panic; accepted exactly when
        /// every field is valid; a rejection names, first thing, a field
        /// that is in fact wrong.
        #[test]
        fn any_report_is_accepted_or_refused_naming_a_wrong_field(
            cluster in proptest::prop_oneof!["", "prod", ".*"],
            vantage in proptest::prop_oneof!["a", "b", ".*"],
            target in proptest::prop_oneof!["svc:api@a", ".*"],
            at_ms in proptest::prop_oneof![900_000i64..1_010_000, proptest::num::i64::ANY],
            outcome in proptest::prop_oneof![0i32..3, proptest::num::i32::ANY],
        ) {
            let now = DateTime::<Utc>::from_timestamp_millis(1_000_000).unwrap_or_default();
            let k = known();
            let wrong = |field: &str| match field {
                "cluster" => !cluster.is_empty() && cluster != "prod",
                "vantage_region" => !k.regions.contains(&vantage),
                "target" => !k.targets.contains(&target),
                "observed_at_unix_ms" => {
                    DateTime::<Utc>::from_timestamp_millis(at_ms)
                        .is_none_or(|t| (t - now).num_milliseconds() > MAX_FUTURE_SKEW.as_millis() as i64)
                }
                "outcome" => !(1..=2).contains(&outcome),
                _ => true,
            };
            let all_valid = ["cluster", "vantage_region", "target", "observed_at_unix_ms", "outcome"]
                .iter()
                .all(|f| !wrong(f));
            let mut r = ProbeReport {
                cluster: cluster.clone(),
                outcome,
                ..report(&target, &vantage, at_ms, Outcome::Up)
            };
            match check_report(&mut r, &k, now) {
                Ok(_) => proptest::prop_assert!(all_valid),
                Err(why) => {
                    let text = why.to_string();
                    proptest::prop_assert!(text.starts_with(&format!("{}: ", why.field())), "{}", text);
                    proptest::prop_assert!(wrong(why.field()), "{} named but valid", why.field());
                }
            }
        }
    }

    #[test]
    fn every_label_is_listed() {
        let all = [
            Rejection::OtherCluster(String::new()),
            Rejection::UnknownTarget(String::new()),
            Rejection::UnknownRegion(String::new()),
            Rejection::FromTheFuture(0),
            Rejection::BadTimestamp(0),
            Rejection::NoOutcome,
            Rejection::UncertifiedVantage(String::new()),
        ];
        let labels: Vec<&str> = all.iter().map(Rejection::label).collect();
        assert_eq!(labels, Rejection::LABELS);
    }

    #[test]
    fn rejections_are_logged_once_per_period_and_the_rest_counted() {
        let log = RateLimitedLog::new(Duration::from_secs(10));
        let t0 = switchyard_host::time::now();
        assert_eq!(log.allow("a", t0), Some(0));
        assert_eq!(log.allow("a", t0 + Duration::from_secs(1)), None);
        assert_eq!(log.allow("a", t0 + Duration::from_secs(2)), None);
        // Another reason has its own budget.
        assert_eq!(log.allow("b", t0 + Duration::from_secs(2)), Some(0));
        assert_eq!(log.allow("a", t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(log.allow("a", t0 + Duration::from_secs(11)), None);
    }
}
