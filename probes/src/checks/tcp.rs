//! `tcp`: up when a connection opens; closed at once.

use crate::plan::{TcpCheck, split_host_port};

use super::{Check, CheckContext, CheckFuture, Failure, FailureKind, net};

/// A built TCP check.
#[derive(Debug, Clone)]
pub struct TcpCheckRunner {
    address: String,
    source: Option<std::net::IpAddr>,
}

impl TcpCheckRunner {
    /// Builds the check (the address was validated with the plan).
    pub fn new(spec: &TcpCheck, ctx: &CheckContext) -> Self {
        TcpCheckRunner {
            address: spec.address.clone(),
            source: ctx.source_address,
        }
    }

    async fn once(&self) -> Result<(), Failure> {
        let (host, port) =
            split_host_port(&self.address).map_err(|e| Failure::new(FailureKind::Resolve, e))?;
        let addr = net::resolve(&host, port).await?;
        let stream = net::connect(addr, self.source).await?;
        drop(stream);
        Ok(())
    }
}

impl Check for TcpCheckRunner {
    fn run(&self) -> CheckFuture<'_> {
        Box::pin(self.once())
    }
}
