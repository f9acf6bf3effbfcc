//! Secret references: `password = { env = "VAR" }` or `{ file = "/path" }`.
//!
//! The config names where a secret lives, never the secret itself, so a
//! config file can be committed and shown in `config check` output. Checking
//! a config only validates the reference's shape; [`Secret::resolve`] reads
//! it, and only the running controller calls that.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// Where a secret is kept: exactly one of an environment variable or a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    /// Read from this environment variable of the controller process.
    Env(String),
    /// Read from this file (absolute path); one trailing newline is dropped.
    File(PathBuf),
}

/// A resolved secret value. Its `Debug` is redacted so it cannot leak into
/// logs by accident; call [`Password::expose`] where the value is needed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The secret text, for handing to a database driver.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Why a secret reference could not be resolved at run time.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is unset, empty or not UTF-8.
    #[error("environment variable {0} is not set (or is empty or not UTF-8)")]
    Env(String),
    /// The file could not be read.
    #[error("cannot read secret file {}: {source}", path.display())]
    File {
        /// The file named by the reference.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file exists but holds nothing.
    #[error("secret file {} is empty", .0.display())]
    EmptyFile(PathBuf),
}

impl Secret {
    /// Reads the secret now. Only the running controller should call this:
    /// `config check` must work on a machine that does not hold the secrets.
    pub fn resolve(&self) -> Result<Password, SecretError> {
        match self {
            Secret::Env(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Password(v)),
                _ => Err(SecretError::Env(var.clone())),
            },
            Secret::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| SecretError::File {
                    path: path.clone(),
                    source,
                })?;
                let value = text
                    .strip_suffix('\n')
                    .map(|t| t.strip_suffix('\r').unwrap_or(t))
                    .unwrap_or(&text);
                if value.is_empty() {
                    return Err(SecretError::EmptyFile(path.clone()));
                }
                Ok(Password(value.to_owned()))
            }
        }
    }

    /// Checks the reference's shape without reading it: a plausible variable
    /// name, or an absolute path. Returns a message saying what would be valid.
    pub fn check_shape(&self) -> Result<(), String> {
        match self {
            Secret::Env(var) => {
                let mut chars = var.chars();
                let ok = chars
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
                if ok {
                    Ok(())
                } else {
                    Err(format!(
                        "{var:?} is not an environment variable name: use letters, digits and '_', not starting with a digit"
                    ))
                }
            }
            Secret::File(path) => {
                if path.is_absolute() {
                    Ok(())
                } else {
                    Err(format!(
                        "secret file {:?} must be an absolute path (a relative one would depend on the controller's working directory)",
                        path.display().to_string()
                    ))
                }
            }
        }
    }
}

/// The message for an inline secret; it never repeats the value.
const INLINE: &str = "inline secrets are not accepted (the value is not shown here); \
write password = { env = \"VAR\" } or password = { file = \"/path\" }";

struct SecretVisitor;

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a secret reference: { env = \"VAR\" } or { file = \"/path\" }")
    }

    // Every scalar gets the same message, which deliberately does not echo
    // the value: it is probably the password.
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Secret, E> {
        Err(E::custom(INLINE))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Secret, E> {
        Err(E::custom(INLINE))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Secret, E> {
        Err(E::custom(INLINE))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Secret, E> {
        Err(E::custom(INLINE))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Secret, E> {
        Err(E::custom(INLINE))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Secret, A::Error> {
        const FIELDS: &[&str] = &["env", "file"];
        let mut found: Option<Secret> = None;
        while let Some(key) = map.next_key::<String>()? {
            let secret = match key.as_str() {
                "env" => Secret::Env(map.next_value()?),
                "file" => Secret::File(map.next_value()?),
                other => return Err(de::Error::unknown_field(other, FIELDS)),
            };
            if found.is_some() {
                return Err(de::Error::custom(
                    "give exactly one of `env` or `file`, not both",
                ));
            }
            found = Some(secret);
        }
        found.ok_or_else(|| {
            de::Error::custom(
                "empty secret reference; write { env = \"VAR\" } or { file = \"/path\" }",
            )
        })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecretVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    struct Holder {
        password: Secret,
    }

    fn parse(text: &str) -> Result<Secret, String> {
        toml::from_str::<Holder>(text)
            .map(|h| h.password)
            .map_err(|e| e.message().to_owned())
    }

    #[test]
    fn accepts_env_and_file_references() {
        assert_eq!(
            parse(r#"password = { env = "PW" }"#),
            Ok(Secret::Env("PW".into()))
        );
        assert_eq!(
            parse(r#"password = { file = "/run/pw" }"#),
            Ok(Secret::File("/run/pw".into()))
        );
    }

    #[test]
    fn rejects_inline_secrets_without_echoing_them() {
        let err = parse(r#"password = "hunter2""#).unwrap_err();
        assert!(err.contains("inline secrets are not accepted"), "{err}");
        assert!(!err.contains("hunter2"), "the secret leaked: {err}");
    }

    #[test]
    fn rejects_both_and_neither_and_unknown_keys() {
        let both = parse(r#"password = { env = "A", file = "/b" }"#).unwrap_err();
        assert!(both.contains("exactly one"), "{both}");
        let none = parse(r#"password = {}"#).unwrap_err();
        assert!(none.contains("empty secret reference"), "{none}");
        let unknown = parse(r#"password = { vault = "x" }"#).unwrap_err();
        assert!(unknown.contains("unknown field `vault`"), "{unknown}");
    }

    #[test]
    fn shape_checks_do_not_read_anything() {
        assert!(
            Secret::Env("NO_SUCH_VAR_FOR_SURE_123".into())
                .check_shape()
                .is_ok()
        );
        assert!(Secret::Env("1BAD".into()).check_shape().is_err());
        assert!(Secret::File("/does/not/exist".into()).check_shape().is_ok());
        assert!(Secret::File("relative/pw".into()).check_shape().is_err());
    }

    #[test]
    fn resolves_files_and_drops_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let pw = Secret::File(path).resolve().unwrap();
        assert_eq!(pw.expose(), "s3cret");
        assert_eq!(format!("{pw:?}"), "Password(<redacted>)");
        let missing = Secret::File(dir.path().join("nope")).resolve().unwrap_err();
        assert!(matches!(missing, SecretError::File { .. }));
    }

    #[test]
    fn unset_env_is_an_error() {
        let err = Secret::Env("SWITCHYARD_TEST_SURELY_UNSET_VAR".into())
            .resolve()
            .unwrap_err();
        assert!(err.to_string().contains("SWITCHYARD_TEST_SURELY_UNSET_VAR"));
    }
}
