//! The TOML config schema (v1): types, defaults, validation, and errors
//! placed at `FILE:LINE:COLUMN` with the key path.
//!
//! Entry points: [`load`] (read, parse, validate a file) and [`parse`] (the
//! same on a string). Both return the [`Config`] only when it is valid, with
//! any warnings beside it. Loading is three steps, each reporting in the
//! same [`Diagnostic`] form: toml syntax, serde shape (unknown keys, types,
//! missing keys), then [`validate`]'s cross-field rules.

pub mod duration;

mod diagnostic;
mod locate;
mod path;
mod schema;
mod secret;
mod summary;
mod validate;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use toml::de::DeTable;

pub use diagnostic::{Diagnostic, Severity, count_line};
pub use locate::Location;
pub use path::{KeyPath, Segment};
pub use schema::{
    AnswerMode, Check, Config, Controller, Credentials, Database, DatabaseCheck, DatabaseKind, Dns,
    DnsCheck, Embedded, Endpoint, Etcd, EtcdTls, FileDns, GrpcCheck, GrpcTls, HttpCheck, Journal,
    Member, Mode, Operator, Policy, Promotion, RecordType, Region, Role, Route53, STALE_INTERVALS,
    Service, TcpCheck, Witness, vantage_uri,
};
pub use secret::{Password, Secret, SecretError};
pub use summary::write_summary;
pub use validate::{Issue, validate};

/// A config that passed every check, with the warnings it raised.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The validated config.
    pub config: Config,
    /// Problems that do not stop it working; worth showing to a person.
    pub warnings: Vec<Diagnostic>,
}

/// Why a config file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{}: cannot read config file: {source}", path.display())]
    Read {
        /// The file asked for.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file was read but is not a valid config; every problem is listed.
    #[error("{}", render_all(path, diagnostics))]
    Invalid {
        /// The file asked for, as given (used as the FILE of each line).
        path: PathBuf,
        /// Every error, and any warnings, in file order.
        diagnostics: Vec<Diagnostic>,
    },
}

fn render_all(path: &Path, diagnostics: &[Diagnostic]) -> String {
    let mut lines: Vec<String> = diagnostics.iter().map(|d| d.render(path)).collect();
    lines.push(count_line(diagnostics));
    lines.join("\n")
}

/// Reads, parses and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Checked, LoadError> {
    let src = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&src).map_err(|diagnostics| LoadError::Invalid {
        path: path.to_owned(),
        diagnostics,
    })
}

/// Parses and validates config text. On failure returns every problem found
/// (errors first in file order, then warnings): all syntax errors, or the
/// first shape error serde hits, or every validation error.
pub fn parse(src: &str) -> Result<Checked, Vec<Diagnostic>> {
    let (doc, syntax_errors) = DeTable::parse_recoverable(src);
    let locator = locate::Locator::new(src, doc);
    if !syntax_errors.is_empty() {
        let mut diagnostics: Vec<Diagnostic> = syntax_errors
            .iter()
            .map(|e| Diagnostic::from_syntax_error(e, &locator))
            .collect();
        diagnostics.sort_by_key(|d| d.location);
        // After one error on a line the parser's recovery tends to add
        // echoes of it; the first per line is the one that helps.
        diagnostics.dedup_by_key(|d| d.location.line);
        return Err(diagnostics);
    }
    let config: Config =
        toml::from_str(src).map_err(|e| vec![Diagnostic::from_serde_error(&e, &locator)])?;
    let mut diagnostics: Vec<Diagnostic> = validate(&config)
        .into_iter()
        .map(|issue| Diagnostic::from_issue(issue, &locator))
        .collect();
    diagnostics.sort_by_key(|d| (d.severity, d.location));
    if diagnostics.iter().any(|d| d.severity == Severity::Error) {
        return Err(diagnostics);
    }
    Ok(Checked {
        config,
        warnings: diagnostics,
    })
}
