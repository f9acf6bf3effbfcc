//! The operator API on real controller processes, a real etcd and a real
//! MariaDB primary with two replicas: bearer tokens and roles (a viewer
//! refused a change, an operator refused `--force`, unknown tokens
//! refused), every field checked with a status naming it, changes recorded
//! in history with the caller's identity, reason and address, and requests
//! that are never re-aimed at another primary, expire, and can be
//! cancelled before they start.

use crate::common;

use std::time::Duration;

use common::orders::{all_up, cluster_with};
use common::{Backend, Cluster};
use sha2::{Digest, Sha256};
use switchyard_controller::api::operator::proto::operator_client::OperatorClient;
use switchyard_controller::api::operator::proto::{
    CancelRequest, HistoryRequest, ReadRequest, RequestKind, RequestRef, SubmitRequest, SwitchKind,
    SwitchRequest, WatchRequest,
};
use switchyard_tests::MariaDbTopology;
use switchyard_tests::wait::wait_for;
use tonic::Code;
use tonic::transport::Channel;

const VIEWER: &str = "token-of-vera-the-viewer";
const OPERATOR: &str = "token-of-otto-the-operator";
const ADMIN: &str = "token-of-ada-the-admin";

fn operators() -> String {
    [
        ("vera", "viewer", VIEWER),
        ("otto", "operator", OPERATOR),
        ("ada", "admin", ADMIN),
    ]
    .iter()
    .map(|(name, role, token)| {
        format!(
            "\n[[operators]]\nname = \"{name}\"\nrole = \"{role}\"\ntoken_sha256 = \"{}\"\n",
            hex::encode(Sha256::digest(token.as_bytes()))
        )
    })
    .collect()
}

/// A request with `token` (none: no header).
fn req<T>(token: Option<&str>, message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    if let Some(t) = token {
        r.metadata_mut().insert(
            "authorization",
            format!("Bearer {t}").parse().expect("header value"),
        );
    }
    r
}

fn switch(kind: SwitchKind, region: &str, reason: &str) -> SwitchRequest {
    SwitchRequest {
        kind: kind as i32,
        region: region.into(),
        reason: reason.into(),
    }
}

fn submit(kind: RequestKind, to: &str, reason: &str) -> SubmitRequest {
    SubmitRequest {
        kind: kind as i32,
        database: "orders".into(),
        to: to.into(),
        reason: reason.into(),
        ..SubmitRequest::default()
    }
}

/// The status of a call that must fail: its code and message.
fn refused<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> (Code, String) {
    match r {
        Ok(ok) => panic!("expected a refusal, got {ok:?}"),
        Err(s) => (s.code(), s.message().to_string()),
    }
}

/// A call refused as INVALID_ARGUMENT, its message starting with `field`.
fn invalid_field<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>, field: &str) {
    let (code, msg) = refused(r);
    assert_eq!(code, Code::InvalidArgument, "{msg}");
    assert!(msg.starts_with(field), "{field} in {msg}");
}

