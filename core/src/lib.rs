//! Switchyard's decisions as pure functions of data, in a crate with no I/O
//! dependency, so that deciding stays apart from doing (the crate cannot
//! name tokio, etcd or a database driver; `scripts/test` builds it alone,
//! without chrono's clock; `crate_boundaries.rs` checks both): the
//! engine (`decide(view, policy, now)` and the plans, alarms and gate
//! waits around it), the isolation assessment, the orchestration steps the
//! journal records, and the journal's types. The controller performs what
//! these decide; the simulator drives them on a simulated clock.

pub mod engine;
pub mod isolation;
pub mod journal;
pub mod step;
