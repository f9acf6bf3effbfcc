//! TLS material read from the config's files, checked once at start-up,
//! and who a peer's certificate says it is.
//!
//! A file that is missing or holds no usable PEM is an error naming the
//! config key and the file, before anything listens or connects: a process
//! configured for TLS never falls back to plaintext.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::config::{Config, GrpcTls, vantage_uri};

/// Selects rustls's process-wide crypto provider (aws-lc-rs), once, before
/// any TLS is set up: with more than one provider compiled in (the
/// dependency graph has both), rustls cannot pick one by itself.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A TLS file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {}: {reason}", path.display())]
pub struct TlsFileError {
    /// The config key naming the file (`tls.ca_file`, `etcd.tls.key_file`…).
    pub key: &'static str,
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|e| TlsFileError {
        key,
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Reads `path` (named by config key `key`) and checks it holds at least
/// one PEM certificate.
pub fn read_certs(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    let pem = read(key, path)?;
    let bad = |reason: String| TlsFileError {
        key,
        path: path.to_path_buf(),
        reason,
    };
    let certs: Vec<CertificateDer<'_>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    Ok(pem)
}

/// Reads `path` (named by config key `key`) and checks it holds a PEM
/// private key.
pub fn read_key(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    let pem = read(key, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsFileError {
        key,
        path: path.to_path_buf(),
        reason: format!("holds no PEM private key: {e}"),
    })?;
    Ok(pem)
}

/// The gRPC TLS material of `[tls]`, read and checked.
#[derive(Clone)]
pub struct GrpcTlsMaterial {
    ca: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
    /// The server side, built once per reading of the files: every
    /// handshake takes the one current when it starts.
    server: Arc<rustls::ServerConfig>,
    /// When what was read stops being valid, for the expiry metric.
    expiry: Vec<Expiry>,
}

/// When one file's certificate stops being valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// `leaf` (this process's own certificate, `tls.cert_file`), `ca`
    /// (`tls.ca_file`: the earliest of its certificates), or the same of
    /// `[etcd.tls]`: `etcd_leaf`, `etcd_ca`.
    pub kind: &'static str,
    /// The file.
    pub file: PathBuf,
    /// Its `notAfter`, in Unix seconds.
    pub not_after: i64,
}

/// The `notAfter` (Unix seconds) of each PEM certificate in `pem` that
/// parses, in file order.
fn not_afters(pem: &[u8]) -> impl Iterator<Item = i64> + '_ {
    CertificateDer::pem_slice_iter(pem)
        .flatten()
        .filter_map(|der| {
            x509_parser::parse_x509_certificate(der.as_ref())
                .ok()
                .map(|(_, c)| c.validity().not_after.timestamp())
        })
}

/// The `notAfter` (Unix seconds) of the first PEM certificate in `pem`:
/// the leaf of a chain, the certificate a process presents.
pub fn leaf_not_after(pem: &[u8]) -> Option<i64> {
    not_afters(pem).next()
}

/// The earliest `notAfter` (Unix seconds) of the PEM certificates in
/// `pem` (a CA bundle is as good as its first to expire), or none when
/// none parses.
pub fn earliest_not_after(pem: &[u8]) -> Option<i64> {
    not_afters(pem).min()
}

/// Sets `switchyard_tls_not_after_timestamp_seconds{kind, file}` for each
/// of `expiry`.
pub fn record_expiry(expiry: &[Expiry]) {
    for e in expiry {
        // Unix seconds fit an f64 exactly.
        #[allow(clippy::cast_precision_loss)]
        let secs = e.not_after as f64;
        metrics::gauge!(
            "switchyard_tls_not_after_timestamp_seconds",
            "kind" => e.kind,
            "file" => e.file.display().to_string()
        )
        .set(secs);
    }
}

impl std::fmt::Debug for GrpcTlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GrpcTlsMaterial(<redacted>)")
    }
}

/// How long a client may take over its TLS handshake.
pub const HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(5);

