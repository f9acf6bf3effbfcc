//! The controller's gRPC services: probe ingest (every controller), the
//! operator API, peer pings, health and reflection.

pub mod ingest;
pub mod operator;
pub mod peer;
pub mod reflection;
pub mod tls_accept;
