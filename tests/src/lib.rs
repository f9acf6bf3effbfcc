//! Fixtures shared by Switchyard's integration tests: the real servers of
//! [`switchyard_labkit`] (re-exported here under the same paths: etcd,
//! MariaDB, HTTP targets, namespaces, the PKI, controller processes), and
//! what only tests need:
//!
//! - [`Route53Api`]: moto's Route 53 API and an `aws-sdk-route53` client for it.
//! - [`reports::ReportFleet`]: stand-in probes streaming scripted reports.
//!
//! Every child process carries the environment variable [`FIXTURE_ENV`], so
//! the test script can prove that no fixture process outlived the suite.

pub use switchyard_labkit::{
    ControllerProcess, Etcd, FIXTURE_ENV, FixtureProcess, HttpMode, HttpTarget, MariaDbTopology,
    controller, etcd, http_get, http_target, mariadb, netns, paths, pki, ports, process, wait,
};

pub mod operators;
pub mod reports;
pub mod route53;

pub use route53::Route53Api;
