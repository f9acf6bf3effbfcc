//! Regional probes: every probe checks every region's services and databases
//! from its own vantage and streams what it sees to every controller.
//!
//! This crate owns the report protocol ([`proto`]); the checks, scheduler and
//! report stream arrive with their own issue.

pub use switchyard_replication as replication;

/// The probe report protocol (`proto/report.proto`), shared by probes
/// (client) and controllers (server).
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("switchyard.probe.v1");
}
