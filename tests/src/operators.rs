//! The operator every test cluster's config declares, so that tests can
//! drive the `switchyard` CLI through the operator API as an admin.

use std::path::Path;

use sha2::Digest as _;

/// The token of the admin operator (`fixture-admin`) of every test
/// cluster; it is written to `admin.token` beside the config.
pub const ADMIN_TOKEN: &str = "fixture-admin-token-0123456789";

/// Writes `dir/admin.token` and returns the `[[operators]]` entry that
/// knows it (by its SHA-256).
pub fn admin_operator(dir: &Path) -> String {
    std::fs::write(dir.join("admin.token"), ADMIN_TOKEN).expect("write the admin token");
    format!(
        "\n[[operators]]\nname = \"fixture-admin\"\nrole = \"admin\"\ntoken_sha256 = \"{}\"\n",
        hex::encode(sha2::Sha256::digest(ADMIN_TOKEN.as_bytes()))
    )
}

/// The `switchyard` commands that change something, and so need
/// `--reason`.
pub const CHANGES: [&str; 8] = [
    "pause",
    "resume",
    "drain",
    "undrain",
    "failback",
    "failover",
    "switchover",
    "cancel",
];
