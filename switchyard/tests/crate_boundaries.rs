//! Crate boundaries the design relies on, read from `cargo tree`: the
//! shipping binary links the servers its `lab` starts
//! (`switchyard-labkit`), never the test suite's fixtures
//! (`switchyard-tests`); and the pure core (`switchyard-core`: the engine,
//! the isolation assessment, steps and journal types) depends on nothing
//! that does I/O, so no decision can reach for the network or a clock.

use std::process::Command;

/// The crates `package` depends on (normal and build edges), by name.
fn dependencies(package: &str) -> (Vec<String>, String) {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--package",
            package,
            "--edges",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("run cargo tree");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crates = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    (crates, text)
}

#[test]
fn the_core_depends_on_nothing_that_does_io() {
    let (crates, text) = dependencies("switchyard-core");
    let io = [
        "tokio",
        "mio",
        "socket2",
        "etcd-client",
        "tonic",
        "hyper",
        "mysql_async",
        "mongodb",
        "aws-sdk-route53",
        "hickory-server",
        "metrics",
        "tracing",
        "libc",
        "nix",
        "rand",
    ];
    for c in io {
        assert!(
            !crates.iter().any(|d| d == c),
            "switchyard-core depends on {c}:\n{text}"
        );
    }
}

/// Every `.rs` file under `dir`, test files left out.
fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read core/src") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if name != "tests" {
                sources(&path, out);
            }
        } else if name.ends_with(".rs") && !name.ends_with("_tests.rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_core_reads_no_clock() {
    // chrono's clock is not a dependency of the core (scripts/test builds
    // it alone); std's clocks are always there, so the sources are read.
    let mut files = Vec::new();
    sources(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../core/src")),
        &mut files,
    );
    assert!(files.len() > 10, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read source");
        // Unit tests at the end of a file may use a clock.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for clock in ["Instant::now", "SystemTime::now", "Utc::now", "Local::now"] {
            assert!(
                !code.contains(clock),
                "{} reads a clock ({clock}): the core is handed `now`",
                f.display()
            );
        }
    }
}

#[test]
fn the_shipping_binary_does_not_link_the_test_fixtures() {
    let (crates, text) = dependencies("switchyard");
    let crates: Vec<&str> = crates.iter().map(String::as_str).collect();
    assert!(crates.contains(&"switchyard-labkit"), "{text}");
    assert!(
        !crates.contains(&"switchyard-tests"),
        "the binary links the test fixtures:\n{text}"
    );
}
