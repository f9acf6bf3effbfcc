//! Three controller processes on the Route 53 backend (moto, driven by the
//! real `aws-sdk-route53`), with stand-in probes: the leader creates the
//! weighted records, a region lost (its endpoint down everywhere, its
//! controller killed) leaves Route 53 within seconds — read back from moto —
//! and a weight edited behind the controllers' back (as in the console) is
//! found by the drift check and put back, journaled with why.

use crate::common;
use crate::traffic_support;

use std::time::Duration;

use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use common::{Backend, Cluster, RECORD, REGIONS, endpoint_ip, target};
use switchyard_controller::traffic::Weights;
use switchyard_tests::Route53Api;
use switchyard_tests::wait::wait_for;
use traffic_support::moto_weights;

async fn wait_weights(
    api: &Route53Api,
    zone: &str,
    what: &str,
    want: [u32; 3],
) -> anyhow::Result<()> {
    let want: Weights = REGIONS.iter().map(|r| r.to_string()).zip(want).collect();
    wait_for(what, Duration::from_secs(30), || async {
        let got = moto_weights(api, zone, RECORD)
            .await
            .map_err(|e| e.to_string())?;
        (got == want)
            .then_some(())
            .ok_or_else(|| format!("moto holds {got:?}"))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_region_leaves_route53_and_drift_is_put_back() -> anyhow::Result<()> {
    let api = Route53Api::start().await?;
    let zone = traffic_support::create_zone(&api, "example.test.").await?;
    let backend = Backend::Route53 {
        endpoint: api.endpoint().to_string(),
        zone_id: zone.clone(),
    };
    let mut cl = Cluster::start_with(1, backend).await?;
    let result = scenario(&mut cl, &api, &zone).await;
    if result.is_err() {
        for c in &cl.controllers {
            eprintln!("--- {} log ---\n{}", c.id(), c.log());
        }
    }
    result
}

async fn scenario(cl: &mut Cluster, api: &Route53Api, zone: &str) -> anyhow::Result<()> {
    let fleet = cl.all_up_fleet();
    cl.wait_leader(None, Duration::from_secs(20)).await?;
    wait_weights(api, zone, "the records created", [100, 100, 100]).await?;

    // Region c is lost: its endpoint fails everywhere and its controller dies.
    fleet.set_all(&target("c"), &REGIONS, false);
    cl.controllers[2].kill();
    wait_weights(api, zone, "region c out of Route 53", [150, 150, 0]).await?;

    // Someone puts c back by hand, as in the console.
    let by_hand = ResourceRecordSet::builder()
        .name(RECORD)
        .r#type(RrType::A)
        .set_identifier("c")
        .weight(100)
        .ttl(30)
        .resource_records(ResourceRecord::builder().value(endpoint_ip(2)).build()?)
        .build()?;
    api.client()
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    Change::builder()
                        .action(ChangeAction::Upsert)
                        .resource_record_set(by_hand)
                        .build()?,
                )
                .build()?,
        )
        .send()
        .await?;
    let edited = moto_weights(api, zone, RECORD).await?;
    assert_eq!(edited.get("c"), Some(&100), "{edited:?}");
    wait_weights(api, zone, "the drift put back", [150, 150, 0]).await?;
    let journal = cl.journal().await?;
    let corrected = journal.iter().any(|e| {
        e["status"] == "done"
            && e["reasons"]
                .to_string()
                .contains(&format!("drift: {RECORD} holds"))
    });
    assert!(corrected, "the correction says why: {journal:#?}");
    drop(fleet);
    Ok(())
}
