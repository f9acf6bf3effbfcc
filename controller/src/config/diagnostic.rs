//! Problems found in a config, placed in the file and printed as
//! `FILE:LINE:COLUMN: error: KEY.PATH: message`, the form editors and
//! terminals turn into a jump to the spot.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use super::locate::{Location, Locator};
use super::path::{KeyPath, Segment};
use super::validate::Issue;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The config is rejected.
    Error,
    /// The config works, but probably not as its author thinks.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem with its place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Where in the file (1-based).
    pub location: Location,
    /// The key concerned; the root path when toml could not tell.
    pub path: KeyPath,
    /// What is wrong and, where possible, what would be valid.
    pub message: String,
    /// An optional second line: how to fix it.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// Places a validation issue in the document.
    pub(crate) fn from_issue(issue: Issue, locator: &Locator<'_>) -> Self {
        let span = locator.span_of(&issue.path);
        Self {
            severity: issue.severity,
            location: locator.location(&span),
            path: issue.path,
            message: issue.message,
            hint: issue.hint,
        }
    }

    /// A syntax error; `partial` is the tree toml recovered around it, in
    /// which the key being written, if any, is found.
    pub(crate) fn from_syntax_error(err: &toml::de::Error, partial: &Locator<'_>) -> Self {
        let span = err.span().unwrap_or(0..0);
        Self {
            severity: Severity::Error,
            location: partial.location(&span),
            path: partial.path_at(&span),
            message: err.message().to_owned(),
            hint: None,
        }
    }

    /// A serde error (unknown key, wrong type, missing key, bad value): toml
    /// gives a span but not the key path, so the path is found from the span
    /// and then narrowed (see [`narrow`]).
    pub(crate) fn from_serde_error(err: &toml::de::Error, locator: &Locator<'_>) -> Self {
        let message = err.message().to_owned();
        let span: Range<usize> = err.span().unwrap_or(0..0);
        let (path, span) = narrow(locator, locator.path_at(&span), span, &message);
        Self {
            severity: Severity::Error,
            location: locator.location(&span),
            path,
            message,
            hint: None,
        }
    }

    /// The diagnostic as one JSON object for scripts (`config check
    /// --output json`): file, line, column, severity, key, message, hint.
    pub fn to_json(&self, file: &Path) -> serde_json::Value {
        serde_json::json!({
            "file": file.display().to_string(),
            "line": self.location.line,
            "column": self.location.column,
            "severity": self.severity.to_string(),
            "key": (!self.path.is_root()).then(|| self.path.to_string()),
            "message": self.message,
            "hint": self.hint,
        })
    }

    /// The diagnostic as printed: one line, plus an indented hint line when
    /// there is a hint.
    pub fn render(&self, file: &Path) -> String {
        let Location { line, column } = self.location;
        let mut text = format!("{}:{line}:{column}: {}: ", file.display(), self.severity);
        if !self.path.is_root() {
            text.push_str(&format!("{}: ", self.path));
        }
        text.push_str(&self.message);
        if let Some(hint) = &self.hint {
            text.push_str("\n  hint: ");
            text.push_str(hint);
        }
        text
    }
}

/// Errors raised inside a tagged enum (a check, the dns backend) are
/// produced after toml has handed over the table, so they carry the span of
/// the enclosing value: the table, or for an array of tables (`checks`) the
/// whole array, which starts at its first element's header. The message
/// still names the key (`unknown field`, `missing field`) or quotes the bad
/// value, so the first table that matches it, in document order (serde's
/// order too), is where the error is; point at that key.
fn narrow(
    locator: &Locator<'_>,
    path: KeyPath,
    span: Range<usize>,
    message: &str,
) -> (KeyPath, Range<usize>) {
    let mut tables = Vec::new();
    if let Some((Segment::Index(0), parent)) = path.split_last()
        && locator.span_of(&parent) == span
    {
        tables = locator.array_tables(&parent);
    }
    if tables.is_empty() && locator.is_table(&path) {
        tables.push(path.clone());
    }
    for table in tables {
        if let Some(key) = quoted_after(message, "unknown field `") {
            if let Some(key_span) = locator.key_span(&table, key) {
                return (table.key(key), key_span);
            }
        } else if let Some(key) = quoted_after(message, "missing field `") {
            if locator.key_span(&table, key).is_none() {
                let span = locator.span_of(&table);
                return (table.key(key), span);
            }
        } else if let Some((key, value_span)) = locator.quoted_value(&table, message) {
            return (table.key(key), value_span);
        }
    }
    (path, span)
}

/// The backquoted name after `prefix` at the start of `message`.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next()
}

/// "1 error", "2 errors, 1 warning": the closing line of a check.
pub fn count_line(diagnostics: &[Diagnostic]) -> String {
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diagnostics.len() - errors;
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    match (errors, warnings) {
        (e, 0) => plural(e, "error"),
        (0, w) => plural(w, "warning"),
        (e, w) => format!("{}, {}", plural(e, "error"), plural(w, "warning")),
    }
}
