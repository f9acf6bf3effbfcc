//! Talking to one member: a fresh connection per operation, every step
//! bounded by a timeout, and driver errors turned into [`ReplError`]s that
//! say whether the member was unreachable or refused us.
//!
//! A fresh connection (rather than a pool) is deliberate: a pool hides a
//! dead member behind a stale connection, and fencing kills every client
//! session, pooled ones included.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row, Value};

use super::flavor::Flavor;
use super::sim::{SimNetwork, SimSession};
use super::status::Columns;
use crate::error::ReplError;
use crate::snapshot::{ContactError, ContactErrorKind};
use crate::spec::{MemberSpec, split_address};

/// How long each kind of step may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting and logging in.
    pub connect: Duration,
    /// One ordinary statement (not a wait for catch-up).
    pub statement: Duration,
    /// A whole fence, connecting included (default 1 s): sessions killed,
    /// read-only set with a short lock wait (retried within this budget,
    /// killing again between tries), read back. Client locks cannot stall it
    /// past this budget; an isolated controller's deadline must exceed it.
    /// Inside an orchestration the smaller of this and the step's budget
    /// applies.
    pub fence: Duration,
    /// How long a promotion or a lift of a fence holds an armed member's
    /// dead-man switch ([`super::dead_man`]) before its region's controller
    /// must have renewed it (default 5 s).
    pub dead_man_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(2),
            statement: Duration::from_secs(10),
            fence: Duration::from_secs(1),
            dead_man_grace: Duration::from_secs(5),
        }
    }
}

/// Where the members' servers are: real ones over the network, or
/// simulated ones ([`super::sim`]) answering the same statements.
#[derive(Debug, Clone, Default)]
pub enum Servers {
    /// Real servers, through `mysql_async`.
    #[default]
    Real,
    /// Simulated servers.
    Sim(SimNetwork),
}

/// The connection under a session.
enum Link {
    Real(Conn),
    Sim(SimSession),
}

/// One open connection to a member.
pub struct Session {
    conn: Link,
    who: Who,
    statement_timeout: Duration,
    /// Nothing may run past this (the step's deadline), when set.
    deadline: Option<Instant>,
}

/// Member and user, for errors.
#[derive(Clone)]
struct Who {
    member: String,
    address: String,
    user: String,
}

/// Server error codes that mean "you may not": bad login or missing grant.
const ACCESS_DENIED: &[u16] = &[1044, 1045, 1142, 1227, 1698, 1873];

impl Session {
    /// Connects to `spec` within `timeouts.connect`.
    pub async fn open(
        servers: &Servers,
        spec: &MemberSpec,
        timeouts: Timeouts,
    ) -> Result<Session, ReplError> {
        Self::connect(servers, spec, timeouts.connect, timeouts.statement, None).await
    }

    /// Connects to `spec` for a step that must end by `deadline`: the
    /// connection and every statement are bounded by what is left of it,
    /// and so is every statement on the server (`max_statement_time` /
    /// `max_execution_time` and `lock_wait_timeout`), so that a statement
    /// abandoned by the client does not go on running there.
    pub async fn open_until(
        servers: &Servers,
        spec: &MemberSpec,
        timeouts: Timeouts,
        flavor: Flavor,
        deadline: Instant,
    ) -> Result<Session, ReplError> {
        let left = deadline.saturating_duration_since(switchyard_host::time::now());
        let mut s = Self::connect(
            servers,
            spec,
            timeouts.connect.min(left),
            timeouts.statement,
            Some(deadline),
        )
        .await?;
        let left = deadline.saturating_duration_since(switchyard_host::time::now());
        s.exec(&flavor.bound_session(left)).await?;
        Ok(s)
    }

