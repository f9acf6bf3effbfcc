//! What a Switchyard process takes from its host that the simulator must
//! control, so that three controllers sharing one runtime can each be
//! paused ([`Host::set_frozen`]) and each run on a clock of its own rate
//! ([`time`]). A shipping process has no [`Host`] in scope: [`spawn`] is
//! `tokio::spawn` and [`time`] is tokio's clock.

mod host;
mod rate;
pub mod time;

pub use host::{Host, spawn, spawn_in};
pub use rate::Rate;
