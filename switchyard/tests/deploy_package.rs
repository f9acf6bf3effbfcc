//! The Debian package: `cargo deb` builds it from the binary the suite
//! built (`--profile dev --no-build`: a release build would double the
//! suite's compile time; the package's contents are the same), `dpkg -i`
//! installs it on this machine, the installed `switchyard` runs, and
//! `systemd-analyze verify` finds nothing to say about the installed
//! units. The package is purged afterwards, also when the test fails.
//! Needs root; skipped with a message otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// Purges the package however the test ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "switchyard"])
            .output();
    }
}

#[test]
fn the_units_are_hardened() {
    let unit = |name: &str| {
        std::fs::read_to_string(root().join("deploy/systemd").join(name)).expect("unit")
    };
    for (name, caps) in [
        ("switchyard-controller@.service", "CAP_NET_BIND_SERVICE"),
        ("switchyard-probe@.service", ""),
    ] {
        let text = unit(name);
        for line in [
            "DynamicUser=yes".to_string(),
            "NoNewPrivileges=yes".into(),
            "ProtectSystem=strict".into(),
            format!("CapabilityBoundingSet={caps}"),
            format!("AmbientCapabilities={caps}"),
        ] {
            assert!(text.lines().any(|l| l == line), "{name} lacks `{line}`");
        }
    }
    assert!(unit("switchyard-controller@.service").contains("StateDirectory=switchyard/%i"));
}

#[test]
fn the_package_builds_installs_and_its_units_verify() {
    if !is_root() {
        eprintln!("SKIPPED: dpkg -i needs root (run the suite as root, as CI does)");
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let deb = tmp.path().join("switchyard.deb");
    run(Command::new("cargo")
        .args([
            "deb",
            "-p",
            "switchyard",
            "--profile",
            "dev",
            "--no-build",
            "--fast",
            "--no-strip",
            "-o",
        ])
        .arg(&deb)
        .current_dir(root()));
    let contents = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for path in [
        "./usr/bin/switchyard",
        "./lib/systemd/system/switchyard-controller@.service",
        "./lib/systemd/system/switchyard-probe@.service",
        "./etc/default/switchyard",
        "./usr/share/switchyard/prometheus/alerts.yml",
        "./usr/share/switchyard/grafana/switchyard.json",
        "./usr/share/doc/switchyard/runbooks/region-outage.md",
    ] {
        assert!(
            contents.contains(path),
            "the package lacks {path}:\n{contents}"
        );
    }
    let _installed = Installed;
    run(Command::new("dpkg").arg("-i").arg(&deb));
    let version = run(Command::new("/usr/bin/switchyard").arg("--version"));
    assert!(
        version.contains(env!("CARGO_PKG_VERSION")),
        "installed switchyard says {version:?}"
    );
    // The example config the package ships is valid.
    run(Command::new("/usr/bin/switchyard").args([
        "config",
        "check",
        "/usr/share/doc/switchyard/examples/switchyard.toml",
    ]));
    let verify = run(Command::new("systemd-analyze").args([
        "verify",
        "switchyard-controller@ctl-us-east.service",
        "switchyard-probe@us-east.service",
    ]));
    assert!(
        verify.trim().is_empty(),
        "systemd-analyze verify is not clean:\n{verify}"
    );
}
