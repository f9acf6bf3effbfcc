//! Shared by the `traffic_*` integration tests: moto zones, a counting and
//! throttling proxy in front of moto, backends built for the conformance
//! subject, and a raw DNS client.

#![allow(dead_code)]

pub mod dns;
pub mod proxy;

use std::net::SocketAddr;
use std::time::Duration;

use switchyard_controller::config::Route53;
use switchyard_controller::traffic::Weights;
use switchyard_controller::traffic::records::RecordBook;
use switchyard_controller::traffic::route53::retry::Backoff;
use switchyard_controller::traffic::route53::{Route53Backend, Timing};
use switchyard_tests::Route53Api;

/// Creates hosted zone `name` in moto; returns its id without the
/// `/hostedzone/` prefix, as the config takes it.
pub async fn create_zone(api: &Route53Api, name: &str) -> anyhow::Result<String> {
    let out = api
        .client()
        .create_hosted_zone()
        .name(name)
        .caller_reference(format!(
            "switchyard-test-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ))
        .send()
        .await?;
    let id = out
        .hosted_zone()
        .map(|z| z.id().trim_start_matches("/hostedzone/").to_string())
        .unwrap_or_default();
    anyhow::ensure!(!id.is_empty(), "moto returned no hosted zone id");
    Ok(id)
}

/// Region → weight of `name` as moto holds it, read with moto's own client.
pub async fn moto_weights(api: &Route53Api, zone: &str, name: &str) -> anyhow::Result<Weights> {
    let out = api
        .client()
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await?;
    Ok(out
        .resource_record_sets()
        .iter()
        .filter(|r| r.name() == name)
        .filter_map(|r| {
            Some((
                r.set_identifier()?.to_string(),
                u32::try_from(r.weight()?).ok()?,
            ))
        })
        .collect())
}

/// The address part of an `http://host:port` endpoint.
pub fn endpoint_addr(endpoint: &str) -> anyhow::Result<SocketAddr> {
    Ok(endpoint.trim_start_matches("http://").parse()?)
}

/// The `[dns]` section of a Route 53 config pointing at `endpoint`.
pub fn route53_cfg(zone_id: &str, endpoint: &str, rate: u32) -> Route53 {
    Route53 {
        hosted_zone_id: zone_id.to_string(),
        endpoint: Some(endpoint.to_string()),
        aws_region: "us-east-1".into(),
        max_requests_per_second: rate,
    }
}

/// Short timing for tests: moto answers at once and is always INSYNC.
pub fn quick(deadline: Duration) -> Timing {
    Timing {
        deadline,
        sync_deadline: Duration::from_secs(10),
        poll: Duration::from_millis(50),
        backoff: Backoff {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(200),
        },
    }
}

/// A Route 53 backend over `endpoint` with moto's dummy credentials.
pub fn route53(
    zone_id: &str,
    endpoint: &str,
    book: RecordBook,
    deadline: Duration,
) -> Route53Backend {
    let creds = aws_sdk_route53::config::Credentials::new("testing", "testing", None, None, "test");
    Route53Backend::with_credentials(&route53_cfg(zone_id, endpoint, 1000), book, creds)
        .with_timing(quick(deadline))
}
