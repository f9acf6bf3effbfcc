//! The embedded DNS backend across three controllers: the leader writes the
//! desired weights to etcd once; every controller's own DNS server follows
//! them, so an evacuated region disappears from every server's answers.

use crate::common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::{Backend, Cluster, REGIONS, endpoint_ip, target};
use switchyard_tests::wait::wait_for;

/// `n` answers for the api record from the server at `addr`, via `dig -f`.
fn answers(addr: SocketAddr, n: usize) -> anyhow::Result<Vec<String>> {
    let dir = tempfile::tempdir()?;
    let batch = dir.path().join("queries");
    let line = format!(
        "@{} -p {} api.example.test. A +short +tries=1 +time=2\n",
        addr.ip(),
        addr.port()
    );
    std::fs::write(&batch, line.repeat(n))?;
    let out = Command::new("dig").arg("-f").arg(&batch).output()?;
    anyhow::ensure!(out.status.success(), "dig failed: {out:?}");
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_controller_serves_the_leaders_weights() -> anyhow::Result<()> {
    let cl = Cluster::start_with(1, Backend::Embedded).await?;
    let fleet = cl.all_up_fleet();
    cl.wait_leader(None, Duration::from_secs(20)).await?;
    let servers: Vec<SocketAddr> = cl
        .controllers
        .iter()
        .map(|c| c.dns().expect("embedded DNS server address"))
        .collect();
    assert_eq!(servers.len(), 3);

    // Healthy: every region's address is served somewhere in 60 answers.
    let all = answers(servers[0], 60)?;
    for i in 0..REGIONS.len() {
        assert!(
            all.contains(&endpoint_ip(i)),
            "{} never answered: {all:?}",
            endpoint_ip(i)
        );
    }

    fleet.set_all(&target("a"), &REGIONS, false);
    let evacuated = endpoint_ip(0);
    for (i, server) in servers.iter().enumerate() {
        wait_for(
            &format!("controller {i}'s DNS server to stop answering region a"),
            Duration::from_secs(20),
            || {
                let evacuated = evacuated.clone();
                let server = *server;
                async move {
                    let got = answers(server, 40).map_err(|e| e.to_string())?;
                    if got.len() == 40 && !got.contains(&evacuated) {
                        Ok(())
                    } else {
                        Err(format!(
                            "{} answers, region a among them: {}",
                            got.len(),
                            got.contains(&evacuated)
                        ))
                    }
                }
            },
        )
        .await?;
    }
    // And it stays that way.
    for server in &servers {
        let got = answers(*server, 60)?;
        assert_eq!(got.len(), 60);
        assert!(!got.contains(&evacuated), "{got:?}");
    }
    Ok(())
}
