//! Switchyard's controller: the config schema, the decision engine, etcd
//! leadership and the journal, the executor, traffic backends, and the
//! operator CLI. See `docs/ARCHITECTURE.md` for the design.

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub use switchyard_core::engine;
pub mod executor;
pub mod fence;
pub mod lab;
pub mod runtime;
pub mod store;
pub mod task;
pub mod tls;
pub mod tls_reload;
pub mod traffic;
