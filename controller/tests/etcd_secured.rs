//! etcd, secured (issue 13, item 1), against a real etcd started with TLS,
//! client-certificate authentication and etcd's own user authentication,
//! certificates made by `rcgen` in the fixture:
//!
//! - three controllers and the CLI reach it over mutual TLS, log in as a
//!   user whose only role reads and writes `/switchyard/<cluster>/`, elect
//!   a leader and evacuate a failed region (fenced writes, the journal and
//!   the traffic backend all work);
//! - that user can do nothing outside the prefix; plaintext, a client
//!   without a certificate and one with another CA's certificate are all
//!   refused;
//! - a TLS file that is missing or holds no PEM stops the controller at
//!   start-up with an error naming the key and the file.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Backend, Cluster, REGIONS, target};
use etcd_client::{Client, ConnectOptions, TlsOptions};
use switchyard_tests::Etcd;
use switchyard_tests::pki::{CertFiles, TestPki};
use switchyard_tests::wait::wait_for;

const USER: &str = "switchyard";
const PASSWORD: &str = "correct horse battery staple";

/// The `[etcd]` lines for TLS with `pki`'s client certificate and the
/// `etcd` credentials (password in `dir/etcd.secret`).
fn etcd_lines(pki: &TestPki, client: &CertFiles) -> String {
    format!(
        "credentials = \"etcd\"\n\n[etcd.tls]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        pki.ca.display(),
        client.cert.display(),
        client.key.display()
    )
}

fn credentials(dir: &Path) -> String {
    std::fs::write(dir.join("etcd.secret"), PASSWORD).expect("secret");
    format!(
        "\n[credentials.etcd]\nuser = \"{USER}\"\npassword = {{ file = \"{}\" }}\n",
        dir.join("etcd.secret").display()
    )
}

/// A client of `url` with `tls` and the `switchyard` login; the result of
/// a read inside the cluster's prefix says whether etcd let it in.
async fn try_client(url: &str, tls: Option<TlsOptions>) -> Result<(), String> {
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(2))
        .with_user(USER, PASSWORD);
    if let Some(t) = tls {
        opts = opts.with_tls(t);
    }
    let mut c = Client::connect([url], Some(opts))
        .await
        .map_err(|e| e.to_string())?;
    c.get(format!("/switchyard/{}/leader", Cluster::name()), None)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_and_the_cli_run_on_mutual_tls_with_a_login_limited_to_the_cluster()
-> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let mut etcd = Etcd::single_tls(&pki).await?;
    let name = Cluster::name();
    etcd.enable_auth(&name, USER, PASSWORD).await?;
    let url = etcd.endpoint(0).to_string();
    assert!(url.starts_with("https://"), "{url}");

    // Who is refused, and who is let in.
    // Refused at the connection, before any login or permission check.
    let refused = |what: &str, r: Result<(), String>| match r {
        Ok(()) => panic!("{what} let in"),
        Err(e) => assert!(!e.contains("permission denied"), "{what}: {e}"),
    };
    let plain = url.replacen("https://", "http://", 1);
    refused("plaintext", try_client(&plain, None).await);
    refused(
        "a client without a certificate",
        try_client(&url, Some(pki.client_tls(None)?)).await,
    );
    refused(
        "another CA's certificate",
        try_client(&url, Some(pki.client_tls(Some(&pki.stranger))?)).await,
    );
    try_client(&url, Some(pki.client_tls(Some(&pki.client))?))
        .await
        .map_err(|e| anyhow::anyhow!("the switchyard user was refused: {e}"))?;

    // The switchyard user's role stops at the cluster's prefix.
    let mut limited = Client::connect(
        [url.as_str()],
        Some(
            ConnectOptions::new()
                .with_tls(pki.client_tls(Some(&pki.client))?)
                .with_user(USER, PASSWORD),
        ),
    )
    .await?;
    let outside = limited.put("/other-tenant/key", "x", None).await;
    let Err(e) = outside else {
        panic!("the switchyard user wrote outside its prefix")
    };
    assert!(e.to_string().contains("permission denied"), "{e}");

    let cl = Cluster::start_on(
        etcd,
        Backend::File,
        &etcd_lines(&pki, &pki.client),
        credentials,
        &[],
    )
    .await?;
    let fleet = cl.all_up_fleet();
    cl.wait_leader(None, Duration::from_secs(30)).await?;
    // The etcd client certificate's expiry is on /metrics for the alert.
    let page = cl.controllers[0].metrics().await?;
    for kind in ["etcd_leaf", "etcd_ca"] {
        assert!(
            page.lines().any(
                |l| l.starts_with("switchyard_tls_not_after_timestamp_seconds{")
                    && l.contains(&format!("kind=\"{kind}\""))
            ),
            "no {kind} expiry in:\n{page}"
        );
    }

    // A failed region is evacuated: the leader's fenced writes and journal
    // go through the login's role.
    fleet.set_all(&target("c"), &REGIONS, false);
    wait_for("region c evacuated", Duration::from_secs(30), || async {
        match cl.weights().get("c") {
            Some(0) => Ok(()),
            other => Err(format!("weight of c is {other:?}")),
        }
    })
    .await?;

    // The CLI reads status the same way.
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["status", "--config"])
        .arg(&cl.config)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("leader"), "{stdout}");
    // The password is never logged, by the controllers or the CLI.
    for c in &cl.controllers {
        assert!(
            !c.log().contains(PASSWORD),
            "{} logged the etcd password",
            c.id()
        );
    }
    assert!(!stdout.contains(PASSWORD) && !String::from_utf8_lossy(&out.stderr).contains(PASSWORD));
    Ok(())
}

/// A TLS file that is missing, or is not PEM, stops the controller before
/// it connects, naming the config key and the file; so does a password
/// file that cannot be read.
#[test]
fn bad_tls_files_stop_the_controller_at_start_up_naming_the_file() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "hello\n")?;
    let cases = [
        (
            format!(
                "[etcd.tls]\nca_file = \"{}/missing.pem\"\n",
                dir.path().display()
            ),
            format!("etcd.tls.ca_file: {}/missing.pem: ", dir.path().display()),
        ),
        (
            format!("[etcd.tls]\nca_file = \"{}\"\n", not_pem.display()),
            format!(
                "etcd.tls.ca_file: {}: holds no PEM certificate",
                not_pem.display()
            ),
        ),
    ];
    for (i, (tls, want)) in cases.iter().enumerate() {
        let (config, _) = common::write_config(
            dir.path(),
            &["https://127.0.0.1:1".to_string()],
            &format!("bad{i}"),
        );
        let text = std::fs::read_to_string(&config)?;
        let at = text.find("\n[dns]").expect("[dns]");
        std::fs::write(&config, format!("{}\n{tls}\n{}", &text[..at], &text[at..]))?;
        let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["controller", "--id", "ctl-a", "--config"])
            .arg(&config)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} started: {stderr}");
        assert!(
            stderr.contains(want.as_str()),
            "case {i}: want {want:?} in {stderr}"
        );
    }
    Ok(())
}
