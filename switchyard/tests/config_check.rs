//! `switchyard config check` as a user runs it: the real binary, real files,
//! exit codes and the exact `FILE:LINE:COLUMN: error: KEY.PATH: message` lines.

use std::process::{Command, Output};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/switchyard.toml");
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

fn check(file: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["config", "check", file])
        .output()
        .expect("the switchyard binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_example_config_is_ok() {
    let output = check(EXAMPLE);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert_eq!(text.lines().next(), Some("ok"), "{text}");
    // The summary shows what the file says, and there are no warnings.
    for expected in [
        "cluster      prod",
        "us-east",
        "eu-west",
        "ap-south",
        "api.example.com.",
        "orders",
        "route53",
    ] {
        assert!(
            text.contains(expected),
            "summary lacks {expected:?}:\n{text}"
        );
    }
    assert!(!text.contains("warning"), "{text}");
}

/// Runs the check on a file of `tests/data` and asserts it fails with
/// exactly one error, at `line:column`, on `key_path`, saying `fragment`.
fn assert_single_error(name: &str, line: usize, column: usize, key_path: &str, fragment: &str) {
    let file = format!("{DATA}/{name}");
    let output = check(&file);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{name}:\n{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.contains(": error: ")).collect();
    assert_eq!(errors.len(), 1, "{name}: want exactly one error:\n{text}");
    let prefix = format!("{file}:{line}:{column}: error: {key_path}: ");
    assert!(
        errors[0].starts_with(&prefix),
        "{name}: want a line starting with\n  {prefix}\ngot\n  {}",
        errors[0]
    );
    assert!(
        errors[0].contains(fragment),
        "{name}: want {fragment:?} in\n  {}",
        errors[0]
    );
    assert_eq!(text.lines().last(), Some("1 error"), "{name}:\n{text}");
}

#[test]
fn an_unknown_key_is_an_error_listing_the_valid_keys() {
    assert_single_error(
        "unknown_key.toml",
        52,
        3,
        "services[0].checks[1].expected_status",
        "unknown field `expected_status`, expected one of `interval`, `timeout`, `path`, `expect_status`",
    );
}

#[test]
fn a_duplicate_region_is_an_error() {
    assert_single_error(
        "duplicate_region.toml",
        18,
        8,
        "regions[2].name",
        "duplicate region name \"us-east\": already used by regions[0].name",
    );
}

#[test]
fn a_check_timeout_not_below_its_interval_is_an_error() {
    assert_single_error(
        "check_timeout.toml",
        45,
        13,
        "services[0].checks[0].timeout",
        "timeout (5s) must be below interval (5s)",
    );
}

#[test]
fn a_member_in_an_undeclared_region_is_an_error_listing_the_declared_ones() {
    assert_single_error(
        "member_undeclared_region.toml",
        67,
        12,
        "databases[0].members[1].region",
        "region \"mars\" is not declared; declared regions: us-east, eu-west",
    );
}

#[test]
fn an_unreadable_file_is_named_in_the_error() {
    let file = format!("{DATA}/no-such-file.toml");
    let output = check(&file);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.starts_with(&format!("{file}: cannot read config file")),
        "{text}"
    );
}

#[test]
fn two_regions_without_a_witness_warn_that_a_lost_region_is_never_down() {
    let file = format!("{DATA}/two_regions.toml");
    let output = check(&file);
    let text = stdout(&output);
    // A warning, not an error: the config works, just not for region loss.
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert_eq!(text.lines().next(), Some("ok"), "{text}");
    let warning = format!(
        "{file}:8:1: warning: regions: with 2 regions and no witness, a region lost together \
         with its probe leaves 1 vantage(s), below the quorum of 2"
    );
    assert!(text.contains(&warning), "want\n  {warning}\nin\n{text}");
    assert!(text.contains("hint: add a witness"), "{text}");
    assert!(text.contains("[[witnesses]]"), "{text}");
    assert_eq!(text.lines().last(), Some("1 warning"), "{text}");
}

#[test]
fn two_regions_with_a_witness_are_ok_and_the_witness_votes() {
    let output = check(&format!("{DATA}/two_regions_witness.toml"));
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert_eq!(text.lines().next(), Some("ok"), "{text}");
    assert!(!text.contains("warning"), "{text}");
    assert!(
        text.contains("witnesses    us-central-witness (vote only)"),
        "{text}"
    );
    assert!(text.contains("quorum 2 of 3 vantages"), "{text}");
}

#[test]
fn stale_after_not_above_a_checks_interval_plus_timeout_is_an_error() {
    assert_single_error(
        "stale_after.toml",
        8,
        15,
        "policy.stale_after",
        "stale_after (5s) must exceed every check's interval plus timeout, or a vantage goes \
         stale between two of its reports and verdicts flicker: services[0].checks[0] runs \
         every 5s with a 2s timeout (up to 7s between reports)",
    );
}

#[test]
fn the_example_config_states_its_staleness_and_settle_window() {
    let text = stdout(&check(EXAMPLE));
    assert!(text.contains("stale after 15s"), "{text}");
    assert!(text.contains("settle window 30s"), "{text}");
}

/// `switchyard probe --region <witness>` starts a probe for a declared
/// witness (its vantage), and an undeclared name is refused with the
/// regions and witnesses it could have been.
#[test]
fn a_probe_runs_at_a_declared_witness() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::Duration;

    let file = format!("{DATA}/two_regions_witness.toml");
    let probe = |region: &str| {
        Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["probe", "--config", &file, "--region", region])
            // Nothing listens there: the probe keeps retrying, which is fine.
            .args(["--controller", "http://127.0.0.1:9"])
            .env("SWITCHYARD_DB_PASSWORD", "unused")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the switchyard binary runs")
    };

    let mut child = probe("us-central-witness");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let first = rx.recv_timeout(Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    let first = first.expect("the probe prints its start line");
    assert!(
        first.starts_with("switchyard probe us-central-witness@")
            && first.contains("region=us-central-witness"),
        "{first}"
    );

    let output = probe("mars").wait_with_output().expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains(
            "region \"mars\" is not declared; declared regions: us-east, eu-west; witnesses: us-central-witness"
        ),
        "{err}"
    );
}
