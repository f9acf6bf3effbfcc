//! How to reach etcd: endpoints, TLS material and the login, read and
//! checked once at start-up from the config.
//!
//! A TLS file that is missing or holds no usable PEM, or a password that
//! cannot be read, is an error that names the config key and the file,
//! before anything connects: a controller configured for TLS must never
//! fall back to plaintext, and one that cannot log in must say why at once
//! rather than fail every call later.

use std::fmt;

use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};

use crate::config::{Config, Password};
use crate::tls::{TlsFileError, read_certs, read_key};

/// What was wrong with the etcd access settings.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// A TLS file could not be read or holds nothing usable.
    #[error(transparent)]
    TlsFile(#[from] TlsFileError),
    /// The credentials for etcd are not defined or cannot be read.
    #[error("etcd.credentials: {0}")]
    Credentials(String),
}

/// PEM material for TLS to etcd, already checked to parse.
#[derive(Clone)]
struct TlsMaterial {
    ca: Vec<u8>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    /// When the files read stop being valid, for the expiry metric.
    expiry: Vec<crate::tls::Expiry>,
}

/// Everything needed to connect to etcd, resolved from the config.
#[derive(Clone, Default)]
pub struct EtcdAccess {
    tls: Option<TlsMaterial>,
    user: Option<(String, Password)>,
}

impl fmt::Debug for EtcdAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdAccess")
            .field("tls", &self.tls.as_ref().map(|t| t.identity.is_some()))
            .field("user", &self.user.as_ref().map(|(u, _)| u))
            .finish()
    }
}

impl EtcdAccess {
    /// Puts the `notAfter` of the etcd TLS files on `/metrics` (see
    /// [`crate::tls::record_expiry`]).
    pub fn record_expiry(&self) {
        if let Some(t) = &self.tls {
            crate::tls::record_expiry(&t.expiry);
        }
    }

    /// Plain connections, no login (what tests of a bare etcd use).
    pub fn plain() -> Self {
        Self::default()
    }

    /// Reads and checks the TLS files and the password `cfg` names.
    pub fn from_config(cfg: &Config) -> Result<Self, AccessError> {
        let tls = match &cfg.etcd.tls {
            None => None,
            Some(t) => {
                let ca = read_certs("etcd.tls.ca_file", &t.ca_file)?;
                let identity = match (&t.cert_file, &t.key_file) {
                    (Some(cert), Some(key)) => Some((
                        read_certs("etcd.tls.cert_file", cert)?,
                        read_key("etcd.tls.key_file", key)?,
                    )),
                    _ => None,
                };
                let mut expiry = Vec::new();
                let files = [
                    (
                        "etcd_ca",
                        Some(&t.ca_file),
                        crate::tls::earliest_not_after(&ca),
                    ),
                    (
                        "etcd_leaf",
                        t.cert_file.as_ref(),
                        identity
                            .as_ref()
                            .and_then(|(c, _)| crate::tls::leaf_not_after(c)),
                    ),
                ];
                for (kind, file, not_after) in files {
                    if let (Some(file), Some(not_after)) = (file, not_after) {
                        expiry.push(crate::tls::Expiry {
                            kind,
                            file: file.clone(),
                            not_after,
                        });
                    }
                }
                Some(TlsMaterial {
                    ca,
                    identity,
                    expiry,
                })
            }
        };
        let user = match &cfg.etcd.credentials {
            None => None,
            Some(name) => {
                let creds = cfg.credentials.get(name).ok_or_else(|| {
                    AccessError::Credentials(format!("credentials {name:?} are not defined"))
                })?;
                let password = creds
                    .password
                    .resolve()
                    .map_err(|e| AccessError::Credentials(format!("credentials {name:?}: {e}")))?;
                Some((creds.user.clone(), password))
            }
        };
        Ok(Self { tls, user })
    }

    /// True when connecting logs in (etcd-client does it at once, so a
    /// connection with a login needs etcd to answer).
    pub fn logs_in(&self) -> bool {
        self.user.is_some()
    }

    /// `base` with the TLS and login settings applied.
    pub fn apply(&self, mut base: ConnectOptions) -> ConnectOptions {
        if let Some(t) = &self.tls {
            let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(&t.ca));
            if let Some((cert, key)) = &t.identity {
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            base = base.with_tls(tls);
        }
        if let Some((user, password)) = &self.user {
            // Tokens expire (simple tokens also die with an etcd member
            // restart): log in again on expiry rather than fail for good.
            base = base
                .with_user(user.clone(), password.expose().to_string())
                .with_auto_token_refresh(true);
        }
        base
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::{Credentials, EtcdTls, Secret};

    /// The example config, with etcd's TLS files and login replaced.
    fn config(ca: &str, credentials: Option<Secret>) -> Config {
        let mut cfg: Config =
            toml::from_str(include_str!("../../../examples/switchyard.toml")).expect("parses");
        cfg.etcd.tls = Some(EtcdTls {
            ca_file: PathBuf::from(ca),
            cert_file: None,
            key_file: None,
        });
        if let Some(password) = credentials {
            cfg.credentials.insert(
                "etcd".into(),
                Credentials {
                    user: "switchyard".into(),
                    password,
                },
            );
            cfg.etcd.credentials = Some("etcd".into());
        }
        cfg
    }

    #[test]
    fn a_missing_tls_file_is_named() {
        let cfg = config("/nonexistent/ca.pem", None);
        let text = EtcdAccess::from_config(&cfg)
            .expect_err("must fail")
            .to_string();
        assert!(
            text.starts_with("etcd.tls.ca_file: /nonexistent/ca.pem: "),
            "{text}"
        );
    }

    #[test]
    fn a_file_without_pem_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate\n").expect("write");
        let cfg = config(&ca.display().to_string(), None);
        let text = EtcdAccess::from_config(&cfg)
            .expect_err("must fail")
            .to_string();
        assert!(text.contains("ca.pem: holds no PEM certificate"), "{text}");
    }

    #[test]
    fn an_unreadable_password_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["ca".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        std::fs::write(&ca, cert.pem()).expect("write");
        let cfg = config(
            &ca.display().to_string(),
            Some(Secret::File("/nonexistent/pw".into())),
        );
        let text = EtcdAccess::from_config(&cfg)
            .expect_err("must fail")
            .to_string();
        assert!(
            text.starts_with(
                "etcd.credentials: credentials \"etcd\": cannot read secret file /nonexistent/pw"
            ),
            "{text}"
        );
    }
}
