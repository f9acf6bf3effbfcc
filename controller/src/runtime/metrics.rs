//! Prometheus metrics: the recorder, the `/metrics` endpoint (served on a
//! listener the caller binds, so tests can use port 0), and the gauges the
//! leader loop sets.

use std::convert::Infallible;
use std::sync::OnceLock;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::engine::{Decision, RegionStatus, Verdict};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global Prometheus recorder once; later calls reuse it.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Only fails if another recorder is installed: then ours only renders.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Puts every event counter an alert watches on `/metrics` at 0 from the
/// start: a series that appears only at its first event makes Prometheus's
/// `increase()` miss that event (and the alerts would have to guess).
pub fn zero_counters<'a>(databases: impl Iterator<Item = &'a str>) {
    for reason in crate::api::ingest::Rejection::LABELS {
        metrics::counter!("switchyard_reports_rejected_total", "reason" => reason).absolute(0);
    }
    for db in databases {
        metrics::counter!("switchyard_promotion_gate_waits_total", "database" => db.to_string())
            .absolute(0);
        metrics::counter!("switchyard_primary_lease_given_up_total", "database" => db.to_string())
            .absolute(0);
    }
    for kind in ["retried", "refused", "unavailable", "sync_timeout"] {
        metrics::counter!("switchyard_route53_errors_total", "kind" => kind).absolute(0);
    }
    metrics::gauge!("switchyard_journal_pending_intents").set(0.0);
    metrics::gauge!("switchyard_actions_failing").set(0.0);
}

/// Serves `GET /metrics` on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let handle = handle.clone();
        crate::task::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let handle = handle.clone();
                async move {
                    let (status, body) = if req.uri().path() == "/metrics" {
                        (StatusCode::OK, handle.render())
                    } else {
                        (StatusCode::NOT_FOUND, "try /metrics\n".to_string())
                    };
                    let mut resp = Response::new(Full::new(Bytes::from(body)));
                    *resp.status_mut() = status;
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// 1 while this controller leads.
pub fn set_leader(leading: bool) {
    metrics::gauge!("switchyard_leader").set(if leading { 1.0 } else { 0.0 });
}

/// What the gauges last showed, so a decision only touches the gauges whose
/// value changed (the leader decides every tick over thousands of targets).
#[derive(Debug, Default)]
pub struct Shown {
    verdicts: std::collections::BTreeMap<crate::engine::TargetId, Verdict>,
    regions: std::collections::BTreeMap<String, RegionStatus>,
}

/// Verdicts, region states, alarms and plan counts of one decision.
pub fn record_decision(d: &Decision, shown: &mut Shown) {
    for (target, v) in &d.verdicts {
        if shown.verdicts.get(target) == Some(&v.verdict) {
            continue;
        }
        shown.verdicts.insert(target.clone(), v.verdict);
        let value = match v.verdict {
            Verdict::Up => 1.0,
            Verdict::Down => 0.0,
            Verdict::Unknown => -1.0,
        };
        metrics::gauge!("switchyard_target_verdict", "target" => target.as_str().to_string())
            .set(value);
    }
    for (region, s) in &d.regions {
        if shown.regions.get(region) == Some(&s.status) {
            continue;
        }
        shown.regions.insert(region.clone(), s.status);
        for status in [
            RegionStatus::Healthy,
            RegionStatus::Suspect,
            RegionStatus::Down,
            RegionStatus::Recovering,
        ] {
            metrics::gauge!("switchyard_region_state", "region" => region.clone(), "state" => format!("{status:?}").to_lowercase())
                .set(if s.status == status { 1.0 } else { 0.0 });
        }
    }
    if !d.plan.actions.is_empty() {
        metrics::counter!("switchyard_plans_total", "paused" => d.plan.paused.to_string())
            .increment(1);
    }
    metrics::gauge!("switchyard_alarms").set(d.alarms.len() as f64);
}

/// One gauge per alarm, `switchyard_alarm{kind, subject}`: 1 while it
/// stands, 0 once cleared (so an alert can name what fired).
pub fn set_alarms(changes: &crate::engine::AlarmChanges) {
    set_standing_alarms(changes.raised.iter(), true);
    set_standing_alarms(changes.cleared.iter(), false);
}

/// Every alarm of `standing` at 1 (`on`: raised, or this node took over
/// as leader) or 0 (cleared, or it stopped leading).
pub fn set_standing_alarms<'a>(
    standing: impl Iterator<Item = &'a crate::engine::PublishedAlarm>,
    on: bool,
) {
    for a in standing {
        metrics::gauge!(
            "switchyard_alarm",
            "kind" => crate::engine::kind_label(a.kind),
            "subject" => a.subject.clone()
        )
        .set(if on { 1.0 } else { 0.0 });
    }
}

/// The weights last applied to a record.
pub fn set_weights(record: &str, weights: &std::collections::BTreeMap<String, u32>) {
    for (region, w) in weights {
        metrics::gauge!("switchyard_weight", "record" => record.to_string(), "region" => region.clone())
            .set(f64::from(*w));
    }
}

/// The operator switches as the leader last read them.
pub fn set_switches(paused: bool, drained: usize) {
    metrics::gauge!("switchyard_automation_paused").set(if paused { 1.0 } else { 0.0 });
    metrics::gauge!("switchyard_regions_drained").set(drained as f64);
}

/// Actions that keep failing (a permanent error, or several retryable ones
/// in a row): an alert's cue that a person is needed.
pub fn set_failing_actions(alarms: &[crate::runtime::retry::Alarm]) {
    metrics::gauge!("switchyard_actions_failing").set(alarms.len() as f64);
}
