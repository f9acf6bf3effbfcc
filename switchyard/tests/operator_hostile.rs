//! The operator service against hostile input over real gRPC, on a real
//! etcd: random bytes as the body of every call, and random well-formed
//! switch, submit and history requests whose fields may each be wrong.
//! Nothing panics; a body that is no message ends with a decode status; a
//! well-formed request is carried out exactly when every field is valid,
//! and otherwise refused with INVALID_ARGUMENT naming a field that is in
//! fact wrong; the service answers a good call after each.

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::raw::RawCodec;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use prost::Message;
use switchyard_controller::api::operator::proto::operator_server::OperatorServer;
use switchyard_controller::api::operator::proto::{
    HistoryRequest, ReadRequest, SubmitRequest, SwitchRequest,
};
use switchyard_controller::api::operator::{OperatorBook, OperatorService};
use switchyard_tests::Etcd;
use tonic::{Code, Status};

/// The regions and members the test config declares.
const REGIONS: [&str; 3] = ["a", "b", "c"];
const MEMBERS: [&str; 3] = ["m0", "m1", "m2"];

/// An operator service of a config with database `orders`, on `etcd`.
async fn serve(etcd: &Etcd, dir: &std::path::Path) -> anyhow::Result<SocketAddr> {
    let members: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", 3306 + i)).collect();
    let extra = common::orders::orders_config(dir, &members, "");
    let (path, _) = common::write_config_extra(
        dir,
        &etcd.endpoints(),
        "hostile",
        common::Backend::File,
        &extra,
    );
    let cfg = switchyard_controller::config::load(&path)?.config;
    let book = OperatorBook::from_config(&cfg.operators)?;
    let service = OperatorService::new(
        Arc::new(cfg),
        Default::default(),
        tokio::sync::watch::channel(Arc::new(book)).1,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(OperatorServer::new(service))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    Ok(addr)
}

/// One unary call of `method` with `body` as the admin: the reply's
/// bytes, or the status.
async fn call(
    addr: SocketAddr,
    method: &'static str,
    body: Vec<u8>,
) -> anyhow::Result<Result<Vec<u8>, Status>> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))?
        .timeout(Duration::from_secs(10))
        .connect()
        .await?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let path = http::uri::PathAndQuery::from_static(method);
    let mut request = tonic::Request::new(body);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", common::ADMIN_TOKEN).parse()?,
    );
    Ok(grpc
        .unary(request, path, RawCodec)
        .await
        .map(tonic::Response::into_inner))
}

/// The unary methods, by path.
const METHODS: [&str; 7] = [
    "/switchyard.operator.v1.Operator/Status",
    "/switchyard.operator.v1.Operator/Plan",
    "/switchyard.operator.v1.Operator/History",
    "/switchyard.operator.v1.Operator/Switch",
    "/switchyard.operator.v1.Operator/Submit",
    "/switchyard.operator.v1.Operator/Outcome",
    "/switchyard.operator.v1.Operator/Cancel",
];

/// After whatever came before, a status is still answered.
async fn still_serves(addr: SocketAddr) -> anyhow::Result<()> {
    let r = call(addr, METHODS[0], ReadRequest {}.encode_to_vec()).await?;
    anyhow::ensure!(r.is_ok(), "status after hostile input: {r:?}");
    Ok(())
}

/// The field an INVALID_ARGUMENT names (the message starts `field: `).
fn named_field(s: &Status) -> Option<&str> {
    (s.code() == Code::InvalidArgument)
        .then(|| s.message().split_once(':').map(|(f, _)| f))
        .flatten()
}

/// A string that is often valid (one of `valid`), sometimes empty,
/// sometimes anything, sometimes with a control character.
fn text(valid: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        4 => proptest::sample::select(valid).prop_map(str::to_string),
        1 => Just(String::new()),
        1 => "\\PC{0,12}",
        1 => "[a-z]{1,4}\n[a-z]{0,4}",
    ]
    .boxed()
}

/// A reason the service takes: not blank, no control characters, at most
/// 1000 bytes.
fn reason_ok(r: &str) -> bool {
    let t = r.trim();
    !t.is_empty() && !t.chars().any(char::is_control) && t.len() <= 1000
}

/// The fields of a switch that are wrong.
fn switch_faults(r: &SwitchRequest) -> Vec<&'static str> {
    let mut wrong = Vec::new();
    let needs_region = matches!(r.kind, 3..=5);
    if !(1..=5).contains(&r.kind) {
        wrong.push("kind");
    }
    if needs_region && !REGIONS.contains(&r.region.as_str()) {
        wrong.push("region");
    }
    if !reason_ok(&r.reason) {
        wrong.push("reason");
    }
    wrong
}

