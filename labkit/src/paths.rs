//! Where fixtures find the servers they start and where they put their files.

use std::path::{Path, PathBuf};

/// The repository root (the workspace directory), found from this crate's
/// manifest directory so tests work from any current directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A binary from the project virtualenv made by `scripts/setup`.
pub fn venv_bin(name: &str) -> PathBuf {
    repo_root().join(".venv").join("bin").join(name)
}

/// Finds a system binary in the usual Debian locations, so fixtures work
/// even when `/usr/sbin` is not on a non-root user's `PATH`.
pub fn system_bin(name: &str) -> anyhow::Result<PathBuf> {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return Ok(p);
        }
    }
    anyhow::bail!("`{name}` is not installed; run scripts/setup")
}

/// A fresh temp dir whose name marks it as a fixture's, removed on drop.
pub fn fixture_dir(kind: &str) -> anyhow::Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new()
        .prefix(&format!("switchyard-fixture-{kind}-"))
        .tempdir()?)
}
