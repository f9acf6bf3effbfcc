//! Probe ingest over real gRPC: a good stream is accepted and counted; a
//! report naming an unknown target, an undeclared region, another cluster or
//! a time in the future is refused alone and counted by reason, and the
//! stream goes on: the good reports around it still count.
//! `/metrics` exposes the controller's state.

use crate::common;

use std::time::Duration;

use common::{Cluster, target};
use switchyard_probes::proto::probe_ingest_client::ProbeIngestClient;
use switchyard_probes::proto::{Outcome, ProbeReport};
use switchyard_tests::wait::wait_for;

fn report(target: &str, vantage: &str, ahead_ms: i64, seq: u64) -> ProbeReport {
    ProbeReport {
        probe_id: "probe-x".into(),
        vantage_region: vantage.into(),
        target: target.into(),
        check: "http".into(),
        outcome: Outcome::Up as i32,
        reason: String::new(),
        latency_us: 5,
        observed_at_unix_ms: chrono::Utc::now().timestamp_millis() + ahead_ms,
        sequence: seq,
        cluster: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reports_are_rejected_with_a_reason_and_counted() -> anyhow::Result<()> {
    let cl = Cluster::start(1).await?;
    let ctl = &cl.controllers[0];
    let mut client = ProbeIngestClient::connect(ctl.grpc_url()).await?;

    let good = vec![
        report(&target("a"), "b", 0, 1),
        report(&target("b"), "c", 0, 2),
    ];
    let summary = client.report(tokio_stream::iter(good)).await?.into_inner();
    assert_eq!(summary.accepted, 2);

    let other_cluster = ProbeReport {
        cluster: "someone-elses".into(),
        ..report(&target("a"), "b", 0, 10)
    };
    let cases = [
        (report("svc:nope@a", "b", 0, 7), "unknown_target"),
        (report(&target("a"), "mars", 0, 8), "unknown_region"),
        (report(&target("a"), "b", 3_600_000, 9), "future_timestamp"),
        (other_cluster, "other_cluster"),
    ];
    for (i, (bad, label)) in cases.into_iter().enumerate() {
        // Good, bad, good on one stream: both good ones count.
        let stream = vec![
            report(&target("c"), "a", 0, 1),
            bad,
            report(&target("a"), "c", 0, 2),
        ];
        let summary = client
            .report(tokio_stream::iter(stream))
            .await
            .map_err(|s| anyhow::anyhow!("case {label}: the stream was ended: {s}"))?
            .into_inner();
        assert_eq!((summary.accepted, summary.rejected), (2, 1), "{label}");
        let name = format!("switchyard_reports_rejected_total{{reason=\"{label}\"}}");
        let counted = ctl.metric(&name).await?;
        assert_eq!(counted, Some(1.0), "{name}");
        let accepted = ctl.metric("switchyard_reports_accepted_total").await?;
        assert_eq!(
            accepted,
            Some(2.0 + 2.0 * (i as f64 + 1.0)),
            "after {label}"
        );
    }
    // Our own cluster's name is accepted.
    let ours = ProbeReport {
        cluster: cl.cluster.clone(),
        ..report(&target("b"), "a", 0, 11)
    };
    let summary = client
        .report(tokio_stream::iter(vec![ours]))
        .await?
        .into_inner();
    assert_eq!((summary.accepted, summary.rejected), (1, 0));

    // The controller exposes leadership and decisions.
    cl.wait_leader(None, Duration::from_secs(20)).await?;
    wait_for(
        "a leader gauge of 1 somewhere",
        Duration::from_secs(20),
        || async {
            let mut leaders = 0.0;
            for c in &cl.controllers {
                leaders += c
                    .metric("switchyard_leader")
                    .await
                    .map_err(|e| e.to_string())?
                    .unwrap_or(0.0);
            }
            if leaders == 1.0 {
                Ok(())
            } else {
                Err(format!("{leaders} leaders"))
            }
        },
    )
    .await?;
    let text = ctl.metrics().await?;
    assert!(text.contains("switchyard_reports_accepted_total"), "{text}");
    Ok(())
}
