//! TLS for HTTPS checks: certificates verified against the system's roots
//! (Debian `ca-certificates`), falling back to the webpki (Mozilla) roots
//! when the system has none, plus any extra CA the plan gives.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use crate::error::PlanError;

use super::{Failure, FailureKind};

/// The client configuration every HTTPS check of a probe shares.
pub fn client_config(extra_ca_pem: Option<&str>) -> Result<Arc<ClientConfig>, PlanError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(pem) = extra_ca_pem {
        let mut count = 0;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| PlanError::BadCa(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| PlanError::BadCa(e.to_string()))?;
            count += 1;
        }
        if count == 0 {
            return Err(PlanError::BadCa("no certificate in the PEM text".into()));
        }
    }
    // Pick the provider explicitly: other crates in the build may enable a
    // second one, and then rustls cannot choose a default by itself.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PlanError::BadCa(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The name sent as SNI and checked against the certificate: a DNS name,
/// or an IP address (then the certificate must list that IP).
pub fn server_name(host: &str) -> Result<ServerName<'static>, Failure> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| Failure::new(FailureKind::Tls, format!("server name {host:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_roots_load() {
        let config = client_config(None).expect("config");
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn garbage_extra_ca_is_refused() {
        assert!(client_config(Some("not a pem")).is_err());
    }

    #[test]
    fn ip_and_dns_names_are_server_names() {
        assert!(matches!(
            server_name("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("api.example.com"),
            Ok(ServerName::DnsName(_))
        ));
    }
}
