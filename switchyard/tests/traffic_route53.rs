//! Route 53 through moto, with a counting (and throttling) proxy in front:
//! weights applied and read back, only differences sent, no request at all
//! when nothing differs, throttling (`Throttling`, `PriorRequestNotComplete`)
//! retried or given up on at the deadline, a `PENDING` change followed to
//! `INSYNC` in the background without holding up the apply, a simple
//! record refused with its fix, and calls paced.
//!
//! Which behaviour comes from whom: moto stores what it is sent (it accepts
//! weights above 255 and its batches are not atomic); the 0–255 scaling,
//! the all-or-nothing refusal and the retries are Switchyard's and are
//! checked here without relying on moto for them.

use crate::traffic_support;

use std::time::{Duration, Instant};

use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use switchyard_controller::traffic::conformance::Subject;
use switchyard_controller::traffic::{
    RecordChange, TrafficBackend, TrafficChange, TrafficError, Weights,
};
use switchyard_tests::Route53Api;
use traffic_support::moto_weights;
use traffic_support::proxy::Proxy;

const ZONE: &str = "example.com.";

fn set(s: &Subject, w: [u32; 3]) -> Vec<RecordChange> {
    vec![RecordChange {
        record: s.record(),
        weights: s.regions.iter().cloned().zip(w).collect(),
    }]
}

struct Setup {
    api: Route53Api,
    proxy: Proxy,
    zone: String,
    s: Subject,
}

