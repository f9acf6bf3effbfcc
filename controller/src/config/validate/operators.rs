//! `[[operators]]`: unique names, and exactly one well-formed way to
//! recognise each one's token.

use super::Validator;

/// SHA-256 of the empty string.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
use crate::config::path::KeyPath;

pub(super) fn check(v: &mut Validator<'_>) {
    let operators = &v.config.operators;
    v.unique(
        "operator name",
        None,
        operators.iter().enumerate().map(|(i, o)| {
            (
                KeyPath::root().key("operators").index(i).key("name"),
                o.name.clone(),
                o.name.clone(),
            )
        }),
    );
    v.unique(
        "operator token",
        Some("each operator needs a token of its own: a shared one is one identity in history"),
        operators.iter().enumerate().filter_map(|(i, o)| {
            let h = o.token_sha256.as_ref()?;
            Some((
                KeyPath::root()
                    .key("operators")
                    .index(i)
                    .key("token_sha256"),
                h.to_ascii_lowercase(),
                format!("of {}", o.name),
            ))
        }),
    );
    if !operators.is_empty() && v.config.tls.is_none() {
        v.warning(
            KeyPath::root().key("operators"),
            "[[operators]] without [tls]: bearer tokens cross the network in plaintext; set [tls] before using the operator API beyond this host",
        );
    }
    for (i, o) in operators.iter().enumerate() {
        let at = KeyPath::root().key("operators").index(i);
        if o.name.trim().is_empty() {
            v.error(at.key("name"), "name must not be empty: it is recorded in history with every change this operator makes");
        }
        match (&o.token_sha256, &o.token_file) {
            (Some(_), Some(_)) => {
                v.error(at.clone(), "give token_sha256 or token_file, not both");
            }
            (None, None) => {
                v.error(
                    at.clone(),
                    "no token: give token_sha256 (the token's SHA-256, 64 hex digits) or token_file (a file holding the token)",
                );
            }
            (Some(h), None) if h.eq_ignore_ascii_case(EMPTY_SHA256) => {
                v.error(
                    at.key("token_sha256"),
                    "this is the SHA-256 of an empty token: anyone could present it",
                );
            }
            (Some(h), None) if h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()) => {
                v.error(
                    at.key("token_sha256"),
                    format!(
                        "token_sha256 must be 64 hex digits (printf %s TOKEN | sha256sum), not {} characters",
                        h.len()
                    ),
                );
            }
            _ => {}
        }
    }
}
