//! The operator commands as the CLI runs them: each one call (or stream)
//! of the operator API ([`super::client`]), printed by the same code
//! whatever controller answered. A change carries the operator's reason;
//! the controller records it in history with the token's identity and the
//! CLI's address.

use std::io::Write;
use std::time::Duration;

use super::client::Remote;
use super::ops::{
    DbRequest, HistoryPage, OpsError, Output, RequestState, RequestStatus, StatusView, Switch,
    print_history, print_status, print_switch,
};
use super::plan::{PlanView, print_plan};
use crate::api::operator::proto;

/// How long to wait before following a request again after its stream
/// broke (the controller restarted, or lost etcd).
const REFOLLOW: Duration = Duration::from_millis(500);

fn parse<T: serde::de::DeserializeOwned>(doc: &proto::Document) -> Result<T, OpsError> {
    serde_json::from_str(&doc.json).map_err(|e| OpsError::Answer(e.to_string()))
}

/// `switchyard status`.
pub async fn status(remote: &Remote, output: Output, out: &mut dyn Write) -> Result<(), OpsError> {
    let doc = remote
        .call(async |mut api| api.status(proto::ReadRequest {}).await)
        .await?;
    let view: StatusView = parse(&doc)?;
    print_status(&view, output, out)
}

/// `switchyard plan`.
pub async fn plan(remote: &Remote, output: Output, out: &mut dyn Write) -> Result<(), OpsError> {
    let doc = remote
        .call(async |mut api| api.plan(proto::ReadRequest {}).await)
        .await?;
    let view: PlanView = parse(&doc)?;
    print_plan(&view, output, out)
}

/// `switchyard history`: one page of `limit` events before the cursor
/// `before` (the newest when `None`).
pub async fn history(
    remote: &Remote,
    limit: u32,
    before: Option<&str>,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    let request = proto::HistoryRequest {
        limit,
        before: before.unwrap_or_default().to_string(),
    };
    let doc = remote
        .call(async |mut api| api.history(request.clone()).await)
        .await?;
    let page: HistoryPage = parse(&doc)?;
    print_history(&page, output, out)
}

/// `pause`, `resume`, `drain`, `undrain`, `failback`: idempotent, so
/// handed to the next controller if one cannot reach etcd.
pub async fn switch(
    remote: &Remote,
    which: Switch,
    reason: &str,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    let (kind, region) = match &which {
        Switch::Pause => (proto::SwitchKind::Pause, String::new()),
        Switch::Resume => (proto::SwitchKind::Resume, String::new()),
        Switch::Drain(r) => (proto::SwitchKind::Drain, r.clone()),
        Switch::Undrain(r) => (proto::SwitchKind::Undrain, r.clone()),
        Switch::Failback(r) => (proto::SwitchKind::Failback, r.clone()),
    };
    let request = proto::SwitchRequest {
        kind: kind as i32,
        region,
        reason: reason.to_string(),
    };
    let reply = remote
        .call(async |mut api| api.switch(request.clone()).await)
        .await?;
    print_switch(which.command(), reply.changed, &reply.what, output, out)
}

/// What a failover or switchover is asked with, besides what it does.
#[derive(Debug, Clone)]
pub struct RequestOptions {
    /// Why (recorded in history).
    pub reason: String,
    /// The primary the operator saw; `None`: the one recorded when the
    /// request is written.
    pub expect_primary: Option<String>,
    /// How long the leader may take to start it before dropping it.
    pub deadline: Duration,
    /// How long this command waits for the outcome.
    pub wait: Duration,
}

/// The API's request state as the CLI's.
fn state_of(s: proto::RequestState) -> RequestState {
    let some = |t: String| (!t.is_empty()).then_some(t);
    RequestState {
        // A status this CLI does not know is taken as still running.
        status: RequestStatus::parse(&s.status).unwrap_or(RequestStatus::Running),
        outcome: some(s.outcome),
        journal_id: some(s.journal_id),
        gate: some(s.gate),
        write_unavailable_ms: s.write_unavailable_ms,
        steps: s.steps,
    }
}