    async fn connect(
        servers: &Servers,
        spec: &MemberSpec,
        connect: Duration,
        statement: Duration,
        deadline: Option<Instant>,
    ) -> Result<Session, ReplError> {
        let (host, port) = split_address(&spec.address).ok_or_else(|| ReplError::InvalidSpec {
            detail: format!(
                "member {}: address {:?} is not host:port",
                spec.id, spec.address
            ),
        })?;
        let opts = OptsBuilder::default()
            .ip_or_hostname(host)
            .tcp_port(port)
            .user(Some(spec.credentials.user.clone()))
            .pass(Some(spec.credentials.password.clone()))
            .prefer_socket(false);
        let attempt = async {
            match servers {
                Servers::Real => Conn::new(opts).await.map(Link::Real),
                Servers::Sim(net) => net.open(&spec.address).await.map(Link::Sim),
            }
        };
        let conn = match switchyard_host::time::timeout(connect, attempt).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(classify(spec, "connect", &e)),
            Err(_) => {
                return Err(ReplError::Unreachable {
                    member: spec.id.clone(),
                    address: spec.address.clone(),
                    detail: format!("no answer within {connect:?}"),
                });
            }
        };
        Ok(Session {
            conn,
            who: Who {
                member: spec.id.clone(),
                address: spec.address.clone(),
                user: spec.credentials.user.clone(),
            },
            statement_timeout: statement,
            deadline,
        })
    }

    /// `t`, cut to what is left before the deadline.
    fn limit(&self, t: Duration) -> Duration {
        match self.deadline {
            Some(d) => t.min(d.saturating_duration_since(switchyard_host::time::now())),
            None => t,
        }
    }

    /// The server's id for this connection (to spare it when fencing).
    pub fn connection_id(&self) -> u64 {
        match &self.conn {
            Link::Real(c) => u64::from(c.id()),
            Link::Sim(s) => s.id(),
        }
    }

    /// Runs one statement.
    pub async fn exec(&mut self, sql: &str) -> Result<(), ReplError> {
        self.exec_shown(sql, sql).await
    }

    /// Runs `sql`, naming it `shown` in errors (for statements with secrets).
    pub async fn exec_shown(&mut self, sql: &str, shown: &str) -> Result<(), ReplError> {
        let t = self.limit(self.statement_timeout);
        let who = self.who.clone();
        match &mut self.conn {
            Link::Real(c) => bounded(&who, shown, t, c.query_drop(sql)).await,
            Link::Sim(s) => bounded(&who, shown, t, s.run(sql)).await.map(drop),
        }
    }

    /// Runs a query and returns its rows as column-name → text maps.
    pub async fn rows(&mut self, sql: &str) -> Result<Vec<Columns>, ReplError> {
        let t = self.statement_timeout;
        self.rows_within(sql, t).await
    }

    /// Like [`Session::rows`], with its own time limit (for waits), still
    /// cut to the session's deadline.
    pub async fn rows_within(&mut self, sql: &str, t: Duration) -> Result<Vec<Columns>, ReplError> {
        let t = self.limit(t);
        let who = self.who.clone();
        match &mut self.conn {
            Link::Real(c) => {
                let rows: Vec<Row> = bounded(&who, sql, t, c.query(sql)).await?;
                Ok(rows.into_iter().map(columns).collect())
            }
            Link::Sim(s) => bounded(&who, sql, t, s.run(sql)).await,
        }
    }

    /// Closes the connection politely (errors ignored: it is going anyway).
    pub async fn close(self) {
        let t = self.limit(Duration::from_secs(1));
        match self.conn {
            Link::Real(c) => {
                let _ = switchyard_host::time::timeout(t, c.disconnect()).await;
            }
            Link::Sim(s) => s.close(),
        }
    }
}

async fn bounded<T>(
    who: &Who,
    shown: &str,
    t: Duration,
    fut: impl Future<Output = Result<T, mysql_async::Error>>,
) -> Result<T, ReplError> {
    // A timeout polls its future once even when already expired, and that
    // poll may send the statement: past the step's deadline, send nothing.
    if t.is_zero() {
        return Err(ReplError::Command {
            member: who.member.clone(),
            statement: shown.to_string(),
            detail: "not sent: the step's deadline has passed".into(),
        });
    }
    match switchyard_host::time::timeout(t, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(command_error(who, shown, &e)),
        Err(_) => Err(ReplError::Command {
            member: who.member.clone(),
            statement: shown.to_string(),
            detail: format!("no answer within {t:?}"),
        }),
    }
}

fn command_error(who: &Who, shown: &str, e: &mysql_async::Error) -> ReplError {
    let member = who.member.clone();
    match e {
        mysql_async::Error::Server(s) if ACCESS_DENIED.contains(&s.code) => {
            ReplError::AccessDenied {
                member,
                user: who.user.clone(),
                detail: format!("error {}: {} (running {shown})", s.code, s.message),
            }
        }
        mysql_async::Error::Server(_) => ReplError::Command {
            member,
            statement: shown.to_string(),
            detail: e.to_string(),
        },
        // The connection broke mid-statement: the member went away.
        _ => ReplError::Unreachable {
            member,
            address: who.address.clone(),
            detail: format!("{e} (running {shown})"),
        },
    }
}

/// Connection-time errors: refused login vs nobody answering.
fn classify(spec: &MemberSpec, what: &str, e: &mysql_async::Error) -> ReplError {
    match e {
        mysql_async::Error::Server(s) if ACCESS_DENIED.contains(&s.code) => {
            ReplError::AccessDenied {
                member: spec.id.clone(),
                user: spec.credentials.user.clone(),
                detail: format!("error {}: {}", s.code, s.message),
            }
        }
        mysql_async::Error::Server(s) => ReplError::Command {
            member: spec.id.clone(),
            statement: what.to_string(),
            detail: format!("error {}: {}", s.code, s.message),
        },
        other => ReplError::Unreachable {
            member: spec.id.clone(),
            address: spec.address.clone(),
            detail: other.to_string(),
        },
    }
}

/// The observation-side view of an error.
pub fn contact_error(e: &ReplError) -> ContactError {
    let (kind, detail) = match e {
        ReplError::Unreachable { detail, .. } => (ContactErrorKind::Unreachable, detail.clone()),
        ReplError::AccessDenied { detail, .. } => (ContactErrorKind::AccessDenied, detail.clone()),
        other => (ContactErrorKind::Failed, other.to_string()),
    };
    ContactError { kind, detail }
}

fn columns(row: Row) -> Columns {
    let names: Vec<String> = row
        .columns_ref()
        .iter()
        .map(|c| c.name_str().into_owned())
        .collect();
    names
        .into_iter()
        .zip(row.unwrap_raw())
        .map(|(n, v)| (n, v.and_then(text)))
        .collect()
}

fn text(v: Value) -> Option<String> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Double(d) => Some(d.to_string()),
        other => Some(format!("{other:?}")),
    }
}
