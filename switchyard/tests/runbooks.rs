//! The runbooks (`runbooks/*.md`) are run, not just read:
//!
//! - every runbook has its parts (Symptoms, Decide, Act, Verify, Roll
//!   back), names the alerts of `deploy/prometheus/alerts.yml` that send
//!   the on-call person to it, and every alert names a runbook that names
//!   it back;
//! - every `switchyard` command in a ```sh block parses with the real
//!   binary (fast, before the long test);
//! - every ```sh block of every runbook runs, in order, runbook after
//!   runbook, against one running lab (`switchyard lab up`): real etcd,
//!   MariaDB, controllers and probes, the real commands;
//! - then, on that lab (which has failed over, waited at the gate, given
//!   up leases and restarted controllers by now), every metric that
//!   `deploy/prometheus/alerts.yml` and `deploy/grafana/switchyard.json`
//!   name is on a live `/metrics` page of a controller, probe or etcd
//!   member (but the two the lead's work will export).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The order the lab test runs them in: each leaves the lab healthy for the
/// next (region-outage drains us-east, failback brings it back, …).
const RUN_ORDER: [&str; 9] = [
    "region-outage.md",
    "failback.md",
    "planned-switchover.md",
    "database-primary-loss.md",
    "dns-provider-outage.md",
    "etcd-quorum-loss.md",
    "controller-upgrade.md",
    "split-brain.md",
    "certificate-rotation.md",
];

/// The parts every runbook has, as headings.
const PARTS: [&str; 5] = [
    "## Symptoms",
    "## Decide",
    "## Act",
    "## Verify",
    "## Roll back",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn runbook(name: &str) -> String {
    std::fs::read_to_string(root().join("runbooks").join(name))
        .unwrap_or_else(|e| panic!("runbooks/{name}: {e}"))
}

/// Every runbook file but the README.
fn runbook_files() -> BTreeSet<String> {
    std::fs::read_dir(root().join("runbooks"))
        .expect("runbooks dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md") && n != "README.md")
        .collect()
}

/// The ```sh blocks of a markdown text, each with the line it starts on.
fn sh_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let mut in_other = false;
    for (n, line) in markdown.lines().enumerate() {
        let t = line.trim();
        if t.starts_with("```") {
            if let Some(block) = current.take() {
                out.push(block);
            } else if in_other {
                in_other = false;
            } else if t == "```sh" {
                current = Some((n + 1, String::new()));
            } else {
                in_other = true;
            }
            continue;
        }
        if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    out
}

