//! Switchyard's decisions as pure functions of data, in a crate with no I/O
//! dependency so that the compiler keeps deciding apart from doing: the
//! engine (`decide(view, policy, now)` and the plans, alarms and gate
//! waits around it), the isolation assessment, the orchestration steps the
//! journal records, and the journal's types. The controller performs what
//! these decide; the simulator drives them on a simulated clock.

pub mod engine;
pub mod isolation;
pub mod journal;
pub mod step;
