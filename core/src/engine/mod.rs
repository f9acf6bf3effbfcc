//! Pure decisions: health aggregation, region state, plan, guard rails.
//!
//! Everything here is a function from data to data: no tokio, no I/O, no
//! clock (`now` is always an argument), ordered maps only — so every
//! controller given the same inputs reaches the same decision, and the whole
//! module is tested with tables and property tests. See ARCHITECTURE §4.
//!
//! The flow: probe reports go into a [`HealthBook`] (rise/fall per target and
//! vantage); [`decide`] turns the book, the [`Topology`], the persisted
//! [`ControlState`] and the [`Policy`] into a [`Decision`]: per-target
//! [`Verdict`]s, per-region [`RegionState`]s, a [`Plan`] of [`Action`]s and
//! [`Alarm`]s.

mod alarms;
mod control;
mod database;
mod decide;
mod gate_wait;
mod hash;
mod health;
mod plan;
mod policy;
mod published_plan;
mod region;
mod settle;
mod sorted;
mod topology;
mod traffic;
mod verdict;
mod weights;

#[cfg(test)]
mod tests;

pub use alarms::{AlarmChanges, AlarmKey, PublishedAlarm, alarm_changes, kind_label};
pub use control::{ControlState, DesiredWeights, RegionState, RegionStatus};
pub use decide::{Decision, PAUSED_REASON, decide};
pub use gate_wait::GateWaits;
pub use health::{HealthBook, Observation, VantageHealth, VantageStatus};
pub use plan::{Action, Alarm, AlarmKind, Plan};
pub use policy::{DEFAULT_SETTLE_WINDOW, DbFailoverMode, FailbackMode, Policy};
pub use published_plan::{GateHold, PublishedPlan, plan_fingerprint};
pub use topology::{Database, Endpoint, Member, Record, Region, TargetId, Topology};
pub use verdict::{TargetVerdict, Verdict, verdict};
