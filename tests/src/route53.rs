//! The Route 53 API as served by moto (`moto[server]` in the project
//! virtualenv), and an `aws-sdk-route53` client pointed at it.
//!
//! moto is a stand-in for the API, not for Route 53's semantics: its change
//! batches are not atomic and it accepts weights above 255 (see
//! FIELD-NOTES.md). Tests must not rely on either behaviour.

use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_route53::config::{BehaviorVersion, Credentials, Region};

use crate::paths::{fixture_dir, venv_bin};
use crate::ports::{free_port, looks_like_port_clash};
use crate::process::FixtureProcess;
use crate::wait::wait_for;

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const ATTEMPTS: usize = 3;

/// A moto server on a free loopback port; stopped on drop.
#[derive(Debug)]
pub struct Route53Api {
    endpoint: String,
    // Held so moto stops with the fixture.
    _process: FixtureProcess,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Route53Api {
    /// Starts moto and returns once it answers Route 53 API calls.
    pub async fn start() -> anyhow::Result<Self> {
        let moto = venv_bin("moto_server");
        anyhow::ensure!(
            moto.exists(),
            "{} is missing; run scripts/setup",
            moto.display()
        );
        let tmp = fixture_dir("moto")?;
        let dir = tmp.path().to_path_buf();
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let port = free_port();
            let args = vec![
                "-H".to_string(),
                "127.0.0.1".to_string(),
                "-p".to_string(),
                port.to_string(),
            ];
            let mut process =
                FixtureProcess::spawn("moto_server", &moto, &args, &dir, &dir.join("moto.log"))?;
            let endpoint = format!("http://127.0.0.1:{port}");
            match wait_ready(&client_for(&endpoint), &mut process).await {
                Ok(()) => {
                    return Ok(Route53Api {
                        endpoint,
                        _process: process,
                        dir,
                        _tmp: tmp,
                    });
                }
                Err(e) => {
                    let tail = process.log_tail(4000);
                    process.kill();
                    if looks_like_port_clash(&tail) {
                        last = Some(e);
                        continue;
                    }
                    return Err(e.context(format!("moto log tail:\n{tail}")));
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("moto did not start")))
    }

    /// The HTTP endpoint to give `endpoint_url` overrides.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// An `aws-sdk-route53` client for this server, with dummy credentials
    /// (moto routes by the signing header, so they must be present).
    pub fn client(&self) -> aws_sdk_route53::Client {
        client_for(&self.endpoint)
    }

    /// The directory holding moto's log.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

fn client_for(endpoint: &str) -> aws_sdk_route53::Client {
    let config = aws_sdk_route53::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "testing", "testing", None, None, "fixture",
        ))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_route53::Client::from_conf(config)
}

async fn wait_ready(
    client: &aws_sdk_route53::Client,
    process: &mut FixtureProcess,
) -> anyhow::Result<()> {
    wait_for("moto to answer ListHostedZones", READY_TIMEOUT, || {
        let exited = process.exited();
        let client = client.clone();
        async move {
            if let Some(s) = exited {
                return Err(format!("moto exited with {s}"));
            }
            client
                .list_hosted_zones()
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:?}"))
        }
    })
    .await
}
