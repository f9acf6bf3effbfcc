//! Who is calling the operator API, and whether their role allows the
//! call. A bearer token (`authorization: Bearer <token>`) is recognised by
//! its SHA-256 among `[[operators]]`; the config never holds a token, only
//! its hash or the file that holds it. Wrong or missing credentials are
//! UNAUTHENTICATED, too little role PERMISSION_DENIED, each saying what is
//! needed. Nothing here logs a token.

use std::collections::HashMap;
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use tonic::Status;

use crate::config::Operator;
pub use crate::config::Role;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The operator's name (recorded in history).
    pub name: String,
    /// What it may do.
    pub role: Role,
}

/// A token file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// It cannot be read.
    #[error("operator {name}: token_file {}: {source}", path.display())]
    Read {
        /// The operator.
        name: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Two operators would share one token (and so one identity).
    #[error("operators {first} and {name} have the same token: give each its own")]
    Shared {
        /// The later operator.
        name: String,
        /// The earlier one.
        first: String,
    },
    /// It holds no token.
    #[error("operator {name}: token_file {} is empty", path.display())]
    Empty {
        /// The operator.
        name: String,
        /// The file.
        path: PathBuf,
    },
}

/// The identities of `[[operators]]`, by their token's SHA-256.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorBook {
    by_hash: HashMap<[u8; 32], Identity>,
}

fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl OperatorBook {
    /// Reads `operators` (their token files too). Validation has checked
    /// the hashes' form.
    pub fn from_config(operators: &[Operator]) -> Result<Self, TokenFileError> {
        let (book, mut unusable) = Self::usable(operators);
        match unusable.is_empty() {
            true => Ok(book),
            false => Err(unusable.remove(0)),
        }
    }

    /// The identities of `operators` whose token can be used, and why each
    /// other one cannot: on a reload, an operator whose token file is gone,
    /// empty or unreadable is left out (that is how a token is revoked by
    /// its file), while the others stay in.
    pub fn usable(operators: &[Operator]) -> (Self, Vec<TokenFileError>) {
        let mut unusable = Vec::new();
        let mut by_hash: HashMap<[u8; 32], Identity> = HashMap::new();
        for o in operators {
            let hash = match (&o.token_sha256, &o.token_file) {
                (Some(hex), _) => {
                    let mut h = [0u8; 32];
                    if hex::decode_to_slice(hex, &mut h).is_err() {
                        continue;
                    }
                    h
                }
                (None, Some(path)) => {
                    let text = match std::fs::read_to_string(path) {
                        Ok(t) => t,
                        Err(source) => {
                            unusable.push(TokenFileError::Read {
                                name: o.name.clone(),
                                path: path.clone(),
                                source,
                            });
                            continue;
                        }
                    };
                    let token = text.trim();
                    if token.is_empty() {
                        unusable.push(TokenFileError::Empty {
                            name: o.name.clone(),
                            path: path.clone(),
                        });
                        continue;
                    }
                    sha256(token)
                }
                (None, None) => continue,
            };
            let who = Identity {
                name: o.name.clone(),
                role: o.role,
            };
            // Validation refuses two operators with one token hash; a
            // token file may still repeat one: never let the later win.
            if let Some(first) = by_hash.get(&hash) {
                unusable.push(TokenFileError::Shared {
                    name: o.name.clone(),
                    first: first.name.clone(),
                });
                continue;
            }
            by_hash.insert(hash, who);
        }
        (OperatorBook { by_hash }, unusable)
    }

    /// How many identities it knows.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// True when it knows none (the API refuses every call).
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The caller presenting `authorization` (the header's value).
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Identity, Status> {
        if self.by_hash.is_empty() {
            return Err(Status::unauthenticated(
                "the operator API is closed: this cluster's config declares no [[operators]]",
            ));
        }
        let Some(value) = authorization else {
            return Err(Status::unauthenticated(
                "no credentials: send `authorization: Bearer <token>` with a token of [[operators]]",
            ));
        };
        let Some(token) = value
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            return Err(Status::unauthenticated(
                "the authorization header must be `Bearer <token>`",
            ));
        };
        // Looked up by hash: comparing digests leaks nothing of the token.
        self.by_hash.get(&sha256(token)).cloned().ok_or_else(|| {
            Status::unauthenticated(
                "token not recognised: it is not one of [[operators]] (revoked, or mistyped)",
            )
        })
    }
}

/// Whether `who` may do `what`, which needs `needed`.
pub fn authorize(who: &Identity, needed: Role, what: &str) -> Result<(), Status> {
    if who.role >= needed {
        return Ok(());
    }
    Err(Status::permission_denied(format!(
        "{} has role {}; {what} needs role {} or above",
        who.name,
        who.role.as_str(),
        needed.as_str()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operator(name: &str, role: Role, token: &str) -> Operator {
        Operator {
            name: name.into(),
            role,
            token_sha256: Some(hex::encode(sha256(token))),
            token_file: None,
        }
    }

    #[test]
    fn tokens_map_to_identities_and_roles_gate_calls() {
        let book = OperatorBook::from_config(&[
            operator("vera", Role::Viewer, "t-viewer"),
            operator("otto", Role::Operator, "t-operator"),
            operator("ada", Role::Admin, "t-admin"),
        ])
        .expect("book");
        let who = |h: Option<&str>| book.authenticate(h);
        assert_eq!(
            who(Some("Bearer t-viewer")).ok().map(|i| i.name),
            Some("vera".to_string())
        );
        for (header, says) in [
            (None, "no credentials"),
            (Some("Basic abc"), "must be `Bearer <token>`"),
            (Some("Bearer wrong"), "not recognised"),
        ] {
            let e = who(header).expect_err("refused");
            assert_eq!(e.code(), tonic::Code::Unauthenticated);
            assert!(e.message().contains(says), "{}", e.message());
        }
        let vera = who(Some("Bearer t-viewer")).expect("vera");
        let otto = who(Some("Bearer t-operator")).expect("otto");
        let ada = who(Some("Bearer t-admin")).expect("ada");
        assert!(authorize(&vera, Role::Viewer, "status").is_ok());
        let e = authorize(&vera, Role::Operator, "failover").expect_err("viewer");
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(
            e.message()
                .contains("vera has role viewer; failover needs role operator"),
            "{}",
            e.message()
        );
        assert!(authorize(&otto, Role::Operator, "failover").is_ok());
        assert!(authorize(&otto, Role::Admin, "failover --force").is_err());
        assert!(authorize(&ada, Role::Admin, "failover --force").is_ok());
    }

    #[test]
    fn no_operators_closes_the_api_and_a_token_file_is_read() {
        let e = OperatorBook::default()
            .authenticate(Some("Bearer x"))
            .expect_err("closed");
        assert!(e.message().contains("declares no [[operators]]"));
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("token");
        std::fs::write(&file, "secret-token\n").expect("write");
        let o = Operator {
            name: "f".into(),
            role: Role::Operator,
            token_sha256: None,
            token_file: Some(file.clone()),
        };
        let book = OperatorBook::from_config(std::slice::from_ref(&o)).expect("book");
        assert!(book.authenticate(Some("Bearer secret-token")).is_ok());
        std::fs::write(&file, "  \n").expect("write");
        let e = OperatorBook::from_config(&[o]).expect_err("empty");
        assert!(e.to_string().contains("is empty"), "{e}");
    }
}
