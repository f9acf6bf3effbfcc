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
    for step in [
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
