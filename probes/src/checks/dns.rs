//! `dns`: a query to one given server with hickory-resolver; up when it
//! answers with records (and, with `expect`, one of them equals it).
//!
//! A resolver is built for every run: no cache, no server-ordering memory,
//! nothing carried from one run to the next, so each run asks the server.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::rr::RecordType;
use hickory_resolver::{Resolver, TokioResolver};

use crate::plan::{DnsCheck, DnsRecordType};

use super::{Check, CheckContext, CheckFuture, Failure, FailureKind};

/// A built DNS check.
#[derive(Debug, Clone)]
pub struct DnsCheckRunner {
    server: SocketAddr,
    name: String,
    record_type: RecordType,
    expect: Option<String>,
    source: Option<IpAddr>,
    timeout: Duration,
}

impl DnsCheckRunner {
    /// Builds the check; the query name is made fully qualified.
    pub fn new(spec: &DnsCheck, ctx: &CheckContext, timeout: Duration) -> Self {
        let mut name = spec.name.trim().to_string();
        if !name.ends_with('.') {
            name.push('.');
        }
        DnsCheckRunner {
            server: spec.server,
            name,
            record_type: record_type(spec.record_type),
            expect: spec.expect.as_ref().map(|e| normalize(e)),
            source: ctx.source_address,
            timeout,
        }
    }

    fn resolver(&self) -> Result<TokioResolver, Failure> {
        let mut ns = NameServerConfig::udp_and_tcp(self.server.ip());
        for conn in &mut ns.connections {
            conn.port = self.server.port();
            conn.bind_addr = self.source.map(|ip| SocketAddr::new(ip, 0));
        }
        let mut opts = ResolverOpts::default();
        opts.cache_size = 0;
        opts.attempts = 1;
        opts.timeout = self.timeout;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ndots = 0;
        let config = ResolverConfig::from_name_servers(vec![ns]);
        Resolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(|e| Failure::new(FailureKind::DnsAnswer, format!("resolver setup: {e}")))
    }

    async fn once(&self) -> Result<(), Failure> {
        let resolver = self.resolver()?;
        let lookup = resolver
            .lookup(self.name.as_str(), self.record_type)
            .await
            .map_err(|e| self.failure(&e))?;
        let answers: Vec<String> = lookup
            .answers()
            .iter()
            .filter(|r| r.record_type() == self.record_type)
            .map(|r| normalize(&r.data.to_string()))
            .collect();
        judge(&self.name, self.expect.as_deref(), &answers)
    }

    fn failure(&self, e: &NetError) -> Failure {
        let kind = match e {
            NetError::Timeout => FailureKind::Timeout,
            NetError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                FailureKind::Refused
            }
            NetError::Io(_) | NetError::NoConnections => FailureKind::Connect,
            NetError::Dns(DnsError::NoRecordsFound(_) | DnsError::ResponseCode(_)) => {
                FailureKind::DnsAnswer
            }
            _ => FailureKind::DnsAnswer,
        };
        Failure::new(
            kind,
            format!(
                "{} {:?} from {}: {e}",
                self.name, self.record_type, self.server
            ),
        )
    }
}

impl Check for DnsCheckRunner {
    fn run(&self) -> CheckFuture<'_> {
        Box::pin(self.once())
    }
}

/// Up when there are answers and, if `expect` is given, one equals it.
fn judge(name: &str, expect: Option<&str>, answers: &[String]) -> Result<(), Failure> {
    if answers.is_empty() {
        return Err(Failure::new(
            FailureKind::DnsAnswer,
            format!("{name}: empty answer"),
        ));
    }
    match expect {
        Some(want) if !answers.iter().any(|a| a == want) => Err(Failure::new(
            FailureKind::DnsAnswer,
            format!("{name}: answer {answers:?} lacks {want:?}"),
        )),
        _ => Ok(()),
    }
}

/// Record data compared case-insensitively, with or without a final dot.
fn normalize(data: &str) -> String {
    data.trim().trim_end_matches('.').to_ascii_lowercase()
}

fn record_type(t: DnsRecordType) -> RecordType {
    match t {
        DnsRecordType::A => RecordType::A,
        DnsRecordType::Aaaa => RecordType::AAAA,
        DnsRecordType::Cname => RecordType::CNAME,
        DnsRecordType::Txt => RecordType::TXT,
        DnsRecordType::Mx => RecordType::MX,
        DnsRecordType::Ns => RecordType::NS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_judged() {
        let answers = vec!["192.0.2.1".to_string(), "192.0.2.2".to_string()];
        assert!(judge("a.", None, &answers).is_ok());
        assert!(judge("a.", Some("192.0.2.2"), &answers).is_ok());
        let err = judge("a.", Some("192.0.2.3"), &answers).unwrap_err();
        assert_eq!(err.kind, FailureKind::DnsAnswer);
        assert!(judge("a.", None, &[]).is_err());
    }

    #[test]
    fn names_compare_without_case_or_final_dot() {
        assert_eq!(normalize("Api.Example.com."), "api.example.com");
        assert_eq!(normalize(" 192.0.2.1 "), "192.0.2.1");
    }
}