/// Hands a failover or switchover to the leader and follows it for up to
/// `opts.wait`. Returns the exit code: 0 done, 1 failed or gone, 2 still
/// with the leader.
pub async fn request(
    remote: &Remote,
    req: DbRequest,
    opts: RequestOptions,
    output: Output,
    out: &mut dyn Write,
) -> Result<i32, OpsError> {
    let (kind, database, to, force, label) = match req {
        DbRequest::Failover {
            database,
            to,
            force,
        } => (
            proto::RequestKind::Failover,
            database.clone(),
            to.unwrap_or_default(),
            force,
            format!("failover of {database}"),
        ),
        DbRequest::Switchover { database, to } => (
            proto::RequestKind::Switchover,
            database.clone(),
            to,
            false,
            format!("switchover of {database}"),
        ),
    };
    let submit = proto::SubmitRequest {
        kind: kind as i32,
        database,
        to,
        force,
        reason: opts.reason.clone(),
        expected_primary: opts.expect_primary.clone().unwrap_or_default(),
        deadline_seconds: u32::try_from(opts.deadline.as_secs()).unwrap_or(u32::MAX),
    };
    // Submitted once: a second submit would be a second request.
    let id = remote
        .call_once(async |mut api| api.submit(submit).await)
        .await?
        .id;
    if output == Output::Table {
        writeln!(out, "request {id} handed to the leader")?;
    }
    // Live phases on a terminal (nothing on a pipe, nothing for JSON).
    let progress = (output == Output::Table).then(|| super::progress::Progress::start(&label));
    let deadline = switchyard_host::time::now() + opts.wait;
    let last = follow(remote, &id, deadline, |state| {
        if let Some(p) = &progress {
            p.phase(super::progress::phase(state));
        }
    })
    .await?;
    if let Some(p) = &progress {
        p.finish();
    }
    let (status, text, detail) = match last {
        Some(state) if state.status.is_final() => {
            let outcome = state.outcome.clone().unwrap_or_default();
            let status = state.status.as_str();
            (
                status,
                format!("{status}: {outcome}"),
                serde_json::json!({
                    "outcome": outcome,
                    "journal_id": state.journal_id,
                    "write_unavailable_ms": state.write_unavailable_ms,
                }),
            )
        }
        Some(RequestState {
            gate: Some(reason), ..
        }) => (
            "waiting_at_gate",
            format!(
                "not started after {}s: the failover waits at the promotion gate: {reason}. \
                 The request stays with the leader. If you know the old primary cannot take \
                 writes, run it again with --force (or withdraw it: switchyard cancel --id {id}).",
                opts.wait.as_secs()
            ),
            serde_json::json!({ "gate": reason }),
        ),
        _ => (
            "running",
            format!(
                "not finished after {}s: the request stays with the leader; follow it with \
                 `switchyard status` and `switchyard history`",
                opts.wait.as_secs()
            ),
            serde_json::json!({}),
        ),
    };
    match output {
        Output::Table => writeln!(out, "{text}")?,
        Output::Json => {
            let mut o = serde_json::json!({ "request": id, "status": status, "message": text });
            if let (Some(o), serde_json::Value::Object(d)) = (o.as_object_mut(), detail) {
                o.extend(d);
            }
            writeln!(out, "{o}")?;
        }
    }
    // Done 0; failed, or gone without being carried out, 1; still with
    // the leader 2.
    Ok(match status {
        "done" => 0,
        "failed" | "gone" => 1,
        _ => 2,
    })
}

