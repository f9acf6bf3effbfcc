//! The lab's config file: three regions, a weighted `api.lab.test.` served by
//! every controller's embedded DNS server, and the `orders` database.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use switchyard_labkit::mariadb::{ADMIN_PASSWORD, ADMIN_USER, REPL_PASSWORD, REPL_USER};
use switchyard_labkit::pki::{CertFiles, TestPki};
use switchyard_labkit::{HttpTarget, MariaDbTopology};

use super::REGIONS;

/// The lab's cluster name.
const CLUSTER: &str = "lab";

/// Writes the lab config (and its secret files) into `dir`.
pub fn write(
    dir: &Path,
    etcd: &[String],
    endpoints: &[HttpTarget],
    db: &MariaDbTopology,
    grpc: &[SocketAddr],
    pki: &TestPki,
) -> anyhow::Result<PathBuf> {
    let admin = dir.join("admin.secret");
    let repl = dir.join("repl.secret");
    std::fs::write(&admin, ADMIN_PASSWORD)?;
    std::fs::write(&repl, REPL_PASSWORD)?;
    let endpoints: Vec<String> = endpoints.iter().map(|e| e.addr().to_string()).collect();
    let members: Vec<String> = (0..REGIONS.len()).map(|i| db.address(i)).collect();
    let mut t = render(etcd, &endpoints, &members, grpc, &admin, &repl);
    t.push_str(&operator_table(dir)?);
    t.push_str(&tls_table(&pki.ca, &pki.server));
    let path = dir.join("lab.toml");
    std::fs::write(&path, t)?;
    Ok(path)
}

/// The file holding the token of the lab's admin operator, for the CLI
/// (`SWITCHYARD_TOKEN_FILE`).
pub const TOKEN_FILE: &str = "operator.token";

/// Makes the lab's admin operator: a fresh random token in
/// `dir/operator.token` (readable by its owner only), and the
/// `[[operators]]` entry that knows it by its SHA-256 only.
fn operator_table(dir: &Path) -> anyhow::Result<String> {
    use sha2::Digest as _;
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let token = hex::encode(rand::random::<[u8; 32]>());
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(dir.join(TOKEN_FILE))?
        .write_all(token.as_bytes())?;
    Ok(format!(
        "\n# The lab's operator: its token is in {TOKEN_FILE}, beside this file.\n[[operators]]\nname = \"lab-admin\"\nrole = \"admin\"\ntoken_sha256 = \"{}\"\n",
        hex::encode(sha2::Sha256::digest(token.as_bytes()))
    ))
}

/// The `[tls]` table: the lab's own CA, and `cert` as this process's
/// certificate.
fn tls_table(ca: &Path, cert: &CertFiles) -> String {
    format!(
        "\n# Mutual TLS on gRPC, from the CA the lab made for itself.\n[tls]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        ca.display(),
        cert.cert.display(),
        cert.key.display()
    )
}

