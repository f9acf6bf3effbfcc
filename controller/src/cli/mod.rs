//! The `switchyard` command line: each subcommand lives in its own file and
//! returns the process exit code, so `main` stays a thin dispatcher.

pub mod client;
pub mod config;
pub mod controller;
pub mod logging;
pub mod ops;
pub mod plan;
pub mod probe;
pub mod progress;
pub mod remote;
