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
//!   start-up with an error naming the key and the file;
//! - everything secured at once: that etcd, mutual TLS on gRPC, real
//!   probes each with a certificate naming its region, and the CLI with
//!   an operator's certificate and token (no config, no etcd access):
//!   a real MariaDB primary dies and is failed over, and the operator
//!   sees it and switches over through the API.

use crate::common;

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
    let out = cl
        .command()
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

/// `switchyard probe` for `region` with its own certificate (naming its
/// vantage), over mutual TLS to every controller.
fn start_probe(
    cl: &Cluster,
    pki: &TestPki,
    region: &str,
) -> anyhow::Result<switchyard_tests::process::FixtureProcess> {
    let cert = pki.issue(
        &format!("probe-{region}"),
        &[switchyard_controller::config::vantage_uri(
            &cl.cluster,
            region,
        )],
    )?;
    let text = std::fs::read_to_string(&cl.config)?
        .replace(
            &pki.server.cert.display().to_string(),
            &cert.cert.display().to_string(),
        )
        .replace(
            &pki.server.key.display().to_string(),
            &cert.key.display().to_string(),
        );
    let config = cl.dir.path().join(format!("probe-{region}.toml"));
    std::fs::write(&config, text)?;
    let urls: Vec<String> = cl
        .controllers
        .iter()
        .map(|c| format!("https://{}", c.grpc()))
        .collect();
    cl.spawn_probe(&config, region, &urls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secured_cluster_fails_over_a_real_primary_with_probes_and_the_cli_on_mutual_tls()
-> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let mut etcd = Etcd::single_tls(&pki).await?;
    etcd.enable_auth(&Cluster::name(), USER, PASSWORD).await?;
    let mut db = switchyard_tests::MariaDbTopology::start(2)
        .await
        .map_err(|e| e.context("starting the MariaDB topology"))?;
    let endpoints = [
        switchyard_tests::HttpTarget::start().await?,
        switchyard_tests::HttpTarget::start().await?,
        switchyard_tests::HttpTarget::start().await?,
    ];
    let targets: Vec<String> = endpoints.iter().map(|e| e.addr().to_string()).collect();
    let members: Vec<String> = (0..3).map(|i| db.address(i)).collect();
    let grpc_tls = format!(
        "\n[tls]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        pki.ca.display(),
        pki.server.cert.display(),
        pki.server.key.display()
    );
    let cl = Cluster::start_on(
        etcd,
        Backend::File,
        &etcd_lines(&pki, &pki.client),
        |dir| {
            format!(
                "{}{}{grpc_tls}",
                credentials(dir),
                common::orders::orders_config(dir, &members, "")
            )
        },
        &targets,
    )
    .await?;
    let result = secured_scenario(&cl, &pki, &mut db).await;
    if result.is_err() {
        for c in &cl.controllers {
            eprintln!("--- {} log ---\n{}", c.id(), c.log());
        }
    }
    result
}

async fn secured_scenario(
    cl: &Cluster,
    pki: &TestPki,
    db: &mut switchyard_tests::MariaDbTopology,
) -> anyhow::Result<()> {
    let _probes = [
        start_probe(cl, pki, "a")?,
        start_probe(cl, pki, "b")?,
        start_probe(cl, pki, "c")?,
    ];
    cl.wait_leader(None, Duration::from_secs(30)).await?;

    // The operator's machine: the CA, its own certificate and its token;
    // no config, no etcd endpoint, no etcd credential.
    let operator = pki.issue("operator", &[])?;
    let servers: Vec<String> = cl
        .controllers
        .iter()
        .map(|c| c.grpc().to_string())
        .collect();
    let cli = |args: &[&str]| -> anyhow::Result<(i32, String, String)> {
        let out = common::cli_command(cl.dir.path(), &servers)
            .args(args)
            .arg("--ca-file")
            .arg(&pki.ca)
            .arg("--cert-file")
            .arg(&operator.cert)
            .arg("--key-file")
            .arg(&operator.key)
            .output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    let primary = || async {
        let (code, out, err) = cli(&["status", "--output", "json"]).map_err(|e| e.to_string())?;
        if code != 0 {
            return Err(format!("status: {err}"));
        }
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
        v["databases"]
            .as_array()
            .and_then(|d| d.iter().find(|e| e[0] == "orders"))
            .and_then(|e| e[1]["primary"].as_str())
            .map(str::to_string)
            .ok_or_else(|| format!("no primary in {v}"))
    };
    wait_for(
        "the CLI to see m0 as the primary",
        Duration::from_secs(60),
        || async {
            match primary().await? {
                p if p == "m0" => Ok(()),
                p => Err(p),
            }
        },
    )
    .await?;

    // Without its certificate the CLI gets no further than the handshake.
    let out = common::cli_command(cl.dir.path(), &servers)
        .arg("status")
        .arg("--ca-file")
        .arg(&pki.ca)
        .output()?;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no controller could be reached"),
        "{stderr}"
    );

    // Region a's controller vouches for m0 (holds its lease): the gate can
    // open once that lease lapses.
    wait_for("m0 to be vouched for", Duration::from_secs(60), || async {
        let (_, out, err) = cli(&["status", "--output", "json"]).map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {err}"))?;
        let vouched = v["fencing"]
            .as_array()
            .and_then(|f| f.iter().find(|e| e[0] == "orders"))
            .is_some_and(|e| e[1]["vouched"] == true);
        vouched
            .then_some(())
            .ok_or_else(|| v["fencing"].to_string())
    })
    .await?;

    // The primary dies; the real probes see it; the leader fails over.
    db.kill9(0);
    let new = wait_for("a new primary", Duration::from_secs(90), || async {
        match primary().await? {
            p if p != "m0" => Ok(p),
            p => Err(p),
        }
    })
    .await?;
    let (code, history, err) = cli(&["history", "--limit", "100"])?;
    assert_eq!(code, 0, "{err}");
    assert!(history.contains("failover"), "{history}");

    // A planned switchover to the other replica, asked by the operator.
    let other = if new == "m1" { "m2" } else { "m1" };
    let (code, out, err) = cli(&[
        "switchover",
        "--database",
        "orders",
        "--to",
        other,
        "--reason",
        "back to the preferred replica after the drill",
        "--wait",
        "90",
    ])?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("done"), "{out}");
    assert_eq!(primary().await.map_err(anyhow::Error::msg)?, other);
    let (_, history, _) = cli(&["history", "--limit", "20"])?;
    assert!(
        history.contains("fixture-admin") && history.contains("back to the preferred replica"),
        "{history}"
    );

    // Neither password nor token reached a log.
    for c in &cl.controllers {
        let log = c.log();
        assert!(
            !log.contains(PASSWORD),
            "{} logged the etcd password",
            c.id()
        );
        assert!(
            !log.contains(common::ADMIN_TOKEN),
            "{} logged a token",
            c.id()
        );
    }
    Ok(())
}
