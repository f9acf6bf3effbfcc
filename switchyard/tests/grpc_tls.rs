//! Mutual TLS on the controllers' gRPC port (issue 13, item 2), on real
//! processes with certificates made by `rcgen`:
//!
//! - three controllers serve over TLS, ping each other over mutual TLS and
//!   elect a leader;
//! - a plaintext client, and a client whose certificate another CA signed,
//!   are refused;
//! - a probe certificate names the vantages it may report for
//!   (`switchyard://<cluster>/vantage/<region>`): its reports for another
//!   vantage are refused one by one, as is every report from a certificate
//!   that names none;
//! - a real `switchyard probe` with its own certificate reports over TLS
//!   and every one of its reports is accepted;
//! - each certificate's expiry is on `/metrics`, for the alert that warns
//!   before it runs out;
//! - a renewed certificate written over the old files is served from the
//!   next handshake on, without a restart.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::{Backend, Cluster, target};
use switchyard_controller::config::vantage_uri;
use switchyard_probes::proto::probe_ingest_client::ProbeIngestClient;
use switchyard_probes::proto::{IngestSummary, Outcome, ProbeReport};
use switchyard_tests::Etcd;
use switchyard_tests::pki::{CertFiles, TestPki};
use switchyard_tests::process::FixtureProcess;
use tonic::transport::{ClientTlsConfig, Endpoint};

/// The `[tls]` table for `cert`.
fn tls_table(pki: &TestPki, cert: &CertFiles) -> String {
    format!(
        "\n[tls]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        pki.ca.display(),
        cert.cert.display(),
        cert.key.display()
    )
}

fn report(cluster: &str, vantage: &str, seq: u64) -> ProbeReport {
    ProbeReport {
        probe_id: format!("test-{vantage}"),
        vantage_region: vantage.into(),
        target: target("a"),
        check: "http".into(),
        outcome: Outcome::Up as i32,
        reason: String::new(),
        latency_us: 100,
        observed_at_unix_ms: chrono::Utc::now().timestamp_millis(),
        sequence: seq,
        cluster: cluster.into(),
    }
}

/// The `notAfter` of the certificate the controller at `addr` serves now
/// (a fresh handshake, with the PKI's client certificate).
async fn served_not_after(addr: std::net::SocketAddr, pki: &TestPki) -> anyhow::Result<i64> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&pki.ca)? {
        roots.add(c?)?;
    }
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&pki.client.cert)?.collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&pki.client.key)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = connector
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await?;
    let der = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no server certificate"))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(cert.validity().not_after.timestamp())
}

