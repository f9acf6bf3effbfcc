//! Every `switchyard` command in `runbooks/*.md` (inside ```sh blocks) is
//! one the real binary accepts: each is run with `--help` appended, which
//! clap answers with success only when every subcommand and flag before it
//! exists. A renamed flag breaks this test, not the on-call person's night.

use std::path::Path;
use std::process::Command;

fn commands(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_sh = false;
    for line in markdown.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            in_sh = !in_sh && t == "```sh";
            continue;
        }
        if in_sh && t.starts_with("switchyard ") {
            out.push(t.to_string());
        }
    }
    out
}

#[test]
fn every_runbook_command_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("runbooks dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read runbook");
        for cmd in commands(&text) {
            let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
            let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
                .args(&args)
                .arg("--help")
                .output()
                .expect("run switchyard");
            assert!(
                out.status.success(),
                "{}: `{cmd}` is not a valid command: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} commands found");
}

#[test]
fn a_wrong_flag_is_caught() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["failover", "--databse", "orders", "--help"])
        .output()
        .expect("run switchyard");
    assert!(!out.status.success());
    assert_eq!(
        commands("```sh\nswitchyard status\n```\n```\nswitchyard no\n```\n"),
        ["switchyard status"]
    );
}
