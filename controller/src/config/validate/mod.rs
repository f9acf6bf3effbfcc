//! Cross-field rules of the schema: pure, from a [`Config`] to every problem.
//!
//! `validate` never stops at the first problem, never touches the file
//! system or the environment, and knows nothing about the source text: each
//! issue names a [`KeyPath`] and the locator places it in the file.

mod databases;
mod operators;
mod policy;
mod services;
mod syntax;
mod topology;

use super::diagnostic::Severity;
use super::path::KeyPath;
use super::schema::Config;

/// One problem found by [`validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Error (rejects the config) or warning.
    pub severity: Severity,
    /// The offending key or value.
    pub path: KeyPath,
    /// What is wrong and, where possible, what would be valid.
    pub message: String,
    /// How to fix it, when that does not fit in the message.
    pub hint: Option<String>,
}

impl Issue {
    fn new(severity: Severity, path: KeyPath, message: impl Into<String>) -> Self {
        Self {
            severity,
            path,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds the hint line to an issue just reported.
    fn set_hint(&mut self, hint: impl Into<String>) {
        self.hint = Some(hint.into());
    }
}

/// Checks every cross-field rule and returns all problems, errors and
/// warnings, in document order of sections. The config is valid when none
/// of them is an error.
pub fn validate(config: &Config) -> Vec<Issue> {
    let mut v = Validator {
        config,
        issues: Vec::new(),
    };
    topology::check(&mut v);
    services::check(&mut v);
    databases::check(&mut v);
    policy::check(&mut v);
    operators::check(&mut v);
    v.issues
}

/// Collects issues while the section checkers walk the config.
struct Validator<'a> {
    config: &'a Config,
    issues: Vec<Issue>,
}

impl Validator<'_> {
    fn error(&mut self, path: KeyPath, message: impl Into<String>) -> &mut Issue {
        self.issues.push(Issue::new(Severity::Error, path, message));
        self.last()
    }

    fn warning(&mut self, path: KeyPath, message: impl Into<String>) -> &mut Issue {
        self.issues
            .push(Issue::new(Severity::Warning, path, message));
        self.last()
    }

    fn last(&mut self) -> &mut Issue {
        let last = self.issues.len() - 1;
        &mut self.issues[last]
    }

    /// Reports `err` (a syntax helper's message) at `path`, if any.
    fn check(&mut self, path: KeyPath, result: Result<(), String>) {
        if let Err(message) = result {
            self.error(path, message);
        }
    }

    /// A reference to a region must name a declared one (not a witness:
    /// witnesses host nothing).
    fn region_ref(&mut self, path: KeyPath, name: &str) {
        if self.config.region(name).is_some() {
            return;
        }
        if self.config.witness(name).is_some() {
            let declared = names(self.config.regions.iter().map(|r| r.name.as_str()));
            self.error(
                path,
                format!(
                    "{name:?} is a witness: it votes but hosts no endpoints or database members; \
                     declared regions: {declared}"
                ),
            );
            return;
        }
        let mut declared: Vec<&str> = Vec::new();
        for region in &self.config.regions {
            if !declared.contains(&region.name.as_str()) {
                declared.push(&region.name);
            }
        }
        let declared = names(declared);
        let message = if declared.is_empty() {
            format!(
                "region {name:?} is not declared; no regions are declared (add [[regions]] entries)"
            )
        } else {
            format!("region {name:?} is not declared; declared regions: {declared}")
        };
        self.error(path, message);
    }

    /// A controller may run in a region or at a witness (a third site often
    /// holds an etcd member anyway).
    fn vantage_ref(&mut self, path: KeyPath, name: &str) {
        if self.config.witness(name).is_none() {
            self.region_ref(path, name);
        }
    }

    /// Reports the second and later uses of a value that must be unique.
    /// `items` yields (path, comparison key, value as shown); `hint`, if
    /// any, is attached to every report.
    fn unique(
        &mut self,
        what: &str,
        hint: Option<&str>,
        items: impl IntoIterator<Item = (KeyPath, String, String)>,
    ) {
        let mut seen: Vec<(String, KeyPath)> = Vec::new();
        for (path, key, shown) in items {
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
                let message = format!("duplicate {what} {shown}: already used by {first}");
                let issue = self.error(path, message);
                if let Some(hint) = hint {
                    issue.set_hint(hint);
                }
            } else {
                seen.push((key, path));
            }
        }
    }
}

/// `a, b, c`: a list of names for messages.
fn names<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items.into_iter().collect::<Vec<_>>().join(", ")
}
