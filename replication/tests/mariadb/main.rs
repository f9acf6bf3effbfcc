//! The MySQL/MariaDB adapter against real MariaDB servers: one primary and
//! two replicas replicating with GTID, started per test on free loopback
//! ports by `switchyard-tests` (so tests run in parallel), stopped on drop.
//! Conditions are awaited by polling with a deadline, never by sleeping.

mod common;
mod writer;

mod bad_input;
mod conformance;
mod divergent;
mod errant;
mod failover;
mod fence;
mod guarded;
mod lagging;
mod steps;
mod switchover;
