//! The controller's gRPC services: probe ingest (every controller), and the
//! operator API.

pub mod ingest;
pub mod operator;
pub mod peer;
pub mod tls_accept;
