//! `deploy/prometheus/alerts.yml` passes `promtool check rules` and its
//! unit tests (`promtool test rules`), and the Grafana dashboard is a
//! dashboard whose every panel queries Prometheus. That every metric they
//! name is really exported is checked against a running lab's `/metrics`
//! at the end of `runbooks.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn promtool(args: &[&str]) -> String {
    let bin = switchyard_tests::paths::system_bin("promtool")
        .expect("promtool (Debian package prometheus) is installed by scripts/setup");
    let out = Command::new(bin)
        .args(args)
        .current_dir(deploy().join("prometheus"))
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn alert_rules_pass_promtool_check() {
    let text = promtool(&["check", "rules", "alerts.yml"]);
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn alert_rules_pass_their_unit_tests() {
    let text = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn the_dashboard_queries_prometheus_in_every_panel() {
    let text =
        std::fs::read_to_string(deploy().join("grafana/switchyard.json")).expect("dashboard");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "{} panels", panels.len());
    for p in panels {
        let title = p["title"].as_str().expect("title");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title} has no query");
        for t in targets {
            let expr = t["expr"].as_str().unwrap_or_default();
            assert!(
                expr.contains("switchyard_"),
                "panel {title}: query {expr:?} names no Switchyard metric"
            );
        }
    }
}
