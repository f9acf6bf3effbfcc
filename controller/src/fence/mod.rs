//! Split-brain protection (ARCHITECTURE.md §5, "A region cut off from the
//! rest"): the building blocks a controller uses so that a region cut off
//! from the others never keeps a writable primary while the majority side
//! promotes another one.
//!
//! - [`isolation`]: is this controller connected, in an etcd outage (fail
//!   static), or isolated (fence the local primaries)? Pure.
//! - [`lease`]: the per-database *primary lease* in etcd: its keeper, run by
//!   the controller of the primary's region, and the leader's reader.
//! - [`local`]: the local fencer an isolated controller runs, with a durable
//!   record of what it did for history.
//! - [`gate`]: the promotion gate the executor consults before replacing an
//!   unreachable primary. Pure.

pub mod gate;
pub mod isolation;
pub mod lease;
pub mod local;
