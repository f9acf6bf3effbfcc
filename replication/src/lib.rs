//! Database replication: the `ReplicaSet` trait, the MySQL/MariaDB and MongoDB
//! adapters, and pure candidate selection.
//!
//! The adapters arrive with their own issue; this crate is the bottom of the
//! dependency chain and must never depend on the probes or the controller.