async fn history(api: &mut OperatorClient<Channel>) -> anyhow::Result<String> {
    let page = api
        .history(req(
            Some(VIEWER),
            HistoryRequest {
                limit: 200,
                before: String::new(),
            },
        ))
        .await?;
    Ok(page.into_inner().json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_api_authenticates_authorizes_validates_and_records() -> anyhow::Result<()> {
    let db = MariaDbTopology::start(2)
        .await
        .map_err(|e| e.context("starting the MariaDB topology"))?;
    let cl = cluster_with(&db, Backend::File, &operators()).await?;
    let result = scenario(&cl).await;
    if result.is_err() {
        for c in &cl.controllers {
            eprintln!("--- {} log ---\n{}", c.id(), c.log());
        }
    }
    result
}

async fn scenario(cl: &Cluster) -> anyhow::Result<()> {
    let _fleet = all_up(cl);
    let leader = cl.wait_leader(None, Duration::from_secs(30)).await?;
    wait_for(
        "the primary to be discovered",
        Duration::from_secs(30),
        || async {
            match db_primary(cl).await {
                Ok(p) if p == "m0" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await?;
    // A follower: every controller serves the API (no forwarding needed).
    let follower = (leader + 1) % cl.controllers.len();
    let mut api = OperatorClient::connect(cl.controllers[follower].grpc_url()).await?;

    // Reflection tells tools what the port serves.
    let services = reflected_services(&cl.controllers[follower].grpc_url()).await?;
    for s in [
        "switchyard.operator.v1.Operator",
        "switchyard.probe.v1.ProbeIngest",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(services.iter().any(|n| n == s), "{s} not in {services:?}");
    }

    // Who: no token, a token nobody has, another scheme.
    let (code, msg) = refused(api.status(req(None, ReadRequest {})).await);
    assert_eq!(code, Code::Unauthenticated, "{msg}");
    assert!(msg.contains("no credentials"), "{msg}");
    let (code, msg) = refused(
        api.status(req(Some("revoked-or-made-up"), ReadRequest {}))
            .await,
    );
    assert_eq!(code, Code::Unauthenticated, "{msg}");
    assert!(msg.contains("not recognised"), "{msg}");
    let mut basic = tonic::Request::new(ReadRequest {});
    basic
        .metadata_mut()
        .insert("authorization", "Basic dmVyYTp4".parse()?);
    let (code, msg) = refused(api.status(basic).await);
    assert_eq!(code, Code::Unauthenticated, "{msg}");
    // Nothing of a request is looked at before its caller is known.
    let (code, msg) = refused(
        api.switch(req(None, switch(SwitchKind::Drain, "", "")))
            .await,
    );
    assert_eq!(code, Code::Unauthenticated, "{msg}");

    // What: a viewer reads, and is refused a change and a failover.
    let status = api.status(req(Some(VIEWER), ReadRequest {})).await?;
    let status: serde_json::Value = serde_json::from_str(&status.into_inner().json)?;
    assert!(status["leader"].is_string(), "{status}");
    let (code, msg) = refused(
        api.switch(req(Some(VIEWER), switch(SwitchKind::Pause, "", "because")))
            .await,
    );
    assert_eq!(code, Code::PermissionDenied, "{msg}");
    assert!(
        msg.contains("vera has role viewer; pause needs role operator"),
        "{msg}"
    );
    let (code, msg) = refused(
        api.submit(req(Some(VIEWER), submit(RequestKind::Failover, "", "x")))
            .await,
    );
    assert_eq!(code, Code::PermissionDenied, "{msg}");
    // An operator may fail over, not force it: that is the admin's.
    let forced = SubmitRequest {
        force: true,
        ..submit(RequestKind::Failover, "m1", "it is dead, trust me")
    };
    let (code, msg) = refused(api.submit(req(Some(OPERATOR), forced)).await);
    assert_eq!(code, Code::PermissionDenied, "{msg}");
    assert!(msg.contains("failover --force needs role admin"), "{msg}");

    // Every field checked, the status naming it.
    for (request, field) in [
        (switch(SwitchKind::Pause, "", "  "), "reason: "),
        (
            switch(SwitchKind::Pause, "", "ok\u{1b}[2Jwiped"),
            "reason: ",
        ),
        (switch(SwitchKind::Drain, "", "maintenance"), "region: "),
        (switch(SwitchKind::Drain, "mars", "maintenance"), "region: "),
        (
            SwitchRequest {
                kind: 99,
                ..switch(SwitchKind::Pause, "", "x")
            },
            "kind: ",
        ),
    ] {
        invalid_field(api.switch(req(Some(OPERATOR), request)).await, field);
    }
    for (request, field) in [
        (submit(RequestKind::Switchover, "", "x"), "to: "),
        (submit(RequestKind::Switchover, "m9", "x"), "to: "),
        (
            SubmitRequest {
                expected_primary: "m7".into(),
                ..submit(RequestKind::Failover, "", "x")
            },
            "expected_primary: ",
        ),
        (
            SubmitRequest {
                database: "nope".into(),
                ..submit(RequestKind::Failover, "", "x")
            },
            "database: ",
        ),
        (
            SubmitRequest {
                deadline_seconds: 1_000_000,
                ..submit(RequestKind::Failover, "", "x")
            },
            "deadline_seconds: ",
        ),
    ] {
        invalid_field(api.submit(req(Some(OPERATOR), request)).await, field);
    }
    let (code, msg) = refused(
        api.outcome(req(
            Some(VIEWER),
            RequestRef {
                id: "../../etc".into(),
            },
        ))
        .await,
    );
    assert_eq!(
        (code, msg.starts_with("id: ")),
        (Code::InvalidArgument, true),
        "{msg}"
    );

    // A viewer watching history sees the change as it is written.
    let (code, msg) = refused(api.watch(req(None, WatchRequest {})).await);
    assert_eq!(code, Code::Unauthenticated, "{msg}");
    let mut watch = api
        .watch(req(Some(VIEWER), WatchRequest {}))
        .await?
        .into_inner();

    // A change lands in history with who, why and from where.
    let drained = api
        .switch(req(
            Some(OPERATOR),
            switch(SwitchKind::Drain, "b", "maintenance window CHG-1042"),
        ))
        .await?
        .into_inner();
    assert!(drained.changed, "{drained:?}");
    let seen = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(event) = watch.message().await? {
            let e: serde_json::Value = serde_json::from_str(&event.json)?;
            if e["what"] == "region b drained" && e["by"] == "otto" {
                return anyhow::Ok(event.key);
            }
        }
        anyhow::bail!("the watch ended")
    })
    .await??;
    drop(watch);
    // The event's key is a History cursor: the page before it starts
    // with the events older than the drain.
    let before = api
        .history(req(
            Some(VIEWER),
            HistoryRequest {
                limit: 1000,
                before: seen.clone(),
            },
        ))
        .await?
        .into_inner()
        .json;
    assert!(
        !before.contains("region b drained") && before.contains("\"events\""),
        "the page before {seen}: {before}"
    );
    let h = history(&mut api).await?;
    let events: Vec<serde_json::Value> = serde_json::from_str::<serde_json::Value>(&h)?["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let e = events
        .iter()
        .find(|e| e["what"] == "region b drained")
        .ok_or_else(|| anyhow::anyhow!("no drain event: {h}"))?;
    assert_eq!(e["by"], "otto", "{e}");
    let reasons = e["reasons"].to_string();
    assert!(
        reasons.contains("maintenance window CHG-1042") && reasons.contains("from 127.0.0.1:"),
        "{e}"
    );

    // Never re-aimed: a switchover asked against a primary the operator
    // saw (m1) that is not the primary (m0) is refused by the leader.
    let stale = SubmitRequest {
        expected_primary: "m1".into(),
        ..submit(RequestKind::Switchover, "m2", "move off m1")
    };
    let id = api
        .submit(req(Some(OPERATOR), stale))
        .await?
        .into_inner()
        .id;
    wait_for(
        "the stale request refused",
        Duration::from_secs(30),
        || async {
            let s = outcome(&api, &id).await?;
            let h = history(&mut api.clone()).await.map_err(|e| e.to_string())?;
            if s.status == "gone" && h.contains("not m1 as the operator saw") {
                Ok(())
            } else {
                Err(format!("{s:?}"))
            }
        },
    )
    .await?;
    assert_eq!(db_primary(cl).await?, "m0");

    // An unforced failover of a live primary waits at the gate (its
    // region's controller holds the lease): it can be cancelled.
    let id = api
        .submit(req(
            Some(OPERATOR),
            submit(RequestKind::Failover, "", "drill"),
        ))
        .await?
        .into_inner()
        .id;
    wait_for(
        "the failover to wait at the gate",
        Duration::from_secs(30),
        || async {
            let s = outcome(&api, &id).await?;
            if s.status == "waiting_at_gate" && !s.gate.is_empty() {
                Ok(())
            } else {
                Err(format!("{s:?}"))
            }
        },
    )
    .await?;
    // Asked without naming a primary, it is about the one recorded when
    // it was written (never re-aimed: docs/SAFETY.md S10).
    let store =
        switchyard_controller::store::Store::connect(&cl.etcd.endpoints(), &cl.cluster).await?;
    let stored: Option<serde_json::Value> = store.get_json(&store.keys().request(&id)).await?;
    assert_eq!(
        stored.as_ref().map(|r| r["expected_primary"].clone()),
        Some(serde_json::json!("m0")),
        "{stored:?}"
    );
    let (code, msg) = refused(
        api.cancel(req(
            Some(VIEWER),
            CancelRequest {
                id: id.clone(),
                reason: "drill over".into(),
            },
        ))
        .await,
    );
    assert_eq!(code, Code::PermissionDenied, "{msg}");
    // Withdrawn with the CLI (as the fixture's admin): the request and the
    // history event that records it go together.
    let (code, out, err) = cl.cli(&[
        "cancel",
        "--id",
        &id,
        "--reason",
        "drill over",
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let cancelled: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(cancelled["cancelled"], true, "{cancelled}");
    let recorded = history(&mut api).await?;
    assert_eq!(
        recorded
            .matches(&format!("request {id} cancelled before it started"))
            .count(),
        1,
        "{recorded}"
    );
    let again = api
        .cancel(req(
            Some(OPERATOR),
            CancelRequest {
                id: id.clone(),
                reason: "drill over".into(),
            },
        ))
        .await?
        .into_inner();
    assert!(
        !again.cancelled && again.what.contains("nothing to cancel"),
        "{again:?}"
    );
    // The CLI says so too, with exit code 1; and a malformed id names its
    // field.
    let (code, out, _) = cl.cli(&["cancel", "--id", &id, "--reason", "drill over"]);
    assert_eq!(
        (code, out.contains("nothing to cancel")),
        (1, true),
        "{out}"
    );
    let (code, _, err) = cl.cli(&["cancel", "--id", "x/y", "--reason", "typo"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("invalid: id: not a request id"), "{err}");

    // A request not started within its deadline is dropped.
    let short = SubmitRequest {
        deadline_seconds: 2,
        ..submit(RequestKind::Failover, "", "drill, short")
    };
    let id = api
        .submit(req(Some(OPERATOR), short))
        .await?
        .into_inner()
        .id;
    wait_for(
        "the short request to expire",
        Duration::from_secs(30),
        || async {
            let h = history(&mut api.clone()).await.map_err(|e| e.to_string())?;
            if h.contains(&format!("request {id}")) && h.contains("expired: not started by") {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        },
    )
    .await?;
    // Nothing was promoted by any of it, and no request or waiting key is
    // left behind.
    assert_eq!(db_primary(cl).await?, "m0");
    let journal = cl.journal().await?;
    assert!(
        !journal.iter().any(|e| matches!(
            e["action"]["kind"].as_str(),
            Some("failover" | "switchover")
        )),
        "{journal:#?}"
    );
    let store =
        switchyard_controller::store::Store::connect(&cl.etcd.endpoints(), &cl.cluster).await?;
    for prefix in [
        store.keys().requests_prefix(),
        store.keys().request_waiting(""),
    ] {
        let left = store.list_keys(&prefix).await?;
        assert!(left.is_empty(), "{prefix}: {left:?}");
    }

    // And one carried out: a switchover to m1, asked against the primary
    // the operator saw, done, with its cost.
    let planned = SubmitRequest {
        expected_primary: "m0".into(),
        ..submit(RequestKind::Switchover, "m1", "planned move, CHG-1043")
    };
    let id = api
        .submit(req(Some(OPERATOR), planned))
        .await?
        .into_inner()
        .id;
    let done = wait_for(
        "the switchover to be done",
        Duration::from_secs(60),
        || async {
            let s = outcome(&api, &id).await?;
            if s.status == "done" {
                Ok(s)
            } else {
                Err(format!("{s:?}"))
            }
        },
    )
    .await?;
    assert!(done.outcome.contains("switched over to m1"), "{done:?}");
    assert!(
        done.write_unavailable_ms.is_some_and(|ms| ms > 0),
        "{done:?}"
    );
    assert_eq!(db_primary(cl).await?, "m1");

    // The CLI is a client of this API like any other: a viewer's token
    // reads, and is refused a change with the role it needs.
    let dir = tempfile::tempdir()?;
    let vera_file = dir.path().join("vera.token");
    std::fs::write(&vera_file, format!("{VIEWER}\n"))?;
    let as_vera = |args: &[&str]| {
        cl.command()
            .env("SWITCHYARD_TOKEN_FILE", &vera_file)
            .args(args)
            .output()
    };
    let out = as_vera(&["plan"])?;
    assert!(out.status.success(), "{out:?}");
    let out = as_vera(&["pause", "--reason", "trying"])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not allowed: vera has role viewer; pause needs role operator"),
        "{stderr}"
    );
    // Without --reason, a change does not even leave the CLI.
    let out = cl.command().arg("pause").output()?;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--reason"));

    // A revoked token is refused within seconds, without a restart: vera
    // is taken out of the config every controller reads.
    let text = std::fs::read_to_string(&cl.config)?;
    let vera = operators()
        .split("\n[[operators]]")
        .nth(1)
        .map(|e| format!("\n[[operators]]{e}"));
    let vera = vera.ok_or_else(|| anyhow::anyhow!("vera's entry"))?;
    anyhow::ensure!(text.contains(&vera), "vera's entry is in the config");
    std::fs::write(&cl.config, text.replace(&vera, ""))?;
    for c in &cl.controllers {
        let mut api = OperatorClient::connect(c.grpc_url()).await?;
        wait_for(
            &format!("{} to refuse the revoked token", c.id()),
            Duration::from_secs(20),
            || {
                let mut api = api.clone();
                async move {
                    match api.status(req(Some(VIEWER), ReadRequest {})).await {
                        Err(s) if s.code() == Code::Unauthenticated => Ok(()),
                        other => Err(format!("{:?}", other.map(|_| "answered"))),
                    }
                }
            },
        )
        .await?;
        api.status(req(Some(OPERATOR), ReadRequest {})).await?;
    }

    // No token is ever logged, by any controller.
    for c in &cl.controllers {
        let log = c.log();
        for token in [VIEWER, OPERATOR, ADMIN, common::ADMIN_TOKEN] {
            assert!(!log.contains(token), "{} logged a token", c.id());
        }
        assert!(log.contains("[[operators]] reloaded"), "{}", c.id());
    }
    Ok(())
}

/// Where request `id` stands, as a viewer sees it.
async fn outcome(
    api: &OperatorClient<Channel>,
    id: &str,
) -> Result<switchyard_controller::api::operator::proto::RequestState, String> {
    api.clone()
        .outcome(req(Some(VIEWER), RequestRef { id: id.into() }))
        .await
        .map(tonic::Response::into_inner)
        .map_err(|e| e.to_string())
}

/// The services gRPC reflection lists at `url`.
async fn reflected_services(url: &str) -> anyhow::Result<Vec<String>> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())?
        .connect()
        .await?;
    let mut client = ServerReflectionClient::new(channel);
    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([ask]))
        .await?
        .into_inner();
    let answer = answers
        .message()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no reflection answer"))?;
    match answer.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            Ok(list.service.into_iter().map(|s| s.name).collect())
        }
        other => anyhow::bail!("unexpected reflection answer: {other:?}"),
    }
}

async fn db_primary(cl: &Cluster) -> anyhow::Result<String> {
    let store =
        switchyard_controller::store::Store::connect(&cl.etcd.endpoints(), &cl.cluster).await?;
    let v = common::orders::db_state(&store)
        .await
        .map_err(anyhow::Error::msg)?;
    Ok(v["primary"].as_str().unwrap_or_default().to_string())
}
