//! `grpc`: `grpc.health.v1.Health/Check` on a fresh plaintext HTTP/2
//! connection; up when the answer is `SERVING`.

use std::net::IpAddr;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::Code;
use tonic::transport::{Endpoint, Uri};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::plan::{GrpcCheck, split_host_port};

use super::{Check, CheckContext, CheckFuture, Failure, FailureKind, net};

/// A built gRPC health check.
#[derive(Debug, Clone)]
pub struct GrpcCheckRunner {
    address: String,
    service: String,
    source: Option<IpAddr>,
    timeout: Duration,
}

impl GrpcCheckRunner {
    /// Builds the check; `service: None` asks about the whole server.
    pub fn new(spec: &GrpcCheck, ctx: &CheckContext, timeout: Duration) -> Self {
        GrpcCheckRunner {
            address: spec.address.clone(),
            service: spec.service.clone().unwrap_or_default(),
            source: ctx.source_address,
            timeout,
        }
    }

    async fn once(&self) -> Result<(), Failure> {
        let (host, port) =
            split_host_port(&self.address).map_err(|e| Failure::new(FailureKind::Resolve, e))?;
        let addr = net::resolve(&host, port).await?;
        let endpoint = Endpoint::from_shared(format!("http://{}", self.address))
            .map_err(|e| Failure::new(FailureKind::Protocol, format!("{}: {e}", self.address)))?
            .timeout(self.timeout);
        let source = self.source;
        // Our own connector: the probe's source address, and connect errors
        // classified the way every other check classifies them.
        let connector = tower::service_fn(move |_: Uri| async move {
            net::connect(addr, source)
                .await
                .map(TokioIo::new)
                .map_err(|f| {
                    let kind = match f.kind {
                        FailureKind::Refused => std::io::ErrorKind::ConnectionRefused,
                        _ => std::io::ErrorKind::Other,
                    };
                    std::io::Error::new(kind, f.detail)
                })
        });
        let channel = endpoint
            .connect_with_connector(connector)
            .await
            .map_err(|e| connect_failure(&e))?;
        let answer = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: self.service.clone(),
            })
            .await
            .map_err(|s| status_failure(&self.service, &s))?;
        let status =
            ServingStatus::try_from(answer.into_inner().status).unwrap_or(ServingStatus::Unknown);
        if status == ServingStatus::Serving {
            Ok(())
        } else {
            Err(Failure::new(
                FailureKind::NotServing,
                format!("service {:?} is {}", self.service, status.as_str_name()),
            ))
        }
    }
}

impl Check for GrpcCheckRunner {
    fn run(&self) -> CheckFuture<'_> {
        Box::pin(self.once())
    }
}

fn connect_failure(e: &tonic::transport::Error) -> Failure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut text = e.to_string();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            let kind = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => FailureKind::Refused,
                _ => FailureKind::Connect,
            };
            return Failure::new(kind, io.to_string());
        }
        text = s.to_string();
        source = s.source();
    }
    Failure::new(FailureKind::Connect, text)
}

fn status_failure(service: &str, s: &tonic::Status) -> Failure {
    let kind = match s.code() {
        Code::NotFound => FailureKind::NotServing,
        Code::Unavailable => FailureKind::Connect,
        Code::DeadlineExceeded => FailureKind::Timeout,
        _ => FailureKind::Protocol,
    };
    Failure::new(
        kind,
        format!("health of {service:?}: {:?} {}", s.code(), s.message()),
    )
}