/// The `switchyard …` command lines in ```sh blocks.
fn commands(markdown: &str) -> Vec<String> {
    sh_blocks(markdown)
        .into_iter()
        .flat_map(|(_, b)| {
            b.lines()
                .map(str::trim)
                .filter(|l| l.starts_with("switchyard "))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// (alert name, runbook_url) of every alert in alerts.yml.
fn alerts() -> Vec<(String, Option<String>)> {
    let text = std::fs::read_to_string(root().join("deploy/prometheus/alerts.yml"))
        .expect("deploy/prometheus/alerts.yml");
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("- alert:") {
            out.push((name.trim().to_string(), None));
        } else if let Some(url) = t.strip_prefix("runbook_url:") {
            let last = out.last_mut().expect("runbook_url before any alert");
            assert!(last.1.is_none(), "{} has two runbook_url", last.0);
            last.1 = Some(url.trim().trim_matches('"').to_string());
        }
    }
    out
}

/// Words that look like alert names (`Switchyard` + a capital letter).
fn alert_names_in(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| {
            w.strip_prefix("Switchyard")
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_uppercase()))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn every_runbook_has_its_parts_and_runs_in_the_lab_test() {
    let files = runbook_files();
    let ordered: BTreeSet<String> = RUN_ORDER.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        files, ordered,
        "every runbook must be in RUN_ORDER (and so run against the lab)"
    );
    let readme = runbook("README.md");
    for f in &files {
        let text = runbook(f);
        for part in PARTS {
            assert!(
                text.lines().any(|l| l.starts_with(part)),
                "runbooks/{f} has no `{part}` section"
            );
        }
        assert!(!sh_blocks(&text).is_empty(), "runbooks/{f} has no sh block");
        assert!(
            readme.contains(&format!("({f})")),
            "README does not list {f}"
        );
    }
}

#[test]
fn every_alert_names_a_runbook_that_names_it_back() {
    let alerts = alerts();
    assert!(alerts.len() >= 10, "only {} alerts", alerts.len());
    let names: BTreeSet<String> = alerts.iter().map(|(n, _)| n.clone()).collect();
    for (name, url) in &alerts {
        let url = url
            .as_deref()
            .unwrap_or_else(|| panic!("alert {name} has no runbook_url"));
        let file = url
            .strip_prefix("runbooks/")
            .unwrap_or_else(|| panic!("alert {name}: runbook_url {url} is not under runbooks/"));
        let path = root().join(url);
        assert!(path.exists(), "alert {name}: {url} does not exist");
        let text = runbook(file);
        let symptoms = text
            .split("## Symptoms")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .unwrap_or_else(|| panic!("{url} has no Symptoms section"));
        assert!(
            symptoms.contains(name.as_str()),
            "alert {name} sends people to {url}, whose Symptoms do not name it"
        );
    }
    for f in runbook_files() {
        let text = runbook(&f);
        let named = alert_names_in(&text);
        assert!(
            named.iter().any(|n| names.contains(n)),
            "runbooks/{f} names no alert of alerts.yml"
        );
        for n in &named {
            assert!(
                names.contains(n),
                "runbooks/{f} names {n}, which is not an alert in alerts.yml"
            );
        }
    }
}

/// `cmd` split into words as a shell would, for quoting only: a quoted
/// string (with its spaces, and `$VAR`s left as written) is one word.
fn shell_words(cmd: &str) -> Vec<String> {
    let (mut words, mut word, mut quote, mut in_word) = (Vec::new(), String::new(), None, false);
    for c in cmd.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

#[test]
fn every_runbook_command_parses() {
    let mut checked = 0;
    for f in runbook_files() {
        for cmd in commands(&runbook(&f)) {
            // Shell words only up to the first shell syntax.
            let args: Vec<String> = shell_words(&cmd)
                .into_iter()
                .skip(1)
                .take_while(|w| {
                    !matches!(w.as_str(), "|" | ">/dev/null" | "2>/dev/null" | "&&" | ";")
                })
                .collect();
            // A change must say why: `--help` below would accept it without.
            let changes = switchyard_tests::operators::CHANGES;
            if args.first().is_some_and(|a| changes.contains(&a.as_str())) {
                assert!(
                    args.iter().any(|a| a == "--reason"),
                    "runbooks/{f}: `{cmd}` changes the cluster without --reason"
                );
            }
            let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
                .args(&args)
                .arg("--help")
                .output()
                .expect("run switchyard");
            assert!(
                out.status.success(),
                "runbooks/{f}: `{cmd}` is not a valid command: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} commands found");
}

#[test]
fn the_block_parser_keeps_sh_blocks_only() {
    let md = "```sh\nswitchyard status\n```\n```text\nswitchyard no\n```\n```\nx\n```\n```sh\na\nb\n```\n";
    assert_eq!(
        sh_blocks(md),
        [(1, "switchyard status\n".into()), (10, "a\nb\n".into())]
    );
    assert_eq!(commands(md), ["switchyard status"]);
    assert_eq!(
        shell_words(r#"switchyard drain --reason "a b; c" --region 'x y' | jq"#),
        [
            "switchyard",
            "drain",
            "--reason",
            "a b; c",
            "--region",
            "x y",
            "|",
            "jq"
        ]
    );
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["failover", "--databse", "orders", "--help"])
        .output()
        .expect("run switchyard");
    assert!(!out.status.success());
}

/// Stops the lab however the test ends.
struct LabGuard {
    dir: PathBuf,
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["lab", "down", "--purge", "--dir"])
            .arg(&self.dir)
            .output();
    }
}

/// Runs `script` with bash, killing it after `limit`.
fn run_bash(script: &str, env: &[(&str, String)], limit: Duration) -> (bool, String) {
    let log = tempfile::NamedTempFile::new().expect("temp file");
    // Both streams append to one file: two plain handles would each write
    // from offset 0, and stderr would overwrite what stdout wrote.
    let append = || {
        std::fs::OpenOptions::new()
            .append(true)
            .open(log.path())
            .expect("log")
    };
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(append())
        .stderr(append());
    for (k, v) in env {
        cmd.env(k, v);
    }
    for var in [
        "REGION",
        "DB",
        "TO",
        "DEAD",
        "OLD",
        "CONTROLLER_METRICS",
        "PROBE_METRICS",
    ] {
        cmd.env_remove(var);
    }
    let mut child = cmd.spawn().expect("run bash");
    let deadline = Instant::now() + limit;
    let ok = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.success();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (ok, std::fs::read_to_string(log.path()).unwrap_or_default())
}

#[test]
fn every_runbook_runs_in_order_against_the_lab() {
    let bin = Path::new(env!("CARGO_BIN_EXE_switchyard"));
    let tmp = tempfile::Builder::new()
        .prefix("switchyard-runbooks-")
        .tempdir()
        .expect("temp dir");
    let dir = tmp.path().join("lab");
    let _guard = LabGuard { dir: dir.clone() };
    let t = Instant::now();
    let up = Command::new(bin)
        .args(["lab", "up", "--dir"])
        .arg(&dir)
        .output()
        .expect("lab up");
    assert!(
        up.status.success(),
        "lab up failed: {}{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );
    eprintln!("lab up: {:.1}s", t.elapsed().as_secs_f64());
    // Lab verbs speak JSON too: `status` gives the lab's state.
    let status = Command::new(bin)
        .args(["lab", "status", "--output", "json", "--dir"])
        .arg(&dir)
        .output()
        .expect("lab status");
    let state: serde_json::Value =
        serde_json::from_slice(&status.stdout).expect("lab status --output json is JSON");
    assert_eq!(
        state["controllers"].as_array().map(Vec::len),
        Some(3),
        "{state}"
    );
    let path = format!(
        "{}:{}",
        bin.parent().expect("bin dir").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = [
        ("PATH", path),
        (
            "SWITCHYARD_CONFIG",
            dir.join("lab.toml").display().to_string(),
        ),
        (
            "SWITCHYARD_TOKEN_FILE",
            dir.join("operator.token").display().to_string(),
        ),
        ("SWITCHYARD_LAB_DIR", dir.display().to_string()),
    ];
    let mut live = BTreeSet::new();
    for f in RUN_ORDER {
        let text = runbook(f);
        let mut script = String::from("set -euo pipefail\n");
        for (line, block) in sh_blocks(&text) {
            script.push_str(&format!("echo '### runbooks/{f}, block at line {line}'\n"));
            script.push_str(&block);
        }
        let t = Instant::now();
        let (ok, output) = run_bash(&script, &env, Duration::from_secs(600));
        eprintln!("runbooks/{f}: {:.1}s\n{output}", t.elapsed().as_secs_f64());
        if !ok {
            let status = Command::new(bin)
                .args(["lab", "status", "--dir"])
                .arg(&dir)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let log = switchyard_tests::process::log_tail(&dir.join("lab.log"), 3000);
            panic!(
                "runbooks/{f} failed:\n{output}\n--- lab status ---\n{status}\n--- lab.log ---\n{log}"
            );
        }
        // Scraped after every runbook: a controller restarted later starts
        // its counters again.
        live.extend(live_metric_names(&dir));
    }
    alerts_and_dashboard_name_live_metrics(&live);
}

/// The metric names (`switchyard_…`, `etcd_…`) a PromQL text mentions.
fn metric_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("switchyard_") || w.starts_with("etcd_"))
        .map(str::to_string)
        .collect()
}

/// Every metric name on the `/metrics` pages of the lab's controllers,
/// probes and etcd members (summaries also as `_sum` and `_count`).
fn live_metric_names(lab_dir: &Path) -> BTreeSet<String> {
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lab_dir.join("lab.json")).expect("lab.json"))
            .expect("lab.json is JSON");
    let mut urls = Vec::new();
    for kind in ["controllers", "probes"] {
        for p in state[kind].as_array().expect("parts") {
            if let Some(m) = p["metrics"].as_str() {
                urls.push(format!("http://{m}/metrics"));
            }
        }
    }
    for e in state["etcd"].as_array().expect("etcd") {
        urls.push(format!("{}/metrics", e["url"].as_str().expect("url")));
    }
    let mut names = BTreeSet::new();
    for url in urls {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "10", &url])
            .output()
            .expect("curl");
        assert!(out.status.success(), "cannot scrape {url}");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            names.insert(name.to_string());
        }
    }
    names
}

/// After the runbooks (failovers, gate waits, lease give-ups, restarts),
/// every metric the alerts and the dashboard name was on a live page.
fn alerts_and_dashboard_name_live_metrics(live: &BTreeSet<String>) {
    let alerts =
        std::fs::read_to_string(root().join("deploy/prometheus/alerts.yml")).expect("alerts.yml");
    let alerts: String = alerts
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/grafana/switchyard.json")).expect("dashboard"),
    )
    .expect("dashboard JSON");
    let mut queries = String::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            queries.push_str(t["expr"].as_str().unwrap_or_default());
            queries.push('\n');
        }
    }
    for (what, text) in [
        ("alerts.yml", alerts.as_str()),
        ("the dashboard", queries.as_str()),
    ] {
        let named = metric_names(text);
        assert!(named.len() >= 8, "{what} names only {named:?}");
        let missing: Vec<&String> = named.iter().filter(|n| !live.contains(*n)).collect();
        assert!(
            missing.is_empty(),
            "{what} names metrics no running controller, probe or etcd exports: {missing:?}"
        );
    }
}
