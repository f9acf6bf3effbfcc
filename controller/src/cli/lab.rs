//! `switchyard lab [--demo]`: a whole multi-region deployment on this
//! machine (see [`crate::lab`]).

use std::io::Write;
use std::path::Path;

/// Runs the lab. Returns the exit code: 0 when it came up and the demo
/// showed every step, 1 otherwise (a missing prerequisite is named).
pub async fn run(repo_root: &Path, demo_only: bool, out: &mut dyn Write) -> anyhow::Result<i32> {
    crate::lab::run(repo_root, demo_only, out).await
}