impl GrpcTlsMaterial {
    /// Reads the three files `[tls]` names and checks what a TLS library
    /// would otherwise find only at the first connection: the CA's
    /// certificates parse, and the key belongs to the certificate.
    pub fn load(cfg: &GrpcTls) -> Result<Self, TlsFileError> {
        install_crypto_provider();
        let ca = read_certs("tls.ca_file", &cfg.ca_file)?;
        let cert = read_certs("tls.cert_file", &cfg.cert_file)?;
        let key = read_key("tls.key_file", &cfg.key_file)?;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&ca).flatten() {
            roots.add(c).map_err(|e| TlsFileError {
                key: "tls.ca_file",
                path: cfg.ca_file.clone(),
                reason: format!("holds a certificate that cannot be a CA: {e}"),
            })?;
        }
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&cert).flatten().collect();
        let private = PrivateKeyDer::from_pem_slice(&key).map_err(|e| TlsFileError {
            key: "tls.key_file",
            path: cfg.key_file.clone(),
            reason: e.to_string(),
        })?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| TlsFileError {
            key: "tls.ca_file",
            path: cfg.ca_file.clone(),
            reason: format!("cannot check client certificates with it: {e}"),
        })?;
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| {
                b.with_client_cert_verifier(verifier)
                    .with_single_cert(certs, private)
            })
            .map_err(|e| TlsFileError {
                key: "tls.key_file",
                path: cfg.key_file.clone(),
                reason: format!("cannot serve with it and tls.cert_file: {e}"),
            })?;
        // gRPC is HTTP/2 only.
        server.alpn_protocols = vec![b"h2".to_vec()];
        let mut expiry = Vec::new();
        for (kind, file, not_after) in [
            ("leaf", &cfg.cert_file, leaf_not_after(&cert)),
            ("ca", &cfg.ca_file, earliest_not_after(&ca)),
        ] {
            let not_after = not_after.ok_or_else(|| TlsFileError {
                key: if kind == "ca" {
                    "tls.ca_file"
                } else {
                    "tls.cert_file"
                },
                path: file.clone(),
                reason: "holds no certificate that parses as X.509".into(),
            })?;
            expiry.push(Expiry {
                kind,
                file: file.clone(),
                not_after,
            });
        }
        Ok(Self {
            ca,
            cert,
            key,
            server: Arc::new(server),
            expiry,
        })
    }

    /// A controller's server side: its certificate, and client
    /// certificates required, signed by the CA (the caller times the
    /// handshake out after [`HANDSHAKE`]).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server.clone()
    }

    /// True when `other` was read from the same bytes (a file touched but
    /// not changed is no reload).
    pub fn same_files(&self, other: &Self) -> bool {
        self.ca == other.ca && self.cert == other.cert && self.key == other.key
    }

    /// When the certificates read stop being valid.
    pub fn expiry(&self) -> &[Expiry] {
        &self.expiry
    }

    /// Puts each certificate's `notAfter` on `/metrics`, as
    /// `switchyard_tls_not_after_timestamp_seconds{kind, file}`, so an
    /// alert warns weeks before a handshake starts failing. The values of
    /// the files in use: after a rotation the gauge moves once the process
    /// has reloaded them, which is how the runbook checks it did.
    pub fn record_expiry(&self) {
        record_expiry(&self.expiry);
    }

    /// A client side (probe, peer ping): the controllers' certificates
    /// checked against the CA, this host's certificate presented.
    pub fn client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca))
            .identity(Identity::from_pem(&self.cert, &self.key))
    }
}

/// `url` as a TLS client may use it: `https://` only, so that a
/// configured TLS is never silently dropped (tonic talks plaintext to an
/// `http://` URL whatever TLS config it holds).
pub fn require_https(url: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        Ok(())
    } else {
        Err(format!(
            "{url}: [tls] is set, so controllers are reached with https:// only"
        ))
    }
}

/// The client side of `cfg`'s `[tls]`, if configured.
pub fn client_config(cfg: &Config) -> Result<Option<ClientTlsConfig>, TlsFileError> {
    cfg.tls
        .as_ref()
        .map(|t| GrpcTlsMaterial::load(t).map(|m| m.client()))
        .transpose()
}

/// The vantages of `cluster` that a client certificate (DER) names with
/// URI SANs `switchyard://<cluster>/vantage/<region>`. Empty when it names
/// none, or cannot be parsed.
pub fn certified_vantages(cert: &[u8], cluster: &str) -> BTreeSet<String> {
    use x509_parser::extensions::GeneralName;
    let mut out = BTreeSet::new();
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert) else {
        return out;
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return out;
    };
    let prefix = vantage_uri(cluster, "");
    for name in &san.value.general_names {
        if let GeneralName::URI(uri) = name
            && let Some(region) = uri.strip_prefix(&prefix)
            && !region.is_empty()
            && !region.contains('/')
        {
            out.insert(region.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(uris: &[&str]) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        for u in uris {
            params
                .subject_alt_names
                .push(rcgen::SanType::URI((*u).try_into().expect("uri")));
        }
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn a_certificate_names_only_its_own_clusters_vantages() {
        let cert = cert_with(&[
            "switchyard://prod/vantage/us-east",
            "switchyard://prod/vantage/eu-west",
            "switchyard://staging/vantage/ap-south",
            "switchyard://prod/vantage/x/y",
            "switchyard://prod/vantage/",
            "switchyard://prod/controller/ctl-a",
            "https://prod/vantage/ap-south",
        ]);
        let got = certified_vantages(&cert, "prod");
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            vec!["eu-west".to_string(), "us-east".to_string()]
        );
        assert!(certified_vantages(&cert_with(&[]), "prod").is_empty());
        assert!(certified_vantages(b"not a certificate", "prod").is_empty());
    }

    #[test]
    fn only_https_is_accepted_under_tls() {
        assert!(require_https("https://10.0.0.1:7400").is_ok());
        let e = require_https("http://10.0.0.1:7400").expect_err("plaintext");
        assert!(e.contains("https:// only"), "{e}");
    }
}
