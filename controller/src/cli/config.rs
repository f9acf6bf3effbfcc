//! `switchyard config check FILE`.

use std::io::Write;
use std::path::Path;

use super::ops::Output;
use crate::config;

/// `config check --output json`: one object, `ok` and every diagnostic
/// (errors and warnings, in file order); an unreadable file is an object
/// with `error`.
fn check_json(path: &Path, out: &mut dyn Write) -> std::io::Result<i32> {
    let (code, value) = match config::load(path) {
        Ok(checked) => (
            0,
            serde_json::json!({
                "ok": true,
                "diagnostics": checked.warnings.iter().map(|d| d.to_json(path)).collect::<Vec<_>>(),
            }),
        ),
        Err(config::LoadError::Invalid { diagnostics, .. }) => (
            1,
            serde_json::json!({
                "ok": false,
                "diagnostics": diagnostics.iter().map(|d| d.to_json(path)).collect::<Vec<_>>(),
            }),
        ),
        Err(err) => (
            1,
            serde_json::json!({ "ok": false, "error": err.to_string() }),
        ),
    };
    writeln!(out, "{value}")?;
    Ok(code)
}

/// Checks a config file and prints `ok` with a summary and any warnings, or
/// every error as `FILE:LINE:COLUMN: error: KEY.PATH: message` and a count.
/// Returns the exit code (0 valid, 1 invalid or unreadable). Secrets are not
/// read: the check works on a machine that does not hold them.
pub fn check(path: &Path, output: Output, out: &mut dyn Write) -> std::io::Result<i32> {
    if output == Output::Json {
        return check_json(path, out);
    }
    match config::load(path) {
        Ok(checked) => {
            writeln!(out, "ok")?;
            config::write_summary(&checked.config, out)?;
            if !checked.warnings.is_empty() {
                writeln!(out)?;
                for warning in &checked.warnings {
                    writeln!(out, "{}", warning.render(path))?;
                }
                writeln!(out, "{}", config::count_line(&checked.warnings))?;
            }
            Ok(0)
        }
        // Unreadable: "FILE: cannot read config file: why". Invalid: every
        // diagnostic line, then the count line.
        Err(err) => {
            writeln!(out, "{err}")?;
            Ok(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/switchyard.toml");

    fn run(text: &str) -> (i32, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("s.toml");
        std::fs::write(&path, text).expect("write config");
        let mut out = Vec::new();
        let code = check(&path, Output::Table, &mut out).expect("check writes to a Vec");
        let text = String::from_utf8(out).expect("utf-8 output");
        (code, text.replace(&path.display().to_string(), "FILE"))
    }

    #[test]
    fn warnings_are_printed_after_the_summary_and_still_exit_0() {
        let example = std::fs::read_to_string(EXAMPLE).expect("example readable");
        let text = example.replace("allow_data_loss = false", "allow_data_loss = true");
        assert_ne!(text, example, "the example must set allow_data_loss");
        let (code, out) = run(&text);
        assert_eq!(code, 0, "{out}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "ok");
        let warning = lines
            .iter()
            .position(|l| l.contains(": warning: databases[0].allow_data_loss: "))
            .expect("the warning is printed");
        let policy = lines
            .iter()
            .position(|l| l.starts_with("policy"))
            .expect("summary");
        assert!(warning > policy, "warnings come after the summary:\n{out}");
        assert_eq!(lines.last(), Some(&"1 warning"));
    }

    #[test]
    fn every_error_is_printed_with_a_count() {
        let example = std::fs::read_to_string(EXAMPLE).expect("example readable");
        let text = example
            .replace("fall = 3", "fall = 0")
            .replace("ramp = [25, 50, 100]", "ramp = [25, 50]");
        let (code, out) = run(&text);
        assert_eq!(code, 1, "{out}");
        let errors: Vec<&str> = out.lines().filter(|l| l.contains(": error: ")).collect();
        assert_eq!(errors.len(), 2, "{out}");
        assert!(errors[0].starts_with("FILE:"), "{out}");
        assert!(errors[0].contains("policy.fall"), "{out}");
        assert!(errors[1].contains("policy.ramp[1]"), "{out}");
        assert_eq!(out.lines().last(), Some("2 errors"));
    }

    #[test]
    fn json_output_places_every_diagnostic_for_scripts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("s.toml");
        let example = std::fs::read_to_string(EXAMPLE).expect("example readable");
        let json = |text: &str| {
            std::fs::write(&path, text).expect("write config");
            let mut out = Vec::new();
            let code = check(&path, Output::Json, &mut out).expect("check writes to a Vec");
            let v: serde_json::Value = serde_json::from_slice(&out).expect("one JSON object");
            (code, v)
        };
        let (code, v) = json(&example);
        assert_eq!((code, &v["ok"]), (0, &serde_json::json!(true)), "{v}");
        let (code, v) = json(&example.replace("fall = 3", "fall = 0"));
        assert_eq!(code, 1);
        assert_eq!(v["ok"], false);
        let d = &v["diagnostics"][0];
        let line = example
            .lines()
            .position(|l| l.starts_with("fall = 3"))
            .expect("the example sets fall")
            + 1;
        assert_eq!(d["line"], line, "{v}");
        assert_eq!(
            (&d["severity"], &d["key"]),
            (
                &serde_json::json!("error"),
                &serde_json::json!("policy.fall")
            ),
            "{v}"
        );
        assert!(
            d["message"].as_str().is_some_and(|m| m.contains("fall")),
            "{v}"
        );
        let mut out = Vec::new();
        let code = check(&dir.path().join("absent.toml"), Output::Json, &mut out).expect("writes");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("one JSON object");
        assert_eq!(code, 1);
        assert!(
            v["error"]
                .as_str()
                .is_some_and(|e| e.contains("cannot read")),
            "{v}"
        );
    }
}
