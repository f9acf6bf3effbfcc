//! The operator service: each call authenticated and authorized
//! ([`super::auth`]), its fields checked (a bad one is INVALID_ARGUMENT
//! naming the field), then carried out by the same code the CLI runs
//! ([`crate::cli::ops`]) against this controller's etcd, as the caller's
//! identity, with their reason and address recorded in history.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use super::auth::{Identity, OperatorBook, Role, authorize};
use super::proto::operator_server::Operator;
use super::proto::{
    CancelReply, CancelRequest, Document, HistoryRequest, ReadRequest, RequestKind, RequestRef,
    RequestState, SubmitReply, SubmitRequest, SwitchKind, SwitchReply, SwitchRequest, WatchEvent,
    WatchRequest,
};
use super::reach::EtcdReach;
use crate::cli::ops::{self, Actor, DbRequest, OpsError, Switch};
use crate::config::Config;
use crate::store::{EtcdAccess, Store};

/// Longest reason accepted (history is read by people, not archives).
const MAX_REASON: usize = 1000;

/// Longest deadline a request may ask for.
const MAX_DEADLINE: Duration = Duration::from_secs(24 * 3600);

/// The operator API of one controller.
#[derive(Debug, Clone)]
pub struct OperatorService {
    cfg: Arc<Config>,
    reach: Arc<EtcdReach>,
    book: watch::Receiver<Arc<OperatorBook>>,
}

impl OperatorService {
    /// A service acting on the cluster's etcd (with `access`: TLS, login)
    /// for the identities `book` holds now (reloaded: a revoked token is
    /// refused from the next call on).
    pub fn new(
        cfg: Arc<Config>,
        access: EtcdAccess,
        book: watch::Receiver<Arc<OperatorBook>>,
    ) -> Self {
        let reach = EtcdReach::new(cfg.etcd.endpoints.clone(), cfg.cluster.clone(), access);
        OperatorService {
            cfg,
            reach: Arc::new(reach),
            book,
        }
    }

    /// The etcd client to answer with.
    async fn store(&self) -> Result<Store, Status> {
        self.reach
            .store()
            .await
            .map_err(|e| Status::unavailable(format!("etcd: {e}")))
    }

    /// `e` as a status; after an etcd error the next call chooses its
    /// members again.
    async fn failed(&self, e: OpsError) -> Status {
        if matches!(e, OpsError::Store(_)) {
            self.reach.forget().await;
        }
        status_of(e)
    }

    /// Who calls: authenticated before anything of the request is looked
    /// at, so an unauthenticated caller learns nothing from validation.
    fn identify<T>(&self, request: &Request<T>) -> Result<Identity, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or(""));
        self.book.borrow().authenticate(header)
    }

    /// Who calls, if their role allows `what` (which needs `needed`).
    fn caller<T>(
        &self,
        request: &Request<T>,
        needed: Role,
        what: &str,
    ) -> Result<Identity, Status> {
        let who = self.identify(request)?;
        authorize(&who, needed, what)?;
        Ok(who)
    }
}

/// `field: message` as INVALID_ARGUMENT.
fn invalid(field: &str, message: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {message}"))
}

/// The operator's reason: required, one line's worth, printable (it is
/// printed on other operators' terminals by `switchyard history`).
fn reason(text: &str) -> Result<String, Status> {
    let r = text.trim();
    if r.is_empty() {
        return Err(invalid(
            "reason",
            "required for every change: say why (it is recorded in history)",
        ));
    }
    if r.chars().any(char::is_control) {
        return Err(invalid(
            "reason",
            "control characters (newlines, escapes) are not allowed: one line of text",
        ));
    }
    if r.len() > MAX_REASON {
        return Err(invalid(
            "reason",
            format!("{} bytes; at most {MAX_REASON}", r.len()),
        ));
    }
    Ok(r.to_string())
}

fn actor<T>(who: &Identity, request: &Request<T>, why: String) -> Actor {
    Actor {
        by: who.name.clone(),
        reason: why,
        origin: request.remote_addr().map(|a| a.to_string()),
    }
}

