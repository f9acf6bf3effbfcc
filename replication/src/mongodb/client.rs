//! Talking to one MongoDB member: a direct connection (no discovery, so a
//! command reaches exactly the member named), every command bounded by a
//! timeout, driver errors turned into [`ReplError`]s.

use std::time::Duration;

use mongodb::Client;
use mongodb::bson::Document;
use mongodb::error::ErrorKind;
use mongodb::options::{ClientOptions, Credential, ServerAddress};

use crate::error::ReplError;
use crate::spec::{MemberSpec, split_address};

/// MongoDB error codes meaning "you may not": `Unauthorized`,
/// `AuthenticationFailed`.
const ACCESS_DENIED: &[i32] = &[13, 18];

/// A member and the driver client bound to it.
#[derive(Debug, Clone)]
pub struct MemberClient {
    spec: MemberSpec,
    client: Client,
    timeout: Duration,
}

impl MemberClient {
    /// Builds the client (no I/O happens until the first command).
    pub fn new(spec: &MemberSpec, timeout: Duration) -> Result<Self, ReplError> {
        let (host, port) = split_address(&spec.address).ok_or_else(|| ReplError::InvalidSpec {
            detail: format!(
                "member {}: address {:?} is not host:port",
                spec.id, spec.address
            ),
        })?;
        let credential = Credential::builder()
            .username(spec.credentials.user.clone())
            .password(spec.credentials.password.clone())
            .source("admin".to_string())
            .build();
        let mut opts = ClientOptions::default();
        opts.hosts = vec![ServerAddress::Tcp {
            host,
            port: Some(port),
        }];
        opts.direct_connection = Some(true);
        opts.credential = Some(credential);
        opts.connect_timeout = Some(timeout);
        opts.server_selection_timeout = Some(timeout);
        opts.app_name = Some("switchyard".to_string());
        let client = Client::with_options(opts).map_err(|e| ReplError::InvalidSpec {
            detail: format!("member {}: {e}", spec.id),
        })?;
        Ok(Self {
            spec: spec.clone(),
            client,
            timeout,
        })
    }

    /// The time limit of one command (and of connecting).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The member's spec.
    pub fn spec(&self) -> &MemberSpec {
        &self.spec
    }

    /// Runs `command` on the `admin` database, within the timeout plus
    /// `extra` (for commands that wait, like a step-down's catch-up).
    pub async fn run(&self, command: Document, extra: Duration) -> Result<Document, ReplError> {
        let name = command.keys().next().cloned().unwrap_or_default();
        let limit = self.timeout + extra;
        let db = self.client.database("admin");
        match switchyard_host::time::timeout(limit, db.run_command(command)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(self.classify(&name, &e)),
            Err(_) => Err(ReplError::Unreachable {
                member: self.spec.id.clone(),
                address: self.spec.address.clone(),
                detail: format!("{name}: no answer within {limit:?}"),
            }),
        }
    }

    fn classify(&self, name: &str, e: &mongodb::error::Error) -> ReplError {
        let member = self.spec.id.clone();
        match e.kind.as_ref() {
            ErrorKind::Authentication { message, .. } => ReplError::AccessDenied {
                member,
                user: self.spec.credentials.user.clone(),
                detail: message.clone(),
            },
            ErrorKind::Command(c) if ACCESS_DENIED.contains(&c.code) => ReplError::AccessDenied {
                member,
                user: self.spec.credentials.user.clone(),
                detail: format!("{} ({}): {}", c.code_name, c.code, c.message),
            },
            ErrorKind::Command(c) => ReplError::Command {
                member,
                statement: name.to_string(),
                detail: format!("{} ({}): {}", c.code_name, c.code, c.message),
            },
            ErrorKind::ServerSelection { .. } | ErrorKind::Io(_) => ReplError::Unreachable {
                member,
                address: self.spec.address.clone(),
                detail: e.to_string(),
            },
            _ => ReplError::Command {
                member,
                statement: name.to_string(),
                detail: e.to_string(),
            },
        }
    }
}
