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

/// The code a controller runs in its loops, outside the stand-ins the
/// simulator puts in for etcd and MariaDB (which keep true time) and the
/// conformance suites: every file of `dirs` under the workspace, less
/// those whose path contains one of `except`, each cut at its unit tests.
fn loop_code(dirs: &[&str], except: &[&str]) -> Vec<(std::path::PathBuf, String)> {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let mut files = Vec::new();
    for d in dirs {
        sources(&root.join(d), &mut files);
    }
    files
        .into_iter()
        .filter(|f| {
            let name = f.to_string_lossy();
            !except.iter().any(|e| name.contains(e))
                && !name.ends_with("_tests.rs")
                && !name.ends_with("/tests.rs")
        })
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("read source");
            let code = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
            (f, code)
        })
        .collect()
}

#[test]
fn the_loops_read_their_hosts_clock_and_spawn_on_their_host() {
    // A timer on tokio's clock, or a task spawned off its host, runs at
    // true time and on through a pause in the simulator, where each
    // controller's clock has a rate of its own and can be frozen: a step's
    // deadline read on one clock and checked on the other was cut by the
    // clocks' gap (docs/SIMULATION.md, "Host clocks at rates of their own").
    let files = loop_code(
        &[
            "replication/src",
            "controller/src/runtime",
            "controller/src/executor",
            "controller/src/store",
            "controller/src/fence",
            "controller/src/traffic",
        ],
        &[
            "mysql/sim.rs",
            "replication/src/conformance.rs",
            "kv/model.rs",
            "kv/conformance.rs",
            // The shipping controller's assembly: no host there.
            "controller/src/runtime/mod.rs",
            // The embedded DNS server: its workers' threads and runtime,
            // its serving tasks; never in a simulated controller.
            "traffic/embedded/",
        ],
    );
    assert!(files.len() > 40, "{}", files.len());
    let mut found = Vec::new();
    for (f, code) in files {
        for off_host in [
            "Instant::now",
            "tokio::time::sleep",
            "tokio::time::timeout",
            "tokio::time::interval",
            // An instant's elapsed() reads tokio's clock.
            ".elapsed()",
            "tokio::spawn",
            "tasks.spawn(",
            "set.spawn(",
        ] {
            if code.contains(off_host) {
                found.push(format!("{} uses {off_host}", f.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the loops read switchyard_host::time and spawn with switchyard_host::spawn:\n{}",
        found.join("\n")
    );
}