/// An ops error as a status: a name the config does not declare is the
/// caller's (`field: …`), etcd trouble is UNAVAILABLE.
fn status_of(e: OpsError) -> Status {
    match e {
        OpsError::Invalid { field, message } => invalid(field, message),
        OpsError::Store(e) => Status::unavailable(format!("etcd: {e}")),
        other => Status::internal(other.to_string()),
    }
}

fn document(value: &impl serde::Serialize) -> Result<Response<Document>, Status> {
    serde_json::to_string(value)
        .map(|json| Response::new(Document { json }))
        .map_err(|e| Status::internal(e.to_string()))
}

/// How often `Follow` looks at where a request stands.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// A request's state as the API spells it.
fn request_state(s: ops::RequestState) -> RequestState {
    RequestState {
        status: s.status.as_str().to_string(),
        outcome: s.outcome.unwrap_or_default(),
        journal_id: s.journal_id.unwrap_or_default(),
        gate: s.gate.unwrap_or_default(),
        write_unavailable_ms: s.write_unavailable_ms,
        steps: s.steps,
    }
}

/// The stream `Follow` answers with.
pub type FollowStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<RequestState, Status>> + Send>>;

/// The stream `Watch` answers with.
pub type WatchStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Operator for OperatorService {
    type WatchStream = WatchStream;
    type FollowStream = FollowStream;

    async fn follow(
        &self,
        request: Request<RequestRef>,
    ) -> Result<Response<Self::FollowStream>, Status> {
        self.caller(&request, Role::Viewer, "follow")?;
        let id = request_id(&request.get_ref().id)?.to_string();
        let store = self.store().await?;
        let reach = self.reach.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut last: Option<ops::RequestState> = None;
            loop {
                let state = match ops::request_state(&store, &id).await {
                    Ok(s) => s,
                    Err(e) => {
                        reach.forget().await;
                        let _ = tx.send(Err(status_of(e))).await;
                        return;
                    }
                };
                let done = state.status.is_final();
                if last.as_ref() != Some(&state) {
                    last = Some(state.clone());
                    if tx.send(Ok(request_state(state))).await.is_err() {
                        return;
                    }
                }
                if done {
                    return;
                }
                tokio::select! {
                    () = switchyard_host::time::sleep(FOLLOW_EVERY) => {}
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.caller(&request, Role::Viewer, "watch")?;
        let store = self.store().await?;
        let rx = store
            .watch_puts(&store.keys().history_prefix())
            .await
            .map_err(|e| Status::unavailable(format!("etcd: {e}")))?;
        let prefix = store.keys().history_prefix();
        let events = tokio_stream::wrappers::ReceiverStream::new(rx).map(move |item| match item {
            Ok((key, value)) => Ok(WatchEvent {
                key: key.strip_prefix(&prefix).unwrap_or(&key).to_string(),
                json: String::from_utf8_lossy(&value).into_owned(),
            }),
            Err(e) => Err(Status::unavailable(format!(
                "{e}: read what was missed with History and watch again"
            ))),
        });
        Ok(Response::new(Box::pin(events)))
    }

    async fn status(&self, request: Request<ReadRequest>) -> Result<Response<Document>, Status> {
        self.caller(&request, Role::Viewer, "status")?;
        let store = self.store().await?;
        let view = match ops::status_view(&self.cfg, &store).await {
            Ok(v) => v,
            Err(e) => return Err(self.failed(e).await),
        };
        document(&view)
    }

    async fn plan(&self, request: Request<ReadRequest>) -> Result<Response<Document>, Status> {
        self.caller(&request, Role::Viewer, "plan")?;
        let store = self.store().await?;
        let view = match crate::cli::plan::plan_view(&store).await {
            Ok(v) => v,
            Err(e) => return Err(self.failed(e).await),
        };
        document(&view)
    }

    async fn history(
        &self,
        request: Request<HistoryRequest>,
    ) -> Result<Response<Document>, Status> {
        self.caller(&request, Role::Viewer, "history")?;
        let r = request.get_ref();
        let limit = match r.limit {
            0 => 50,
            n @ 1..=1000 => n as usize,
            n => return Err(invalid("limit", format!("{n}; use 1–1000 (0: 50)"))),
        };
        let before = (!r.before.is_empty()).then_some(r.before.as_str());
        if let Some(b) = before
            && !is_history_cursor(b)
        {
            return Err(invalid(
                "before",
                "not a history cursor: use the one a previous page returned",
            ));
        }
        let store = self.store().await?;
        let page = match ops::history_page(&store, limit, before).await {
            Ok(p) => p,
            Err(e) => return Err(self.failed(e).await),
        };
        document(&page)
    }

    async fn switch(
        &self,
        request: Request<SwitchRequest>,
    ) -> Result<Response<SwitchReply>, Status> {
        // Every switch needs the operator role: checked before any field
        // (the kind only names the call in the refusal).
        let named = match SwitchKind::try_from(request.get_ref().kind) {
            Ok(SwitchKind::Pause) => "pause",
            Ok(SwitchKind::Resume) => "resume",
            Ok(SwitchKind::Drain) => "drain",
            Ok(SwitchKind::Undrain) => "undrain",
            Ok(SwitchKind::Failback) => "failback",
            _ => "a switch",
        };
        let who = self.caller(&request, Role::Operator, named)?;
        let r = request.get_ref();
        let kind = SwitchKind::try_from(r.kind).unwrap_or(SwitchKind::Unspecified);
        let region = || -> Result<String, Status> {
            if r.region.is_empty() {
                return Err(invalid(
                    "region",
                    "required for drain, undrain and failback",
                ));
            }
            Ok(r.region.clone())
        };
        let which = match kind {
            SwitchKind::Pause => Switch::Pause,
            SwitchKind::Resume => Switch::Resume,
            SwitchKind::Drain => Switch::Drain(region()?),
            SwitchKind::Undrain => Switch::Undrain(region()?),
            SwitchKind::Failback => Switch::Failback(region()?),
            SwitchKind::Unspecified => {
                return Err(invalid(
                    "kind",
                    format!("{}: use pause, resume, drain, undrain or failback", r.kind),
                ));
            }
        };
        let why = reason(&r.reason)?;
        let store = self.store().await?;
        let applied = ops::apply_switch(
            &self.cfg,
            &store,
            &which,
            &actor(&who, &request, why),
            chrono::Utc::now(),
        )
        .await;
        let (changed, what) = match applied {
            Ok(a) => a,
            Err(e) => return Err(self.failed(e).await),
        };
        Ok(Response::new(SwitchReply { changed, what }))
    }

    async fn submit(
        &self,
        request: Request<SubmitRequest>,
    ) -> Result<Response<SubmitReply>, Status> {
        // The role first, before any field: forcing needs admin, any
        // request operator.
        let r = request.get_ref();
        let who = if r.force {
            self.caller(&request, Role::Admin, "failover --force")?
        } else {
            let named = match RequestKind::try_from(r.kind) {
                Ok(RequestKind::Switchover) => "switchover",
                _ => "failover",
            };
            self.caller(&request, Role::Operator, named)?
        };
        let kind = RequestKind::try_from(r.kind).unwrap_or(RequestKind::Unspecified);
        let (req, what) = match kind {
            RequestKind::Failover => (
                DbRequest::Failover {
                    database: r.database.clone(),
                    to: (!r.to.is_empty()).then(|| r.to.clone()),
                    force: r.force,
                },
                if r.force {
                    "failover --force"
                } else {
                    "failover"
                },
            ),
            RequestKind::Switchover => {
                if r.to.is_empty() {
                    return Err(invalid("to", "a switchover needs the member to promote"));
                }
                if r.force {
                    return Err(invalid(
                        "force",
                        "a switchover cannot be forced: it is the zero-loss move",
                    ));
                }
                (
                    DbRequest::Switchover {
                        database: r.database.clone(),
                        to: r.to.clone(),
                    },
                    "switchover",
                )
            }
            RequestKind::Unspecified => {
                return Err(invalid(
                    "kind",
                    format!("{}: use failover or switchover", r.kind),
                ));
            }
        };
        let why = reason(&r.reason)?;
        let deadline = match r.deadline_seconds {
            0 => ops::DEFAULT_REQUEST_DEADLINE,
            s if Duration::from_secs(u64::from(s)) > MAX_DEADLINE => {
                return Err(invalid(
                    "deadline_seconds",
                    format!("{s}; at most {}", MAX_DEADLINE.as_secs()),
                ));
            }
            s => Duration::from_secs(u64::from(s)),
        };
        let expected = (!r.expected_primary.is_empty()).then(|| r.expected_primary.clone());
        let store = self.store().await?;
        let submitted = ops::submit_request(
            &self.cfg,
            &store,
            req,
            &actor(&who, &request, why),
            expected,
            deadline,
        )
        .await;
        let id = match submitted {
            Ok(id) => id,
            Err(e) => return Err(self.failed(e).await),
        };
        tracing::info!(request = %id, by = %who.name, "{what} requested through the operator API");
        Ok(Response::new(SubmitReply { id }))
    }

    async fn outcome(
        &self,
        request: Request<RequestRef>,
    ) -> Result<Response<RequestState>, Status> {
        self.caller(&request, Role::Viewer, "outcome")?;
        let id = request_id(&request.get_ref().id)?;
        let store = self.store().await?;
        let s = match ops::request_state(&store, id).await {
            Ok(s) => s,
            Err(e) => return Err(self.failed(e).await),
        };
        Ok(Response::new(request_state(s)))
    }

    async fn cancel(
        &self,
        request: Request<CancelRequest>,
    ) -> Result<Response<CancelReply>, Status> {
        let who = self.caller(&request, Role::Operator, "cancel")?;
        let r = request.get_ref();
        let id = request_id(&r.id)?.to_string();
        let why = reason(&r.reason)?;
        let store = self.store().await?;
        let (cancelled, what) =
            match ops::cancel_request(&store, &id, &actor(&who, &request, why), chrono::Utc::now())
                .await
            {
                Ok(c) => c,
                Err(e) => return Err(self.failed(e).await),
            };
        Ok(Response::new(CancelReply { cancelled, what }))
    }
}

/// A history cursor as a page returns it: an event's id, which starts
/// with its time in milliseconds (13 digits) and a dash, and holds no `/`
/// (it is appended to the history prefix) and nothing unprintable.
fn is_history_cursor(b: &str) -> bool {
    b.len() <= 1024
        && b.len() > 14
        && b.as_bytes()[..13].iter().all(u8::is_ascii_digit)
        && b.as_bytes()[13] == b'-'
        && b.bytes().all(|c| c.is_ascii_graphic() && c != b'/')
}

/// A request id as `submit` returns it: digits, a dash, hex.
fn request_id(id: &str) -> Result<&str, Status> {
    let well_formed = id.split_once('-').is_some_and(|(ms, rest)| {
        !ms.is_empty()
            && ms.bytes().all(|b| b.is_ascii_digit())
            && !rest.is_empty()
            && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    if !well_formed {
        return Err(invalid(
            "id",
            "not a request id (as Submit returned it: <millis>-<hex>)",
        ));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_cursor_is_an_event_id_and_nothing_else() {
        let id = crate::executor::history_id(chrono::Utc::now(), "operator");
        assert!(is_history_cursor(&id), "{id}");
        assert!(is_history_cursor("1733000000000-000000000001-000042"));
        for bad in [
            "",
            "/switchyard/c/history/0001733000000000-x",
            "123-x",
            "0001733000000-",
            "0001733000000-a/b",
            "0001733000000-a b",
            "0001733000000-a\n",
        ] {
            assert!(!is_history_cursor(bad), "{bad:?}");
        }
    }
}
