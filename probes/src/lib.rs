//! Regional probes: every probe checks every region's services and databases
//! from its own vantage and streams what it sees to every controller.
//!
//! The controller builds a [`ProbePlan`] from its config (this crate never
//! depends on the controller) and calls [`run`]. Inside:
//!
//! - [`checks`]: one module per check kind (http/https, tcp, dns, grpc,
//!   mysql/mariadb, mongodb), each bounded by its timeout;
//! - [`schedule`]: every check on its own interval grid (a per-check phase
//!   spreads them), a semaphore bounding concurrency, scheduling delay measured;
//! - [`report`]: one bounded, drop-oldest buffer and one reconnecting client
//!   stream per controller, so a slow or dead controller never slows probing.
//!
//! Every check run is its own [`proto::ProbeReport`] (the `check` field names
//! the check); the controller's rise/fall works per (target, vantage).

pub use switchyard_replication as replication;

pub mod checks;
pub mod clock;
pub mod error;
mod metrics;
pub mod plan;
mod probe;
pub mod report;
pub mod schedule;
pub mod stats;

pub use checks::{Failure, FailureKind};
pub use clock::{Clock, SystemClock};
pub use error::{PlanError, ProbeError};
pub use plan::{
    CheckKind, CheckSpec, DnsCheck, DnsRecordType, GrpcCheck, HttpCheck, MongoDbCheck, MySqlCheck,
    ProbePlan, TargetPlan, TcpCheck,
};
pub use probe::{Probe, ProbeOptions, run, run_with};
pub use report::Backoff;
pub use stats::{CheckSnapshot, ControllerSnapshot, ProbeStats};

/// The probe report protocol (`proto/report.proto`), shared by probes
/// (client) and controllers (server).
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("switchyard.probe.v1");

    /// The encoded descriptors of this protocol, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/report_descriptor.bin"));
}
