//! TLS material read from the config's files, checked once at start-up,
//! and who a peer's certificate says it is.
//!
//! A file that is missing or holds no usable PEM is an error naming the
//! config key and the file, before anything listens or connects: a process
//! configured for TLS never falls back to plaintext.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

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
}

impl std::fmt::Debug for GrpcTlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GrpcTlsMaterial(<redacted>)")
    }
}

impl GrpcTlsMaterial {
    /// Reads the three files `[tls]` names.
    pub fn load(cfg: &GrpcTls) -> Result<Self, TlsFileError> {
        Ok(Self {
            ca: read_certs("tls.ca_file", &cfg.ca_file)?,
            cert: read_certs("tls.cert_file", &cfg.cert_file)?,
            key: read_key("tls.key_file", &cfg.key_file)?,
        })
    }

    /// A controller's server side: its certificate, and client
    /// certificates required, signed by the CA.
    pub fn server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert, &self.key))
            .client_ca_root(Certificate::from_pem(&self.ca))
    }

    /// A client side (probe, peer ping): the controllers' certificates
    /// checked against the CA, this host's certificate presented.
    pub fn client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca))
            .identity(Identity::from_pem(&self.cert, &self.key))
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
