//! Background tasks tied to the value that owns them.
//!
//! Every task a controller's loops start goes through [`spawn`] or
//! [`spawn_in`], so the simulator can pause one process and run its
//! clock at a rate of its own ([`Host`]).

/// Aborts its task when dropped: a keep-alive, a ping loop or a watch lives
/// exactly as long as the handle, lease or term that started it, whichever
/// way that ends (including an early return with `?`).
#[derive(Debug)]
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub use switchyard_host::{Host, spawn, spawn_in};
