//! The end-to-end tests of the `switchyard` binary, in one test binary.
//!
//! Each file beside this one is a module of it: one subject each (a
//! failover end to end, the operator API, the runbooks, ...), named
//! `<file>::<test>` in nextest. They were one binary per file; each of
//! those linked the whole controller and compiled `common` again (83
//! CPU-seconds of build for the package's test units, 13 for this one,
//! on two cores). nextest still runs every test in a process of its own,
//! so the tests share nothing but the binary. The simulator (`sim`) and the fault matrix
//! (`fault_matrix`) stay binaries of their own: scripts run them alone.

// Helpers the modules share.
mod common;
mod fast_support;
mod split_lab;
mod traffic_support;

mod config_check;
mod controller_alarms;
mod controller_db_failover;
mod controller_embedded;
mod controller_failover;
mod controller_ingest;
mod controller_ops;
mod controller_route53;
mod controller_steady;
mod controller_unreadable_record;
mod crate_boundaries;
mod dead_man;
mod deploy_monitoring;
mod deploy_package;
mod deposed_leader;
mod dns_fast_path;
mod dns_hostile;
mod election_mixed_versions;
mod etcd_secured;
mod fence_gate;
mod fence_isolation;
mod fence_lease;
mod fence_local;
mod grpc_tls;
mod ingest_hostile;
mod journal_bounded;
mod lab_demo;
mod lanes;
mod operator_api;
mod operator_hostile;
mod probe_e2e;
mod rolling_upgrade;
mod runbooks;
mod split_brain;
mod store_conformance;
mod store_on_model;
mod terraform;
mod traffic_conformance;
mod traffic_embedded;
mod traffic_route53;