/// Follows request `id` until it is final or `deadline`: the last state
/// seen. A broken stream (a controller restarting, or losing etcd) is
/// followed again, from any controller, until the deadline.
async fn follow(
    remote: &Remote,
    id: &str,
    deadline: tokio::time::Instant,
    mut seen: impl FnMut(&RequestState),
) -> Result<Option<RequestState>, OpsError> {
    let mut last: Option<RequestState> = None;
    let request = proto::RequestRef { id: id.to_string() };
    // After a broken stream, the next controller first: the one that broke
    // it may have lost etcd.
    let mut start = 0;
    loop {
        let stream = switchyard_host::time::timeout_at(
            deadline,
            remote.call_from(start, async |mut api| api.follow(request.clone()).await),
        )
        .await;
        let (from, mut stream) = match stream {
            Err(_) => return Ok(last),
            Ok(Ok(s)) => s,
            // Passing trouble: try again until the deadline.
            Ok(Err(OpsError::Unreachable(_))) => {
                if switchyard_host::time::now() + REFOLLOW >= deadline {
                    return Ok(last);
                }
                switchyard_host::time::sleep(REFOLLOW).await;
                continue;
            }
            Ok(Err(OpsError::Api(s))) if s.code() == tonic::Code::Unavailable => {
                if switchyard_host::time::now() + REFOLLOW >= deadline {
                    return Ok(last);
                }
                switchyard_host::time::sleep(REFOLLOW).await;
                continue;
            }
            Ok(Err(e)) => return Err(e),
        };
        loop {
            match switchyard_host::time::timeout_at(deadline, stream.message()).await {
                Err(_) => return Ok(last),
                Ok(Ok(Some(s))) => {
                    let state = state_of(s);
                    seen(&state);
                    let done = state.status.is_final();
                    last = Some(state);
                    if done {
                        return Ok(last);
                    }
                }
                // Ended before the request did (the controller stopping,
                // or losing etcd): follow it again, elsewhere first.
                Ok(Ok(None)) => break,
                Ok(Err(s)) if s.code() == tonic::Code::Unavailable => break,
                Ok(Err(s)) => return Err(OpsError::Api(s)),
            }
        }
        start = (from + 1) % remote.servers().max(1);
        switchyard_host::time::sleep(
            REFOLLOW.min(deadline.saturating_duration_since(switchyard_host::time::now())),
        )
        .await;
    }
}

/// `switchyard cancel`: withdraws a request the leader has not started.
/// Exit code 0 when withdrawn, 1 when it could not be (already started,
/// finished, or not pending).
pub async fn cancel(
    remote: &Remote,
    id: &str,
    reason: &str,
    output: Output,
    out: &mut dyn Write,
) -> Result<i32, OpsError> {
    let request = proto::CancelRequest {
        id: id.to_string(),
        reason: reason.to_string(),
    };
    // Sent once: a cancel retried after an unclear error would report
    // "nothing to cancel" for the request the first one withdrew.
    let reply = remote
        .call_once(async |mut api| api.cancel(request).await)
        .await?;
    match output {
        Output::Table => writeln!(out, "{}", reply.what)?,
        Output::Json => writeln!(
            out,
            "{}",
            serde_json::json!({ "command": "cancel", "request": id, "cancelled": reply.cancelled, "what": reply.what })
        )?,
    }
    Ok(if reply.cancelled { 0 } else { 1 })
}

/// `switchyard watch`: history events as they are written, until the
/// stream ends (exit 1: the controller lost etcd or stopped; read what was
/// missed with `history`) or the command is interrupted.
pub async fn watch(remote: &Remote, output: Output, out: &mut dyn Write) -> Result<(), OpsError> {
    let mut stream = remote
        .call(async |mut api| api.watch(proto::WatchRequest {}).await)
        .await?;
    loop {
        match stream.message().await {
            Ok(Some(event)) => {
                match output {
                    Output::Json => writeln!(out, "{}", event.json)?,
                    Output::Table => {
                        match serde_json::from_str::<crate::executor::HistoryEvent>(&event.json) {
                            Ok(e) => print_history(
                                &HistoryPage {
                                    events: vec![e],
                                    unreadable: 0,
                                    older: None,
                                },
                                Output::Table,
                                out,
                            )?,
                            Err(_) => writeln!(
                                out,
                                "({} could not be read: written by a newer version?)",
                                event.key
                            )?,
                        }
                    }
                }
                out.flush()?;
            }
            Ok(None) => {
                return Err(OpsError::Api(tonic::Status::unavailable(
                    "the controller ended the watch (it is stopping): read what was missed with \
                     `switchyard history` and watch again",
                )));
            }
            Err(s) => return Err(OpsError::Api(s)),
        }
    }
}
