//! A throwaway public-key infrastructure for TLS tests, made with `rcgen`:
//! a CA, a server certificate for loopback, a client certificate, and a
//! client certificate from another CA (which servers must refuse). Written
//! as PEM files into a directory of its own, deleted on drop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

/// How long the certificates a [`TestPki`] makes are valid, unless told
/// otherwise: long enough for any test or lab, short enough that an
/// expiry alert watching for two weeks stays quiet and a renewal visibly
/// moves the date.
pub const VALIDITY: Duration = Duration::from_secs(30 * 86_400);

/// The files of a test PKI.
pub struct TestPki {
    /// The CA's certificate (PEM): what clients and servers trust.
    pub ca: PathBuf,
    /// A server certificate for `localhost` and 127.0.0.1.
    pub server: CertFiles,
    /// A client certificate (common name `switchyard-host`, not an etcd
    /// user: etcd would take a common name that is a user as the login).
    pub client: CertFiles,
    /// A client certificate from another CA.
    pub stranger: CertFiles,
    issuer: Issuer<'static, KeyPair>,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki")
            .field("dir", &self.dir.path())
            .finish()
    }
}

struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> anyhow::Result<Ca> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    // Ten years, as a private CA would be made (rcgen's default runs to
    // the year 4096).
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(3650);
    let cert = params.self_signed(&key)?;
    Ok(Ca {
        cert_pem: cert.pem(),
        issuer: Issuer::new(params, key),
    })
}

fn leaf(
    ca: &Ca,
    common_name: &str,
    names: &[&str],
    ips: &[std::net::IpAddr],
) -> anyhow::Result<(String, String)> {
    leaf_by(&ca.issuer, common_name, names, ips, &[], VALIDITY)
}

fn leaf_by(
    issuer: &Issuer<'static, KeyPair>,
    common_name: &str,
    names: &[&str],
    ips: &[std::net::IpAddr],
    uris: &[String],
    valid_for: Duration,
) -> anyhow::Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    // From an hour ago (clocks differ a little), for `valid_for`.
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::try_from(valid_for)?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    for ip in ips {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    for uri in uris {
        params
            .subject_alt_names
            .push(SanType::URI(uri.as_str().try_into()?));
    }
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes `name.pem` and `name-key.pem` in `dir`, each through a temp file
/// renamed into place, so a reader sees the old file or the new one. The
/// key is written first: a process reading both between the two renames
/// gets a pair that does not match and says so, never an old key for a
/// new certificate silently.
fn write_pair(dir: &Path, name: &str, (cert, key): (String, String)) -> anyhow::Result<CertFiles> {
    let files = CertFiles {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}-key.pem")),
    };
    for (path, text, mode) in [(&files.key, key, 0o600), (&files.cert, cert, 0o644)] {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let tmp = path.with_extension("pem.tmp");
        let _ = std::fs::remove_file(&tmp);
        // A private key readable by its owner only, as a real one would be.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        std::fs::rename(&tmp, path)?;
    }
    Ok(files)
}

impl TestPki {
    /// Makes a new CA and certificates in a fresh directory.
    pub fn new() -> anyhow::Result<Self> {
        Self::in_dir(
            tempfile::Builder::new()
                .prefix("switchyard-fixture-pki-")
                .tempdir()?,
        )
    }

    /// A new CA and certificates in a fresh directory inside `parent` (the
    /// lab keeps its CA beside its config), the server certificate naming
    /// `ips` too (servers listening on namespace addresses, say).
    pub fn new_in_for(parent: &Path, ips: &[std::net::IpAddr]) -> anyhow::Result<Self> {
        Self::in_dir_for(
            tempfile::Builder::new().prefix("pki-").tempdir_in(parent)?,
            ips,
        )
    }

    fn in_dir(dir: tempfile::TempDir) -> anyhow::Result<Self> {
        Self::in_dir_for(dir, &[])
    }

    fn in_dir_for(dir: tempfile::TempDir, ips: &[std::net::IpAddr]) -> anyhow::Result<Self> {
        let ours = ca("switchyard test CA")?;
        let other = ca("some other CA")?;
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, &ours.cert_pem)?;
        let loopback = [std::net::IpAddr::from([127, 0, 0, 1])];
        let server_ips: Vec<std::net::IpAddr> = loopback.iter().chain(ips).copied().collect();
        let server = write_pair(
            dir.path(),
            "server",
            leaf(&ours, "localhost", &["localhost"], &server_ips)?,
        )?;
        let client = write_pair(
            dir.path(),
            "client",
            leaf(&ours, "switchyard-host", &[], &[])?,
        )?;
        let stranger = write_pair(
            dir.path(),
            "stranger",
            leaf(&other, "switchyard", &[], &[])?,
        )?;
        Ok(Self {
            ca: ca_path,
            server,
            client,
            stranger,
            issuer: ours.issuer,
            dir,
        })
    }

    /// Another certificate from the CA, named `name` in the directory, with
    /// the URI SANs `uris` (a probe's vantages, say) and 127.0.0.1.
    pub fn issue(&self, name: &str, uris: &[String]) -> anyhow::Result<CertFiles> {
        self.issue_valid_for(name, uris, VALIDITY)
    }

    /// [`Self::issue`], valid for `valid_for` from now. Issuing a name again
    /// replaces its files (a renewal: same paths, new key and dates).
    pub fn issue_valid_for(
        &self,
        name: &str,
        uris: &[String],
        valid_for: Duration,
    ) -> anyhow::Result<CertFiles> {
        let loopback = [std::net::IpAddr::from([127, 0, 0, 1])];
        write_pair(
            self.dir.path(),
            name,
            leaf_by(
                &self.issuer,
                name,
                &["localhost"],
                &loopback,
                uris,
                valid_for,
            )?,
        )
    }

    /// Replaces the server certificate's files with a new certificate and
    /// key for `localhost`, 127.0.0.1 and `ips`, valid for `valid_for`
    /// from now.
    pub fn renew_server(
        &self,
        ips: &[std::net::IpAddr],
        valid_for: Duration,
    ) -> anyhow::Result<CertFiles> {
        let server_ips: Vec<std::net::IpAddr> =
            std::iter::once(std::net::IpAddr::from([127, 0, 0, 1]))
                .chain(ips.iter().copied())
                .collect();
        write_pair(
            self.dir.path(),
            "server",
            leaf_by(
                &self.issuer,
                "localhost",
                &["localhost"],
                &server_ips,
                &[],
                valid_for,
            )?,
        )
    }

    /// A TLS client config trusting this CA, presenting `identity` (none:
    /// no client certificate).
    pub fn client_tls(
        &self,
        identity: Option<&CertFiles>,
    ) -> anyhow::Result<tonic::transport::ClientTlsConfig> {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity};
        let mut t =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(std::fs::read(&self.ca)?));
        if let Some(id) = identity {
            t = t.identity(Identity::from_pem(
                std::fs::read(&id.cert)?,
                std::fs::read(&id.key)?,
            ));
        }
        Ok(t)
    }

    /// The directory holding every file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
