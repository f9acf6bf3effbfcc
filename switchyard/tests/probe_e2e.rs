//! Real probes, real controllers, real HTTP endpoints: three `switchyard
//! probe` processes (one per region) check every region's endpoint and
//! stream to all three controllers.
//!
//! - A probe cut off from one region is outvoted: region a's probe cannot
//!   reach region b's endpoint (its config points b's check at a port that
//!   refuses), while the probes in b and c see it fine: b is not evacuated.
//! - When b's endpoint really fails (refuses every probe), b is evacuated.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::{Backend, Cluster, REGIONS, write_config_full};
use switchyard_tests::process::FixtureProcess;
use switchyard_tests::wait::wait_for;
use switchyard_tests::{HttpMode, HttpTarget};

fn start_probe(cl: &Cluster, config: &Path, region: &str) -> anyhow::Result<FixtureProcess> {
    cl.spawn_probe(config, region, &cl.urls())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_probe_is_outvoted_and_a_real_failure_is_not() -> anyhow::Result<()> {
    let endpoints = [
        HttpTarget::start().await?,
        HttpTarget::start().await?,
        HttpTarget::start().await?,
    ];
    let targets: Vec<String> = endpoints.iter().map(|e| e.addr().to_string()).collect();
    let cl = Cluster::start_full(1, Backend::File, |_| String::new(), &targets).await?;
    cl.wait_leader(None, Duration::from_secs(20)).await?;

    // Region a's probe sees region b's endpoint through a path that refuses.
    // Bound but never listened on: connections are refused, and no other
    // test can take the port meanwhile (a port merely freed could be).
    let refusing_socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    refusing_socket.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    let refusing = refusing_socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| anyhow::anyhow!("not an inet socket"))?;
    let mut cut_targets = targets.clone();
    cut_targets[1] = refusing.to_string();
    let (cut_config, _) = write_config_full(
        cl.dir.path(),
        "probe-a.toml",
        &cl.etcd.endpoints(),
        &cl.cluster,
        Backend::File,
        "",
        &cut_targets,
    );
    let _probes = [
        start_probe(&cl, &cut_config, "a")?,
        start_probe(&cl, &cl.config, "b")?,
        start_probe(&cl, &cl.config, "c")?,
    ];

    // Every controller hears all three probes about every endpoint.
    wait_for(
        "reports from every probe",
        Duration::from_secs(30),
        || async {
            for c in &cl.controllers {
                let n = c
                    .metric("switchyard_reports_accepted_total")
                    .await
                    .map_err(|e| e.to_string())?
                    .unwrap_or(0.0);
                if n < 30.0 {
                    let log = std::fs::read_to_string(cl.dir.path().join("probe-b.log"))
                        .unwrap_or_default();
                    let tail: String = log
                        .chars()
                        .rev()
                        .take(1500)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    return Err(format!("{} accepted {n}; probe b log tail: {tail}", c.id()));
                }
            }
            Ok(())
        },
    )
    .await?;
    // Long past fall × interval: a's dissent has had every chance to count.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        cl.calls(),
        0,
        "b was evacuated on one probe's word: {:?}",
        cl.weights()
    );
    let leader = cl.leader().await.expect("a leader");
    let verdict = cl.controllers[leader]
        .metric("switchyard_target_verdict{target=\"svc:api@b\"}")
        .await?;
    assert_eq!(verdict, Some(1.0), "b's verdict is Up (2 of 3 vantages)");

    // b's endpoint fails for everyone: evacuated.
    endpoints[1].set_mode(HttpMode::Refuse).await?;
    wait_for("b evacuated", Duration::from_secs(30), || async {
        match cl.weights().get("b") {
            Some(0) => Ok(()),
            other => Err(format!("b at {other:?}")),
        }
    })
    .await?;
    let w = cl.weights();
    assert_eq!(w["a"] + w["c"], 300, "{w:?}");
    assert!(REGIONS.iter().all(|r| w.contains_key(*r)));
    Ok(())
}
