//! The `TrafficBackend` contract (`traffic::conformance`), run against
//! every backend: the JSON file, Route 53 through moto, the embedded DNS
//! server, and the simulator's in-memory backend.

use crate::traffic_support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use switchyard_controller::traffic::conformance::{Subject, run};
use switchyard_controller::traffic::embedded::{EmbeddedBackend, NameServer};
use switchyard_controller::traffic::file::FileBackend;
use switchyard_controller::traffic::memory::MemoryBackend;
use switchyard_tests::Route53Api;

const ZONE: &str = "example.com.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_backend_conforms() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Subject::new(ZONE);
    let b = FileBackend::with_records(dir.path().join("weights.json"), s.book());
    run(&b, &s).await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn memory_backend_conforms() -> anyhow::Result<()> {
    let s = Subject::new(ZONE);
    run(&MemoryBackend::with_records(s.book()), &s).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route53_backend_conforms_through_moto() -> anyhow::Result<()> {
    let api = Route53Api::start().await?;
    let zone = traffic_support::create_zone(&api, ZONE).await?;
    let s = Subject::new(ZONE);
    let b = traffic_support::route53(&zone, api.endpoint(), s.book(), Duration::from_secs(20));
    run(&b, &s).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_backend_conforms() -> anyhow::Result<()> {
    let s = Subject::new(ZONE);
    let ns = [NameServer {
        name: format!("ns1.{ZONE}"),
        address: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    }];
    let b = EmbeddedBackend::serve(
        ZONE,
        &ns,
        s.book(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    )
    .await?;
    run(&b, &s).await?;
    Ok(())
}
