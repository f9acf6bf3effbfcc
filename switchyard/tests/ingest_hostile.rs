//! The report service against hostile input over real gRPC: random bytes
//! as message bodies, and random well-formed reports, sent to an ingest
//! server on a real socket. Nothing panics, every stream ends with a
//! summary or a status that says what failed, and the server keeps
//! accepting good reports after each.

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::raw::RawCodec;
use prost::Message;
use switchyard_controller::api::ingest::{Aggregator, IngestService, KnownNames};
use switchyard_controller::clock::SystemClock;
use switchyard_controller::engine::Policy;
use switchyard_probes::proto::probe_ingest_server::ProbeIngestServer;
use switchyard_probes::proto::{IngestSummary, Outcome, ProbeReport};
use tonic::{Code, Status};

async fn serve() -> anyhow::Result<SocketAddr> {
    let known = KnownNames {
        cluster: "prod".into(),
        targets: ["svc:api@a".to_string()].into(),
        regions: ["a".to_string(), "b".to_string()].into(),
    };
    let service = IngestService::new(
        Arc::new(Aggregator::new(Policy::default())),
        Arc::new(known),
        Arc::new(SystemClock),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ProbeIngestServer::new(service))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    Ok(addr)
}

/// One `Report` stream of raw `bodies`: the summary, or the status.
async fn send(
    addr: SocketAddr,
    bodies: Vec<Vec<u8>>,
) -> anyhow::Result<Result<IngestSummary, Status>> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))?
        .timeout(Duration::from_secs(10))
        .connect()
        .await?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let path = http::uri::PathAndQuery::from_static("/switchyard.probe.v1.ProbeIngest/Report");
    let request = tonic::Request::new(tokio_stream::iter(bodies));
    Ok(match grpc.client_streaming(request, path, RawCodec).await {
        Ok(reply) => Ok(IngestSummary::decode(reply.into_inner().as_slice())?),
        Err(status) => Err(status),
    })
}

fn good_report() -> Vec<u8> {
    ProbeReport {
        probe_id: "p".into(),
        vantage_region: "a".into(),
        target: "svc:api@a".into(),
        check: "http".into(),
        outcome: Outcome::Up as i32,
        observed_at_unix_ms: chrono::Utc::now().timestamp_millis(),
        cluster: "prod".into(),
        ..ProbeReport::default()
    }
    .encode_to_vec()
}

/// After whatever came before, a good report is still accepted.
async fn still_serves(addr: SocketAddr) -> anyhow::Result<()> {
    let s = send(addr, vec![good_report()]).await?;
    anyhow::ensure!(
        matches!(&s, Ok(s) if s.accepted == 1 && s.rejected == 0),
        "a good report after hostile input: {s:?}"
    );
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Random bytes where a report belongs: either they happen to decode
    /// (then the report is judged like any other: counted accepted or
    /// rejected) or the stream ends with a status saying the message could
    /// not be decoded, naming the field when there is one.
    #[test]
    fn random_bytes_are_refused_cleanly(
        bodies in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..64), 1..4)
    ) {
        let rt = runtime();
        let result: anyhow::Result<()> = rt.block_on(async {
            let addr = serve().await?;
            let n = bodies.len() as u64;
            match send(addr, bodies).await? {
                // Bodies that decode are judged one by one: every one counted.
                Ok(s) => anyhow::ensure!(s.accepted + s.rejected == n, "{s:?} for {n}"),
                Err(status) => anyhow::ensure!(
                    status.code() == Code::Internal
                        && status.message().contains("failed to decode"),
                    "{status:?}"
                ),
            }
            still_serves(addr).await
        });
        proptest::prop_assert!(result.is_ok(), "{:?}", result);
    }

    /// Well-formed reports with wrong contents are judged one by one: each
    /// counted, none ends the stream.
    #[test]
    fn wrong_reports_are_counted_not_fatal(
        reports in proptest::collection::vec(
            (".{0,12}", ".{0,12}", proptest::num::i64::ANY, proptest::num::i32::ANY, ".{0,8}"),
            1..6,
        )
    ) {
        let rt = runtime();
        let n = reports.len() as u64;
        let bodies: Vec<Vec<u8>> = reports
            .into_iter()
            .map(|(vantage, target, at, outcome, cluster)| {
                ProbeReport {
                    vantage_region: vantage,
                    target,
                    observed_at_unix_ms: at,
                    outcome,
                    cluster,
                    ..ProbeReport::default()
                }
                .encode_to_vec()
            })
            .collect();
        let result: anyhow::Result<()> = rt.block_on(async {
            let addr = serve().await?;
            let s = send(addr, bodies).await?;
            anyhow::ensure!(
                matches!(&s, Ok(s) if s.accepted + s.rejected == n),
                "{s:?} for {n} reports"
            );
            still_serves(addr).await
        });
        proptest::prop_assert!(result.is_ok(), "{:?}", result);
    }
}

/// The two refusals the properties above allow, each seen for certain: a
/// body that is no protobuf at all, and a report whose `target` is not
/// UTF-8 (the status names the field).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_reports_end_the_stream_with_a_status_naming_the_field() -> anyhow::Result<()> {
    let addr = serve().await?;
    let garbage = send(addr, vec![vec![0xff, 0xff, 0xff]]).await?;
    assert!(
        matches!(&garbage, Err(s) if s.code() == Code::Internal && s.message().contains("failed to decode")),
        "{garbage:?}"
    );
    // Field 3 (target), length-delimited, two bytes that are not UTF-8.
    let bad_target = send(addr, vec![vec![0x1a, 0x02, 0xc3, 0x28]]).await?;
    assert!(
        matches!(&bad_target, Err(s) if s.message().contains("ProbeReport.target")),
        "{bad_target:?}"
    );
    still_serves(addr).await
}