/// Writes the config of `region`'s probe: the lab config with the probe's
/// own certificate, which names its vantage (on a real host the same path
/// would hold that host's certificate).
pub fn write_probe(dir: &Path, lab: &Path, pki: &TestPki, region: &str) -> anyhow::Result<PathBuf> {
    let cert = issue_probe(pki, region, switchyard_labkit::pki::VALIDITY)?;
    let text = std::fs::read_to_string(lab)?;
    let controllers = tls_table(&pki.ca, &pki.server);
    anyhow::ensure!(
        text.contains(&controllers),
        "{} has no [tls] table to give the probe its own certificate",
        lab.display()
    );
    let text = text.replace(&controllers, &tls_table(&pki.ca, &cert));
    let path = dir.join(format!("probe-{region}.toml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Issues `region`'s probe certificate (it names the probe's vantage),
/// valid for `valid_for`: the first time, or again over the same files.
fn issue_probe(pki: &TestPki, region: &str, valid_for: Duration) -> anyhow::Result<CertFiles> {
    pki.issue_valid_for(
        &format!("probe-{region}"),
        &[crate::config::vantage_uri(CLUSTER, region)],
        valid_for,
    )
}

/// Renews every certificate the lab's processes use, over the same files
/// (new keys, valid for `valid_for` from now): the controllers' (naming
/// `hosts`) and each probe's, key first (see the rotation runbook); the
/// processes reload them. Returns the files written.
pub fn renew_certificates(
    pki: &TestPki,
    hosts: &[IpAddr],
    valid_for: Duration,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = vec![pki.renew_server(hosts, valid_for)?.cert];
    for r in REGIONS {
        written.push(issue_probe(pki, r, valid_for)?.cert);
    }
    Ok(written)
}

/// The lab config's text: region `i`'s api endpoint is probed at
/// `endpoints[i]`, its database member is `members[i]` and its controller
/// listens for gRPC on `grpc[i]`. Separate from
/// [`write`] so tests check it validates without starting servers.
///
/// Staleness is 5s against 1s checks with a 500ms timeout (reports at most
/// 1.5s apart); the settle window is the default 30s (at least
/// (fall 2 + 1) × 1s).
fn render(
    etcd: &[String],
    endpoints: &[String],
    members: &[String],
    grpc: &[SocketAddr],
    admin: &Path,
    repl: &Path,
) -> String {
    let mut t = format!(
        r#"# Written by `switchyard lab`.
cluster = "{CLUSTER}"

[etcd]
endpoints = [{etcd}]
lease_ttl = "2s"
# The dead-man switch (orders, below) needs at least 6 s.
primary_lease_ttl = "6s"

[dns]
backend = "embedded"
listen = "127.0.0.1:0"
zone = "lab.test."

[policy]
fall = 2
rise = 2
stale_after = "5s"
failback = "auto"
failback_after = "5s"
ramp = [50, 100]
ramp_step = "3s"
db_failover = "auto"
anti_flap = "10m"

[credentials.admin]
user = "{ADMIN_USER}"
password = {{ file = "{admin}" }}

[credentials.repl]
user = "{REPL_USER}"
password = {{ file = "{repl}" }}
"#,
        etcd = etcd
            .iter()
            .map(|e| format!("\"{e}\""))
            .collect::<Vec<_>>()
            .join(", "),
        admin = admin.display(),
        repl = repl.display(),
    );
    for (i, r) in REGIONS.iter().enumerate() {
        t.push_str(&format!(
            "\n[[regions]]\nname = \"{r}\"\nweight = 100\npriority = {}\n\n[[controllers]]\nid = \"ctl-{r}\"\nregion = \"{r}\"\nlisten = \"{}\"\n",
            i + 1,
            grpc[i]
        ));
    }
    t.push_str("\n[[services]]\nname = \"api\"\nrecord = \"api.lab.test.\"\nttl = 5\n");
    for (i, r) in REGIONS.iter().enumerate() {
        t.push_str(&format!(
            "\n[[services.endpoints]]\nregion = \"{r}\"\nvalue = \"{}\"\ntarget = \"{}\"\n",
            endpoint_ip(i),
            endpoints[i]
        ));
    }
    t.push_str(
        "\n[[services.checks]]\nkind = \"http\"\ninterval = \"1s\"\ntimeout = \"500ms\"\npath = \"/health\"\n",
    );
    t.push_str(
        "\n[[databases]]\nname = \"orders\"\nkind = \"mariadb\"\nmax_lag = \"10s\"\ndead_man = true\ncredentials = \"admin\"\nreplication_credentials = \"repl\"\nwriter_record = \"orders-writer.lab.test.\"\n\n[databases.check]\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
    );
    for (i, r) in REGIONS.iter().enumerate() {
        t.push_str(&format!(
            "\n[[databases.members]]\nid = \"orders-{}\"\nregion = \"{r}\"\naddress = \"{}\"\n",
            i + 1,
            members[i]
        ));
    }
    t
}

/// The address region `i`'s endpoint is published as.
pub fn endpoint_ip(i: usize) -> String {
    format!("192.0.2.{}", 10 + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config `switchyard lab` writes validates, without a warning.
    #[test]
    fn the_lab_config_is_valid_without_warnings() {
        let endpoints: Vec<String> = (0..REGIONS.len())
            .map(|i| format!("127.0.0.1:{}", 18_080 + i))
            .collect();
        let members: Vec<String> = (0..REGIONS.len())
            .map(|i| format!("127.0.0.1:{}", 13_306 + i))
            .collect();
        let text = render(
            &["http://127.0.0.1:2379".to_string()],
            &endpoints,
            &members,
            &[17_400, 17_401, 17_402].map(|p| SocketAddr::from(([127, 0, 0, 1], p))),
            Path::new("/tmp/admin.secret"),
            Path::new("/tmp/repl.secret"),
        );
        let checked = match crate::config::parse(&text) {
            Ok(c) => c,
            Err(d) => panic!("the lab config is invalid: {d:#?}\n{text}"),
        };
        assert!(checked.warnings.is_empty(), "{:#?}", checked.warnings);
        let c = checked.config;
        assert_eq!(c.regions.len(), REGIONS.len());
        assert!(c.stale_after() > std::time::Duration::from_millis(1500));
    }
}
