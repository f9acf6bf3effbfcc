//! The check kinds. Each is built once from its [`CheckSpec`] (parsing and
//! validating up front) and then run on every tick; a run returns `Ok(())`
//! for up or a [`Failure`] saying why it is down. The scheduler bounds every
//! run by the check's timeout, so a check itself may wait forever.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::PlanError;
use crate::plan::{CheckKind, CheckSpec};

pub mod dns;
pub mod grpc;
pub mod http;
pub mod mongodb;
pub mod mongodb_status;
pub mod mysql;
pub mod mysql_status;
pub mod net;
pub mod tcp;
pub mod tls;

/// The future one check run returns.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send + 'a>>;

/// One runnable check. Implemented by every kind, and by tests that need a
/// check doing exactly what they say (hang, take 30 ms, fail).
pub trait Check: Send + Sync + fmt::Debug {
    /// Runs once: `Ok(())` is up, `Err` is down with the reason.
    fn run(&self) -> CheckFuture<'_>;
}

/// Why a check run counts as down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The class of failure: the metric label and the reason's prefix.
    pub kind: FailureKind,
    /// The details people read.
    pub detail: String,
}

impl Failure {
    /// A failure of `kind` with `detail`.
    pub fn new(kind: FailureKind, detail: impl Into<String>) -> Self {
        Failure {
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.label(), self.detail)
    }
}

/// Classes of failure, few enough to be a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// No result within the check's timeout (a hung target).
    Timeout,
    /// The connection was refused: nothing listens.
    Refused,
    /// Another connection failure (unreachable, reset, address in use).
    Connect,
    /// The host name did not resolve.
    Resolve,
    /// TLS handshake or certificate verification failed.
    Tls,
    /// The peer spoke, but not the expected protocol (bad HTTP, gRPC error).
    Protocol,
    /// An HTTP status other than the expected one.
    Status,
    /// The body lacks the expected substring.
    Body,
    /// Answered, but slower than `max_latency`.
    Latency,
    /// A DNS error answer, an empty answer, or not the expected record.
    DnsAnswer,
    /// gRPC health says the service is not serving.
    NotServing,
    /// The database refused the login.
    Auth,
    /// `read_only` differs from what the check expects.
    ReadOnly,
    /// Replication threads stopped or broken.
    Replication,
    /// Replication lag above the limit.
    Lag,
    /// A database member in a state that cannot serve (MongoDB `RECOVERING`, …).
    MemberState,
}

impl FailureKind {
    /// The metric label and the reason's prefix.
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::Refused => "refused",
            FailureKind::Connect => "connect",
            FailureKind::Resolve => "resolve",
            FailureKind::Tls => "tls",
            FailureKind::Protocol => "protocol",
            FailureKind::Status => "status",
            FailureKind::Body => "body",
            FailureKind::Latency => "latency",
            FailureKind::DnsAnswer => "dns_answer",
            FailureKind::NotServing => "not_serving",
            FailureKind::Auth => "auth",
            FailureKind::ReadOnly => "read_only",
            FailureKind::Replication => "replication",
            FailureKind::Lag => "lag",
            FailureKind::MemberState => "member_state",
        }
    }
}

/// What every check of one probe shares: the source address and the TLS
/// configuration (built once: loading the system roots costs milliseconds).
#[derive(Debug, Clone)]
pub struct CheckContext {
    /// Source address for outgoing connections, if pinned.
    pub source_address: Option<IpAddr>,
    /// TLS client configuration for HTTPS checks.
    pub tls: Arc<rustls::ClientConfig>,
}

impl CheckContext {
    /// Builds the shared context: system roots plus `extra_ca_pem`.
    pub fn new(
        source_address: Option<IpAddr>,
        extra_ca_pem: Option<&str>,
    ) -> Result<Self, PlanError> {
        Ok(CheckContext {
            source_address,
            tls: tls::client_config(extra_ca_pem)?,
        })
    }
}

/// Builds the runnable check for `spec`.
pub fn build(spec: &CheckSpec, ctx: &CheckContext) -> Result<Arc<dyn Check>, PlanError> {
    let bad = |why: String| PlanError::BadCheck {
        target: String::new(),
        check: spec.name.clone(),
        why,
    };
    Ok(match &spec.kind {
        CheckKind::Http(h) => Arc::new(http::HttpCheckRunner::new(h, ctx).map_err(bad)?),
        CheckKind::Tcp(t) => Arc::new(tcp::TcpCheckRunner::new(t, ctx)),
        CheckKind::Dns(d) => Arc::new(dns::DnsCheckRunner::new(d, ctx, spec.timeout)),
        CheckKind::Grpc(g) => Arc::new(grpc::GrpcCheckRunner::new(g, ctx, spec.timeout)),
        CheckKind::MySql(m) => {
            Arc::new(mysql::MySqlCheckRunner::new(m, spec.timeout).map_err(bad)?)
        }
        CheckKind::MongoDb(m) => {
            Arc::new(mongodb::MongoDbCheckRunner::new(m, spec.timeout).map_err(bad)?)
        }
    })
}
