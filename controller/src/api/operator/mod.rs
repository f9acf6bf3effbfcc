//! The operator API (`proto/operator.proto`): status, plan, history,
//! switches, failover and switchover requests, their outcome and
//! cancelling them — with bearer-token identities and roles.

pub mod auth;
pub mod reach;
pub mod reload;
pub mod service;

/// The generated protocol.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("switchyard.operator.v1");
}

pub use auth::{Identity, OperatorBook};
pub use service::OperatorService;
