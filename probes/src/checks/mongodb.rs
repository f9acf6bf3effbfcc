//! `mongodb`: connect directly to one member, run `replSetGetStatus`, and
//! judge the member's state and lag ([`super::mongodb_status`]).
//!
//! A client is made for every run and shut down after it: the driver's
//! background monitoring would otherwise keep talking to the member between
//! runs, and a run must see the member as a new client would.

use std::time::Duration;

use mongodb::Client;
use mongodb::bson::doc;
use mongodb::error::ErrorKind;
use mongodb::options::{ClientOptions, Credential, ServerAddress};

use crate::plan::{MongoDbCheck, split_host_port};

use super::mongodb_status::judge;
use super::{Check, CheckFuture, Failure, FailureKind};

/// A built MongoDB member check.
#[derive(Debug, Clone)]
pub struct MongoDbCheckRunner {
    address: String,
    host: String,
    port: u16,
    credential: Option<(String, String)>,
    max_lag: Option<Duration>,
    timeout: Duration,
}

impl MongoDbCheckRunner {
    /// Builds the check; fails on an address that is not `host:port`.
    pub fn new(spec: &MongoDbCheck, timeout: Duration) -> Result<Self, String> {
        let (host, port) = split_host_port(&spec.address)?;
        Ok(MongoDbCheckRunner {
            address: spec.address.clone(),
            host,
            port,
            credential: spec
                .user
                .clone()
                .map(|u| (u, spec.password.clone().unwrap_or_default())),
            max_lag: spec.max_lag,
            timeout,
        })
    }

    fn options(&self) -> ClientOptions {
        let mut opts = ClientOptions::builder()
            .hosts(vec![ServerAddress::Tcp {
                host: self.host.clone(),
                port: Some(self.port),
            }])
            .direct_connection(true)
            .connect_timeout(self.timeout)
            .server_selection_timeout(self.timeout)
            .app_name("switchyard-probe".to_string())
            .build();
        if let Some((user, password)) = &self.credential {
            let mut cred = Credential::default();
            cred.username = Some(user.clone());
            cred.password = Some(password.clone());
            opts.credential = Some(cred);
        }
        opts
    }

    async fn once(&self) -> Result<(), Failure> {
        let client = Client::with_options(self.options()).map_err(|e| self.failure(&e))?;
        let reply = client
            .database("admin")
            .run_command(doc! { "replSetGetStatus": 1 })
            .await;
        client.shutdown().immediate(true).await;
        let reply = reply.map_err(|e| self.failure(&e))?;
        judge(&reply, self.max_lag)
    }

    fn failure(&self, e: &mongodb::error::Error) -> Failure {
        let kind = match e.kind.as_ref() {
            ErrorKind::Authentication { .. } => FailureKind::Auth,
            // 13 Unauthorized, 18 AuthenticationFailed.
            ErrorKind::Command(c) if matches!(c.code, 13 | 18) => FailureKind::Auth,
            // 94 NotYetInitialized, 76 NoReplicationEnabled.
            ErrorKind::Command(c) if matches!(c.code, 76 | 94) => FailureKind::MemberState,
            ErrorKind::ServerSelection { .. } | ErrorKind::Io(_) => FailureKind::Connect,
            _ => FailureKind::Protocol,
        };
        Failure::new(kind, format!("{}: {e}", self.address))
    }
}

impl Check for MongoDbCheckRunner {
    fn run(&self) -> CheckFuture<'_> {
        Box::pin(self.once())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_absent_server_is_down_within_the_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let check = MongoDbCheckRunner::new(
            &MongoDbCheck {
                address: addr.to_string(),
                user: None,
                password: None,
                max_lag: None,
            },
            Duration::from_millis(300),
        )
        .expect("builds");
        let started = std::time::Instant::now();
        let err = check.once().await.expect_err("nothing listens");
        assert_eq!(err.kind, FailureKind::Connect, "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
