//! The operator service: each call authenticated and authorized
//! ([`super::auth`]), its fields checked (a bad one is INVALID_ARGUMENT
//! naming the field), then carried out by the same code the CLI runs
//! ([`crate::cli::ops`]) against this controller's etcd, as the caller's
//! identity, with their reason and address recorded in history.

use std::sync::Arc;
use std::time::Duration;

use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use super::auth::{Identity, OperatorBook, Role, authorize};
use super::proto::operator_server::Operator;
use super::proto::{
    CancelReply, CancelRequest, Document, HistoryRequest, ReadRequest, RequestKind, RequestRef,
    RequestState, SubmitReply, SubmitRequest, SwitchKind, SwitchReply, SwitchRequest, WatchEvent,
    WatchRequest,
};
use crate::cli::ops::{self, Actor, DbRequest, OpsError, Switch};
use crate::config::Config;
use crate::store::Store;

/// Longest reason accepted (history is read by people, not archives).
const MAX_REASON: usize = 1000;

/// Longest deadline a request may ask for.
const MAX_DEADLINE: Duration = Duration::from_secs(24 * 3600);

/// The operator API of one controller.
#[derive(Debug, Clone)]
pub struct OperatorService {
    cfg: Arc<Config>,
    store: Store,
    book: Arc<OperatorBook>,
}

impl OperatorService {
    /// A service acting on `store` for the identities of `book`.
    pub fn new(cfg: Arc<Config>, store: Store, book: OperatorBook) -> Self {
        OperatorService {
            cfg,
            store,
            book: Arc::new(book),
        }
    }

    /// Who calls: authenticated before anything of the request is looked
    /// at, so an unauthenticated caller learns nothing from validation.
    fn identify<T>(&self, request: &Request<T>) -> Result<Identity, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or(""));
        self.book.authenticate(header)
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

/// The stream `Watch` answers with.
pub type WatchStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Operator for OperatorService {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.caller(&request, Role::Viewer, "watch")?;
        let rx = self
            .store
            .watch_puts(&self.store.keys().history_prefix())
            .await
            .map_err(|e| Status::unavailable(format!("etcd: {e}")))?;
        let events = tokio_stream::wrappers::ReceiverStream::new(rx).map(|item| match item {
            Ok((key, value)) => Ok(WatchEvent {
                key,
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
        let view = ops::status_view(&self.cfg, &self.store)
            .await
            .map_err(status_of)?;
        document(&view)
    }

    async fn plan(&self, request: Request<ReadRequest>) -> Result<Response<Document>, Status> {
        self.caller(&request, Role::Viewer, "plan")?;
        let view = crate::cli::plan::plan_view(&self.store)
            .await
            .map_err(status_of)?;
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
        let prefix = self.store.keys().history_prefix();
        let before = (!r.before.is_empty()).then_some(r.before.as_str());
        if let Some(b) = before
            && !b.starts_with(&prefix)
        {
            return Err(invalid(
                "before",
                "not a history cursor: use the one a previous page returned",
            ));
        }
        let page = ops::history_page(&self.store, limit, before)
            .await
            .map_err(status_of)?;
        document(&page)
    }

    async fn switch(
        &self,
        request: Request<SwitchRequest>,
    ) -> Result<Response<SwitchReply>, Status> {
        let who = self.identify(&request)?;
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
        authorize(&who, Role::Operator, which.command())?;
        let why = reason(&r.reason)?;
        let (changed, what) =
            ops::apply_switch(&self.cfg, &self.store, &which, &actor(&who, &request, why))
                .await
                .map_err(status_of)?;
        Ok(Response::new(SwitchReply { changed, what }))
    }

    async fn submit(
        &self,
        request: Request<SubmitRequest>,
    ) -> Result<Response<SubmitReply>, Status> {
        let who = self.identify(&request)?;
        let r = request.get_ref();
        let kind = RequestKind::try_from(r.kind).unwrap_or(RequestKind::Unspecified);
        let (req, needed, what) = match kind {
            RequestKind::Failover => (
                DbRequest::Failover {
                    database: r.database.clone(),
                    to: (!r.to.is_empty()).then(|| r.to.clone()),
                    force: r.force,
                },
                if r.force { Role::Admin } else { Role::Operator },
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
                    Role::Operator,
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
        authorize(&who, needed, what)?;
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
        let id = ops::submit_request(
            &self.cfg,
            &self.store,
            req,
            &actor(&who, &request, why),
            expected,
            deadline,
        )
        .await
        .map_err(status_of)?;
        tracing::info!(request = %id, by = %who.name, "{what} requested through the operator API");
        Ok(Response::new(SubmitReply { id }))
    }

    async fn outcome(
        &self,
        request: Request<RequestRef>,
    ) -> Result<Response<RequestState>, Status> {
        self.caller(&request, Role::Viewer, "outcome")?;
        let id = request_id(&request.get_ref().id)?;
        let s = ops::request_state(&self.store, id)
            .await
            .map_err(status_of)?;
        Ok(Response::new(RequestState {
            status: s.status.as_str().to_string(),
            outcome: s.outcome.unwrap_or_default(),
            journal_id: s.journal_id.unwrap_or_default(),
            gate: s.gate.unwrap_or_default(),
            write_unavailable_ms: s.write_unavailable_ms,
            steps: s.steps,
        }))
    }

    async fn cancel(
        &self,
        request: Request<CancelRequest>,
    ) -> Result<Response<CancelReply>, Status> {
        let who = self.caller(&request, Role::Operator, "cancel")?;
        let r = request.get_ref();
        let id = request_id(&r.id)?.to_string();
        let why = reason(&r.reason)?;
        let (cancelled, what) = ops::cancel_request(&self.store, &id, &actor(&who, &request, why))
            .await
            .map_err(status_of)?;
        Ok(Response::new(CancelReply { cancelled, what }))
    }
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
