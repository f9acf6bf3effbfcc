//! The README's main job: `switchyard lab --demo` brings a three-region
//! deployment up on this machine, shows a region evacuated and failed back
//! and a database failed over, and stops everything it started.

use std::process::Command;

#[test]
fn the_lab_demo_runs_every_step_and_cleans_up() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["lab", "--demo"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("run the lab");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The writer record names the old primary, then the new one.
    let writers: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("dig orders-writer.lab.test."))
        .filter_map(|l| l.split("on every controller: ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert_eq!(writers.len(), 2, "{stdout}");
    assert_ne!(
        writers[0], writers[1],
        "the writer record moved to the new primary:\n{stdout}"
    );
    // Where this machine allows it (the suite runs as root), each region
    // runs in a network namespace of its own.
    if switchyard_tests::netns::NetNs::create(1).is_ok() {
        assert!(
            stdout.contains("each region in its own network namespace"),
            "{stdout}"
        );
    }
    for step in [
        "gRPC: mutual TLS from the lab's own CA",
        "leader elected",
        "us-east evacuated after",
        "us-east failed back in",
        "promoted",
        "takes writes",
        "demo complete",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
    }
}
