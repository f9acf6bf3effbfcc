//! Self-test of the Route 53 API fixture: a weighted record set written
//! through the real `aws-sdk-route53` reads back with its weights.

use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use switchyard_tests::Route53Api;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_record_set_reads_back_with_its_weights() -> anyhow::Result<()> {
    let api = Route53Api::start().await?;
    let client = api.client();
    let zone = client
        .create_hosted_zone()
        .name("example.com.")
        .caller_reference("fixture-self-test")
        .send()
        .await?;
    let zone_id = zone
        .hosted_zone()
        .map(|z| z.id().to_string())
        .unwrap_or_default();
    assert!(!zone_id.is_empty());

    let weights = [
        ("us-east", "192.0.2.1", 60),
        ("eu-west", "192.0.2.2", 30),
        ("ap-south", "192.0.2.3", 10),
    ];
    let mut batch = ChangeBatch::builder().comment("three-region weights");
    for (region, ip, weight) in weights {
        batch = batch.changes(
            Change::builder()
                .action(ChangeAction::Upsert)
                .resource_record_set(
                    ResourceRecordSet::builder()
                        .name("api.example.com.")
                        .r#type(RrType::A)
                        .ttl(30)
                        .set_identifier(region)
                        .weight(weight)
                        .resource_records(ResourceRecord::builder().value(ip).build()?)
                        .build()?,
                )
                .build()?,
        );
    }
    let change = client
        .change_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .change_batch(batch.build()?)
        .send()
        .await?;
    let change_id = change
        .change_info()
        .map(|c| c.id().to_string())
        .unwrap_or_default();
    let status = client.get_change().id(&change_id).send().await?;
    assert!(status.change_info().is_some());

    let listed = client
        .list_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .send()
        .await?;
    let mut got: Vec<(String, String, i64)> = listed
        .resource_record_sets()
        .iter()
        .filter(|r| r.name() == "api.example.com." && *r.r#type() == RrType::A)
        .map(|r| {
            (
                r.set_identifier().unwrap_or_default().to_string(),
                r.resource_records()[0].value().to_string(),
                r.weight().unwrap_or(-1),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String, i64)> = weights
        .iter()
        .map(|(r, ip, w)| (r.to_string(), ip.to_string(), *w))
        .collect();
    want.sort();
    assert_eq!(got, want);
    Ok(())
}
