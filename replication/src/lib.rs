//! Database replication for Switchyard: the [`ReplicaSet`] trait the
//! controller's executor drives, the MySQL/MariaDB ([`mysql`]) and MongoDB
//! ([`mongodb`]) adapters, and pure candidate selection ([`candidate`]).
//!
//! This crate is the bottom of the dependency chain: it never depends on
//! the probes or the controller, and adapters are built from plain data
//! ([`MemberSpec`], [`Rules`]).
//!
//! What runs against real servers: the `mariadb` flavor, in this crate's
//! tests, against MariaDB 10.11 topologies started by `switchyard-tests`.
//! What does not: MySQL 8 and MongoDB cannot be installed on these
//! machines, so the `mysql` flavor's statements and the MongoDB command
//! documents are unit-tested against the replies their manuals document.
//!
//! Pure parts (no I/O): [`gtid`], [`candidate`], [`snapshot`], and the
//! statement/command builders and reply parsers of each adapter.

mod stepper;

pub mod candidate;
pub mod conformance;
pub mod error;
pub mod gtid;
pub mod guard;
pub mod lag;
pub mod mongodb;
pub mod mysql;
pub mod replica_set;
pub mod report;
pub mod snapshot;
pub mod spec;

pub use candidate::{Choice, Exclusion, NoChoice, choose_candidate, vet_target};
pub use error::ReplError;
pub use gtid::{Missing, OpTime, Position};
pub use guard::{Step, StepGuard, Unguarded};
pub use lag::{LagHistory, LastSeen};
pub use mongodb::MongoReplicaSet;
pub use mysql::{Flavor, MySqlReplicaSet, Timeouts};
pub use replica_set::{FailoverRequest, ReplicaSet};
pub use report::{Operation, Report};
pub use snapshot::{ContactError, ContactErrorKind, MemberState, Role, Snapshot};
pub use spec::{Credentials, MemberSpec, Promotion, Rules};