async fn setup() -> anyhow::Result<Setup> {
    let api = Route53Api::start().await?;
    let zone = traffic_support::create_zone(&api, ZONE).await?;
    let proxy = Proxy::start(traffic_support::endpoint_addr(api.endpoint())?).await?;
    Ok(Setup {
        api,
        proxy,
        zone,
        s: Subject::new(ZONE),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_regions_shift_to_zero_and_no_write_when_equal() -> anyhow::Result<()> {
    let t = setup().await?;
    let b = traffic_support::route53(
        &t.zone,
        &t.proxy.endpoint(),
        t.s.book(),
        Duration::from_secs(20),
    );

    b.apply(&set(&t.s, [60, 30, 10])).await?;
    assert_eq!(t.proxy.changes(), 1, "one ChangeBatch for three regions");
    let want: Weights = t.s.regions.iter().cloned().zip([60, 30, 10]).collect();
    assert_eq!(moto_weights(&t.api, &t.zone, &t.s.record()).await?, want);

    b.apply(&set(&t.s, [60, 30, 0])).await?;
    assert_eq!(t.proxy.changes(), 2);
    let read = b.read(&t.s.record()).await?;
    let want: Weights = t.s.regions.iter().cloned().zip([60, 30, 0]).collect();
    assert_eq!(read.weights(), want);
    assert_eq!(moto_weights(&t.api, &t.zone, &t.s.record()).await?, want);

    // The same weights again: reads, but not one change request.
    let before = t.proxy.requests();
    let applied = b
        .apply_change(&TrafficChange::weights(set(&t.s, [60, 30, 0])))
        .await?;
    assert_eq!(applied.changed, 0);
    assert_eq!(
        t.proxy.changes(),
        2,
        "no API write when desired equals actual"
    );
    assert!(t.proxy.requests() > before, "it did read the zone");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_until_the_change_goes_through() -> anyhow::Result<()> {
    let t = setup().await?;
    let b = traffic_support::route53(
        &t.zone,
        &t.proxy.endpoint(),
        t.s.book(),
        Duration::from_secs(20),
    );
    t.proxy.throttle_next_changes(3);
    b.apply(&set(&t.s, [60, 30, 10])).await?;
    assert_eq!(t.proxy.throttled(), 3);
    assert_eq!(
        t.proxy.changes(),
        4,
        "three throttled, the fourth went through"
    );
    let want: Weights = t.s.regions.iter().cloned().zip([60, 30, 10]).collect();
    assert_eq!(moto_weights(&t.api, &t.zone, &t.s.record()).await?, want);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prior_request_not_complete_is_retried_like_throttling() -> anyhow::Result<()> {
    let t = setup().await?;
    let b = traffic_support::route53(
        &t.zone,
        &t.proxy.endpoint(),
        t.s.book(),
        Duration::from_secs(20),
    );
    t.proxy.throttle_as_prior_request(true);
    t.proxy.throttle_next_changes(2);
    b.apply(&set(&t.s, [0, 50, 50])).await?;
    assert_eq!((t.proxy.throttled(), t.proxy.changes()), (2, 3));
    let want: Weights = t.s.regions.iter().cloned().zip([0, 50, 50]).collect();
    assert_eq!(moto_weights(&t.api, &t.zone, &t.s.record()).await?, want);
    Ok(())
}

/// The real service answers `PENDING` for about a minute while it carries a
/// change to its name servers. The apply returns as soon as the change is
/// accepted (the API already answers with it), and a background tracker
/// polls `GetChange` with backoff until `INSYNC`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_change_is_followed_to_insync_without_holding_up_the_apply() -> anyhow::Result<()>
{
    let t = setup().await?;
    let b = traffic_support::route53(
        &t.zone,
        &t.proxy.endpoint(),
        t.s.book(),
        Duration::from_secs(20),
    );
    let pending = Duration::from_secs(3);
    t.proxy.pending_for(pending);
    let started = Instant::now();
    b.apply(&set(&t.s, [10, 20, 30])).await?;
    let took = started.elapsed();
    let following = b.syncing().pending();
    assert_eq!(
        following.len(),
        1,
        "the accepted change is followed in the background (apply took {took:?})"
    );
    assert!(took < pending, "the apply waited for INSYNC: {took:?}");
    let want: Weights = t.s.regions.iter().cloned().zip([10, 20, 30]).collect();
    assert_eq!(moto_weights(&t.api, &t.zone, &t.s.record()).await?, want);
    // Followed until the proxy stops saying PENDING, then no more polls.
    switchyard_tests::wait::wait_for("the change INSYNC", Duration::from_secs(30), || {
        let left = b.syncing().pending();
        async move {
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("still following {left:?}"))
            }
        }
    })
    .await?;
    assert!(
        started.elapsed() >= pending,
        "seen INSYNC while the proxy still said PENDING"
    );
    let polls = t.proxy.get_changes();
    assert!(polls >= 2, "GetChange polled {polls} times");
    // Backoff: with a 50 ms first wait doubling, 3 s of PENDING takes a
    // handful of polls, not 60.
    assert!(polls <= 10, "GetChange polled {polls} times in {pending:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(t.proxy.get_changes(), polls, "no poll after INSYNC");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_past_the_deadline_gives_up_with_a_clear_error() -> anyhow::Result<()> {
    let t = setup().await?;
    let deadline = Duration::from_secs(2);
    let b = traffic_support::route53(&t.zone, &t.proxy.endpoint(), t.s.book(), deadline);
    t.proxy.throttle_all_changes(true);
    let started = Instant::now();
    let err = b
        .apply(&set(&t.s, [60, 30, 10]))
        .await
        .expect_err("throttled past the deadline");
    let took = started.elapsed();
    assert!(matches!(err, TrafficError::Unavailable(_)), "{err}");
    assert!(err.retryable());
    let msg = err.to_string();
    assert!(
        msg.contains("gave up") && msg.contains("Throttling"),
        "{msg}"
    );
    assert!(
        t.proxy.throttled() >= 3,
        "it retried: {}",
        t.proxy.throttled()
    );
    assert!(took <= deadline + Duration::from_secs(2), "took {took:?}");
    assert!(
        moto_weights(&t.api, &t.zone, &t.s.record())
            .await?
            .is_empty()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simple_record_at_the_name_is_refused_with_how_to_fix_it() -> anyhow::Result<()> {
    let t = setup().await?;
    let simple = ResourceRecordSet::builder()
        .name(t.s.record())
        .r#type(RrType::A)
        .ttl(300)
        .resource_records(ResourceRecord::builder().value("192.0.2.99").build()?)
        .build()?;
    t.api
        .client()
        .change_resource_record_sets()
        .hosted_zone_id(&t.zone)
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    Change::builder()
                        .action(ChangeAction::Create)
                        .resource_record_set(simple)
                        .build()?,
                )
                .build()?,
        )
        .send()
        .await?;
    let b = traffic_support::route53(
        &t.zone,
        &t.proxy.endpoint(),
        t.s.book(),
        Duration::from_secs(20),
    );
    let err = b
        .apply(&set(&t.s, [60, 30, 10]))
        .await
        .expect_err("refused");
    assert!(!err.retryable());
    let msg = err.to_string();
    assert!(
        msg.contains("simple record") && msg.contains("delete it"),
        "{msg}"
    );
    assert_eq!(t.proxy.changes(), 0, "nothing was sent");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_above_255_are_scaled_by_us_though_moto_would_take_them() -> anyhow::Result<()> {
    let t = setup().await?;
    // moto itself stores 300 (real Route 53 would answer InvalidInput)…
    let raw = ResourceRecordSet::builder()
        .name(t.s.other())
        .r#type(RrType::A)
        .ttl(30)
        .set_identifier("us-east")
        .weight(300)
        .resource_records(ResourceRecord::builder().value("192.0.2.11").build()?)
        .build()?;
    t.api
        .client()
        .change_resource_record_sets()
        .hosted_zone_id(&t.zone)
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    Change::builder()
                        .action(ChangeAction::Upsert)
                        .resource_record_set(raw)
                        .build()?,
                )
                .build()?,
        )
        .send()
        .await?;
    assert_eq!(
        moto_weights(&t.api, &t.zone, &t.s.other()).await?["us-east"],
        300
    );
    // …while the backend never sends more than 255, keeping the shares.
    let b = traffic_support::route53(
        &t.zone,
        &t.proxy.endpoint(),
        t.s.book(),
        Duration::from_secs(20),
    );
    b.apply(&set(&t.s, [300, 100, 0])).await?;
    let want: Weights = t.s.regions.iter().cloned().zip([255, 85, 0]).collect();
    assert_eq!(moto_weights(&t.api, &t.zone, &t.s.record()).await?, want);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_paced_under_the_rate_limit() -> anyhow::Result<()> {
    let t = setup().await?;
    let creds = aws_sdk_route53::config::Credentials::new("testing", "testing", None, None, "t");
    let cfg = traffic_support::route53_cfg(&t.zone, &t.proxy.endpoint(), 10);
    let b = switchyard_controller::traffic::route53::Route53Backend::with_credentials(
        &cfg,
        t.s.book(),
        creds,
    );
    let started = Instant::now();
    for _ in 0..11 {
        b.read(&t.s.record()).await?;
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(950),
        "11 calls at 10/s took {took:?}"
    );
    assert_eq!(t.proxy.requests(), 11);
    Ok(())
}