/// The fields of a submit that are wrong.
fn submit_faults(r: &SubmitRequest) -> Vec<&'static str> {
    let mut wrong = Vec::new();
    let member = |m: &str| MEMBERS.contains(&m);
    match r.kind {
        1 => {
            if !r.to.is_empty() && !member(&r.to) {
                wrong.push("to");
            }
        }
        2 => {
            if !member(&r.to) {
                wrong.push("to");
            }
            if r.force {
                wrong.push("force");
            }
        }
        _ => wrong.push("kind"),
    }
    if r.database != "orders" {
        wrong.push("database");
    }
    if !r.expected_primary.is_empty() && !member(&r.expected_primary) {
        wrong.push("expected_primary");
    }
    if !reason_ok(&r.reason) {
        wrong.push("reason");
    }
    if r.deadline_seconds > 24 * 3600 {
        wrong.push("deadline_seconds");
    }
    wrong
}

/// The fields of a history request that are wrong.
fn history_faults(r: &HistoryRequest) -> Vec<&'static str> {
    let mut wrong = Vec::new();
    if r.limit > 1000 {
        wrong.push("limit");
    }
    let cursor = r.before.as_bytes();
    let well_formed = cursor.len() > 14
        && cursor.len() <= 1024
        && cursor[..13].iter().all(u8::is_ascii_digit)
        && cursor[13] == b'-'
        && cursor.iter().all(|c| c.is_ascii_graphic() && *c != b'/');
    if !r.before.is_empty() && !well_formed {
        wrong.push("before");
    }
    wrong
}

/// A request of one of the three kinds, encoded, with its wrong fields.
fn well_formed() -> impl Strategy<Value = (&'static str, Vec<u8>, Vec<&'static str>)> {
    let switch = (0i32..7, text(&REGIONS), text(&["maintenance", "CHG-1"])).prop_map(
        |(kind, region, reason)| {
            let r = SwitchRequest {
                kind,
                region,
                reason,
            };
            (METHODS[3], r.encode_to_vec(), switch_faults(&r))
        },
    );
    let submit = (
        0i32..4,
        text(&["orders"]),
        text(&MEMBERS),
        any::<bool>(),
        text(&["planned"]),
        text(&MEMBERS),
        prop_oneof![Just(0u32), 1u32..100_000],
    )
        .prop_map(
            |(kind, database, to, force, reason, expected_primary, deadline)| {
                let r = SubmitRequest {
                    kind,
                    database,
                    to,
                    force,
                    reason,
                    expected_primary,
                    deadline_seconds: deadline,
                };
                (METHODS[4], r.encode_to_vec(), submit_faults(&r))
            },
        );
    let history = (
        prop_oneof![0u32..1001, 1001u32..5000],
        prop_oneof![
            Just(String::new()),
            "[0-9]{13}-[a-z0-9-]{1,12}",
            "\\PC{0,20}",
        ],
    )
        .prop_map(|(limit, before)| {
            let r = HistoryRequest { limit, before };
            (METHODS[2], r.encode_to_vec(), history_faults(&r))
        });
    prop_oneof![switch, submit, history]
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: None,
        ..RunnerConfig::default()
    })
}

#[test]
fn hostile_operator_calls_are_refused_naming_the_field() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let etcd = rt.block_on(Etcd::single())?;
    let addr = rt.block_on(serve(&etcd, dir.path()))?;

    // Random bytes as the body of every call.
    let bytes = (
        proptest::sample::select(&METHODS[..]),
        proptest::collection::vec(any::<u8>(), 0..48),
    );
    runner(96)
        .run(&bytes, |(method, body)| {
            let result: anyhow::Result<()> = rt.block_on(async {
                match call(addr, method, body).await? {
                    Ok(_) => {}
                    // Undecodable: tonic says so. Decodable: judged like
                    // any request, a refusal naming a field.
                    Err(s) if s.code() == Code::Internal => {
                        anyhow::ensure!(s.message().contains("failed to decode"), "{method}: {s:?}")
                    }
                    Err(s) => anyhow::ensure!(
                        named_field(&s).is_some() || s.code() == Code::Unavailable,
                        "{method}: {s:?}"
                    ),
                }
                still_serves(addr).await
            });
            prop_assert!(result.is_ok(), "{:?}", result);
            Ok(())
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    // Well-formed requests, any field possibly wrong.
    runner(160)
        .run(&well_formed(), |(method, body, wrong)| {
            let result: anyhow::Result<()> = rt.block_on(async {
                match call(addr, method, body).await? {
                    Ok(_) => {
                        anyhow::ensure!(wrong.is_empty(), "{method} accepted with {wrong:?} wrong")
                    }
                    Err(s) => {
                        let field = named_field(&s);
                        anyhow::ensure!(
                            field.is_some_and(|f| wrong.contains(&f)),
                            "{method} refused as {s:?}; wrong fields: {wrong:?}"
                        );
                    }
                }
                still_serves(addr).await
            });
            prop_assert!(result.is_ok(), "{:?}", result);
            Ok(())
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
