//! What the shipping binary links: the servers its `lab` starts
//! (`switchyard-labkit`), never the test suite's fixtures
//! (`switchyard-tests`), which are free to grow test-only machinery.

use std::process::Command;

#[test]
fn the_shipping_binary_does_not_link_the_test_fixtures() {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--package",
            "switchyard-controller",
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
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crates: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(crates.contains(&"switchyard-labkit"), "{text}");
    assert!(
        !crates.contains(&"switchyard-tests"),
        "the binary links the test fixtures:\n{text}"
    );
}