/// Sends `vantages`' reports on one stream to `url`; the summary, or why
/// the stream failed.
async fn send(
    url: &str,
    tls: Option<ClientTlsConfig>,
    cluster: &str,
    vantages: &[&str],
) -> Result<IngestSummary, String> {
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5));
    if let Some(t) = tls {
        endpoint = endpoint.tls_config(t).map_err(|e| e.to_string())?;
    }
    let channel = endpoint.connect().await.map_err(|e| format!("{e:?}"))?;
    let reports: Vec<ProbeReport> = vantages
        .iter()
        .enumerate()
        .map(|(i, v)| report(cluster, v, i as u64 + 1))
        .collect();
    ProbeIngestClient::new(channel)
        .report(tokio_stream::iter(reports))
        .await
        .map(|r| r.into_inner())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_only_the_cluster_ca_and_certified_vantages() -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let name = Cluster::name();
    let server = pki.server.clone();
    let table = tls_table(&pki, &server);
    let cl = Cluster::start_on(
        Etcd::single().await?,
        Backend::File,
        "",
        move |_| table,
        &[],
    )
    .await?;
    if let Err(e) = cl.wait_leader(None, Duration::from_secs(30)).await {
        for c in &cl.controllers {
            eprintln!("--- {} ---\n{}", c.id(), c.log());
        }
        return Err(e);
    }
    // Peers ping each other over mutual TLS.
    for c in &cl.controllers {
        c.wait_metric_at_least("switchyard_peers_reachable", 2.0, Duration::from_secs(20))
            .await?;
    }

    // Each certificate's expiry is on /metrics, for the alert: the leaf's
    // is the date in the server certificate's file (30 days from now).
    let page = cl.controllers[0].metrics().await?;
    let leaf: Vec<&str> = page
        .lines()
        .filter(|l| {
            l.starts_with("switchyard_tls_not_after_timestamp_seconds{")
                && l.contains("kind=\"leaf\"")
        })
        .collect();
    assert_eq!(leaf.len(), 1, "{page}");
    let shown: f64 = leaf[0].rsplit(' ').next().unwrap_or_default().parse()?;
    let on_disk = switchyard_controller::tls::earliest_not_after(&std::fs::read(&server.cert)?)
        .expect("the server certificate parses");
    assert_eq!(shown, on_disk as f64, "{}", leaf[0]);
    let days = (on_disk - chrono::Utc::now().timestamp()) as f64 / 86_400.0;
    assert!((29.0..=30.1).contains(&days), "expires in {days} days");
    assert!(page.contains("kind=\"ca\""), "{page}");

    // Rotation without a restart: the renewed server certificate (same
    // files) is served to the next handshake of every controller, the
    // gauge moves with it, and the peers reconnect with it.
    assert_eq!(
        served_not_after(cl.controllers[0].grpc(), &pki).await?,
        on_disk
    );
    let renewed = pki.renew_server(&[], Duration::from_secs(60 * 86_400))?;
    let new_expiry = switchyard_controller::tls::earliest_not_after(&std::fs::read(&renewed.cert)?)
        .expect("the renewed certificate parses");
    assert!(new_expiry > on_disk + 20 * 86_400);
    for c in &cl.controllers {
        switchyard_tests::wait::wait_for(
            &format!("{} to reload its certificate", c.id()),
            Duration::from_secs(30),
            || async {
                let page = c.metrics().await.map_err(|e| e.to_string())?;
                let line = page
                    .lines()
                    .find(|l| {
                        l.starts_with("switchyard_tls_not_after_timestamp_seconds{")
                            && l.contains("kind=\"leaf\"")
                    })
                    .ok_or("no leaf expiry")?;
                let v: f64 = line
                    .rsplit(' ')
                    .next()
                    .unwrap_or_default()
                    .parse()
                    .map_err(|e| format!("{e}"))?;
                if v == new_expiry as f64 {
                    Ok(())
                } else {
                    Err(format!("still {line}"))
                }
            },
        )
        .await?;
        assert_eq!(
            served_not_after(c.grpc(), &pki).await?,
            new_expiry,
            "{}",
            c.id()
        );
    }
    for c in &cl.controllers {
        c.wait_metric_at_least("switchyard_peers_reachable", 2.0, Duration::from_secs(20))
            .await?;
        assert_eq!(
            c.metric("switchyard_tls_reloads_total{result=\"reloaded\"}")
                .await?,
            Some(1.0),
            "{}",
            c.id()
        );
    }

    let addr = cl.controllers[0].grpc();
    let https = format!("https://{addr}");
    let probe_a = pki.issue("probe-a", &[vantage_uri(&name, "a")])?;

    // Refused before any report is read.
    let plain = send(&format!("http://{addr}"), None, &name, &["a"]).await;
    assert!(plain.is_err(), "plaintext accepted: {plain:?}");
    let stranger = send(
        &https,
        Some(pki.client_tls(Some(&pki.stranger))?),
        &name,
        &["a"],
    )
    .await;
    assert!(
        stranger.is_err(),
        "another CA's certificate accepted: {stranger:?}"
    );
    let anonymous = send(&https, Some(pki.client_tls(None)?), &name, &["a"]).await;
    assert!(
        anonymous.is_err(),
        "a client without a certificate accepted: {anonymous:?}"
    );

    // A probe certified for a: its reports for a count, its reports for b
    // are refused one by one; the stream stays open.
    let summary = send(
        &https,
        Some(pki.client_tls(Some(&probe_a))?),
        &name,
        &["a", "b", "a", "c"],
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!((summary.accepted, summary.rejected), (2, 2), "{summary:?}");
    // A certificate of the CA that names no vantage speaks for none.
    let summary = send(
        &https,
        Some(pki.client_tls(Some(&pki.client))?),
        &name,
        &["a"],
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!((summary.accepted, summary.rejected), (0, 1), "{summary:?}");
    let refused = cl.controllers[0]
        .metric("switchyard_reports_rejected_total{reason=\"uncertified_vantage\"}")
        .await?;
    assert_eq!(refused, Some(3.0));

    // A real probe, its config naming its own certificate.
    let text = std::fs::read_to_string(&cl.config)?;
    let probe_config = cl.dir.path().join("probe-a.toml");
    std::fs::write(
        &probe_config,
        text.replace(
            &server.cert.display().to_string(),
            &probe_a.cert.display().to_string(),
        )
        .replace(
            &server.key.display().to_string(),
            &probe_a.key.display().to_string(),
        ),
    )?;
    // Under [tls] a probe never talks plaintext, even when told to.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["probe", "--region", "a", "--config"])
        .arg(&probe_config)
        .arg("--controller")
        .arg(format!("http://{addr}"))
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("https:// only"), "{stderr}");

    let mut before = Vec::new();
    for c in &cl.controllers {
        before.push(
            c.metric("switchyard_reports_accepted_total")
                .await?
                .unwrap_or(0.0),
        );
    }
    let mut args = vec![
        "probe".to_string(),
        "--config".into(),
        probe_config.display().to_string(),
        "--region".into(),
        "a".into(),
    ];
    for c in &cl.controllers {
        args.push("--controller".into());
        args.push(format!("https://{}", c.grpc()));
    }
    let _probe = FixtureProcess::spawn(
        "probe a",
        Path::new(env!("CARGO_BIN_EXE_switchyard")),
        &args,
        cl.dir.path(),
        &cl.dir.path().join("probe-a.log"),
    )?;
    for (c, before) in cl.controllers.iter().zip(before) {
        c.wait_metric_at_least(
            "switchyard_reports_accepted_total",
            before + 3.0,
            Duration::from_secs(30),
        )
        .await?;
    }
    // `status` works with [tls] set: the CLI reaches the operator API over
    // mutual TLS with the config's certificate.
    let out = cl
        .command()
        .args(["status", "--config"])
        .arg(&cl.config)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(!stdout.contains("does not answer"), "{stdout}");
    let refused_after = cl.controllers[0]
        .metric("switchyard_reports_rejected_total{reason=\"uncertified_vantage\"}")
        .await?;
    assert_eq!(
        refused_after,
        Some(3.0),
        "the real probe's reports were refused"
    );
    Ok(())
}
