//! How the `switchyard` CLI reaches a cluster: the operator API of any
//! controller (`--server`, or the `[[controllers]]` of `--config`), over
//! mutual TLS when the cluster runs it, with a bearer token. The operator's
//! machine needs no etcd endpoint or credential: what the CLI may do is
//! what the token's role allows, and history names that identity.
//!
//! The token is read from a file (`--token-file`, `SWITCHYARD_TOKEN_FILE`)
//! or the environment (`SWITCHYARD_TOKEN`), never from the command line,
//! where `ps` would show it; it is never printed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::ops::OpsError;
use crate::api::operator::proto::operator_client::OperatorClient;

/// How long connecting to one controller may take before the next is tried.
const CONNECT: Duration = Duration::from_secs(2);

/// How long one call may take (a status pings the controllers that could
/// fence each primary, for up to a second each).
const CALL: Duration = Duration::from_secs(30);

/// The environment variable holding a token itself.
pub const TOKEN_ENV: &str = "SWITCHYARD_TOKEN";

/// Where the CLI finds the cluster and its credentials (the global
/// options of every operator command).
#[derive(Debug, Clone, Default)]
pub struct ApiArgs {
    /// The cluster's config: its controllers' addresses and `[tls]`.
    pub config: Option<PathBuf>,
    /// Controllers' gRPC URLs (or `host:port`), tried in order.
    pub servers: Vec<String>,
    /// The file holding this operator's token.
    pub token_file: Option<PathBuf>,
    /// The CA that signed the controllers' certificates (instead of the
    /// config's `[tls]`).
    pub ca_file: Option<PathBuf>,
    /// This operator's client certificate (mutual TLS).
    pub cert_file: Option<PathBuf>,
    /// Its key.
    pub key_file: Option<PathBuf>,
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(<redacted>)")
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A client of one controller's operator API.
pub type Api = OperatorClient<InterceptedService<Channel, Bearer>>;

/// The controllers to try, the TLS to reach them with, and the token.
#[derive(Debug, Clone)]
pub struct Remote {
    servers: Vec<String>,
    tls: Option<ClientTlsConfig>,
    bearer: Bearer,
}

fn invalid(field: &'static str, message: impl Into<String>) -> OpsError {
    OpsError::Invalid {
        field,
        message: message.into(),
    }
}

/// The token: `--token-file`'s content, else `$SWITCHYARD_TOKEN`; trimmed.
fn token(file: Option<&Path>) -> Result<String, OpsError> {
    let (text, from) = match file {
        Some(path) => (
            std::fs::read_to_string(path)
                .map_err(|e| invalid("token_file", format!("{}: {e}", path.display())))?,
            format!("token file {}", path.display()),
        ),
        None => match std::env::var(TOKEN_ENV) {
            Ok(t) => (t, format!("${TOKEN_ENV}")),
            Err(_) => {
                return Err(invalid(
                    "token",
                    format!(
                        "no operator token: pass --token-file FILE (or set \
                         SWITCHYARD_TOKEN_FILE), or set {TOKEN_ENV}; the operator API \
                         admits no anonymous call"
                    ),
                ));
            }
        },
    };
    let t = text.trim();
    if t.is_empty() {
        return Err(invalid("token", format!("{from} is empty")));
    }
    Ok(t.to_string())
}

/// TLS from `--ca-file` (and `--cert-file`/`--key-file`), else from the
/// config's `[tls]`, else none.
fn tls(
    args: &ApiArgs,
    cfg: Option<&crate::config::Config>,
) -> Result<Option<ClientTlsConfig>, OpsError> {
    if let Some(ca) = &args.ca_file {
        let read = |field: &'static str, path: &Path| {
            std::fs::read(path).map_err(|e| invalid(field, format!("{}: {e}", path.display())))
        };
        let mut tls =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read("ca_file", ca)?));
        match (&args.cert_file, &args.key_file) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(
                    read("cert_file", cert)?,
                    read("key_file", key)?,
                ));
            }
            (None, None) => {}
            _ => {
                return Err(invalid(
                    "cert_file",
                    "--cert-file and --key-file go together",
                ));
            }
        }
        return Ok(Some(tls));
    }
    if args.cert_file.is_some() || args.key_file.is_some() {
        return Err(invalid(
            "ca_file",
            "--cert-file and --key-file need --ca-file (the CA to check the controllers with)",
        ));
    }
    Ok(match cfg {
        Some(cfg) => crate::tls::client_config(cfg)?,
        None => None,
    })
}

/// `server` as a URL: `host:port` gets the scheme the TLS setting implies;
/// with TLS only `https://` is taken, so TLS is never dropped silently.
fn url(server: &str, tls: bool) -> Result<String, OpsError> {
    let url = if server.contains("://") {
        server.to_string()
    } else {
        format!("{}://{server}", if tls { "https" } else { "http" })
    };
    if tls {
        crate::tls::require_https(&url).map_err(|m| invalid("server", m))?;
    }
    Ok(url)
}

/// True for a status tonic made up because the connection broke (no
/// controller answered it). Under TLS 1.3 the client's handshake ends
/// before the controller has checked the client certificate: a refused
/// certificate then shows as the connection dropped under the first call,
/// which hyper reports as "operation was canceled".
fn is_transport(s: &tonic::Status) -> bool {
    match s.code() {
        tonic::Code::Unknown | tonic::Code::Unavailable => {
            s.message().starts_with("transport error")
        }
        tonic::Code::Cancelled => s.message() == "operation was canceled",
        _ => false,
    }
}

/// True for an `https://` URL, or one whose host is this machine.
fn is_loopback_or_tls(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let host = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    let host = host
        .rsplit_once(':')
        .map_or(host, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Remote {
    /// Reads what `args` names: the config (if any), the TLS files, the
    /// token. Nothing is contacted yet.
    pub fn from_args(args: &ApiArgs) -> Result<Self, OpsError> {
        crate::tls::install_crypto_provider();
        let cfg = args
            .config
            .as_deref()
            .map(|p| crate::config::load(p).map(|l| l.config))
            .transpose()?;
        let tls = tls(args, cfg.as_ref())?;
        let servers: Vec<String> = if args.servers.is_empty() {
            let Some(cfg) = &cfg else {
                return Err(invalid(
                    "server",
                    "no controller to ask: pass --server URL (or set SWITCHYARD_SERVER), or \
                     --config FILE (or SWITCHYARD_CONFIG) to use its [[controllers]]",
                ));
            };
            let listed: Vec<String> = cfg
                .controllers
                .iter()
                .filter(|c| c.listen.port() != 0)
                .map(|c| c.listen.to_string())
                .collect();
            if listed.is_empty() {
                return Err(invalid(
                    "server",
                    "the config's controllers listen on port 0 (any free port): pass --server \
                     with the address a controller printed",
                ));
            }
            listed
        } else {
            args.servers.clone()
        };
        let servers = servers
            .iter()
            .map(|s| url(s, tls.is_some()))
            .collect::<Result<Vec<_>, _>>()?;
        for s in servers.iter().filter(|s| !is_loopback_or_tls(s)) {
            eprintln!(
                "warning: {s} without TLS: your token crosses the network in plaintext (set \
                 [tls] in the config, or pass --ca-file, --cert-file and --key-file)"
            );
        }
        let token = token(args.token_file.as_deref())?;
        let header: MetadataValue<Ascii> = format!("Bearer {token}")
            .parse()
            .map_err(|_| invalid("token", "holds characters a header cannot carry"))?;
        Ok(Remote {
            servers,
            tls,
            bearer: Bearer(header),
        })
    }

    /// A client of the first controller that takes a connection.
    async fn connect_first(&self) -> Result<Api, OpsError> {
        let mut why = Vec::new();
        for server in &self.servers {
            match self.connect_one(server).await {
                Ok(api) => return Ok(api),
                Err(e) => why.push(format!("{server}: {e}")),
            }
        }
        Err(OpsError::Unreachable(why.join("; ")))
    }

    async fn connect_one(&self, server: &str) -> Result<Api, String> {
        let mut endpoint = Endpoint::from_shared(server.to_string())
            .map_err(|e| e.to_string())?
            .connect_timeout(CONNECT)
            .timeout(CALL);
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.clone())
                .map_err(|e| switchyard_probes::error::error_chain(&e))?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| switchyard_probes::error::error_chain(&e))?;
        Ok(OperatorClient::with_interceptor(
            channel,
            self.bearer.clone(),
        ))
    }

    /// Makes one call that may be repeated (a read, or a switch, which is
    /// one transaction that changes something or nothing): a controller
    /// that cannot be reached, or answers UNAVAILABLE (its etcd is out of
    /// reach), hands it to the next.
    pub async fn call<T>(
        &self,
        f: impl AsyncFnMut(Api) -> Result<tonic::Response<T>, tonic::Status>,
    ) -> Result<T, OpsError> {
        self.call_from(0, f).await.map(|(_, t)| t)
    }

    /// [`Self::call`], trying the controllers from the `start`th on (then
    /// the ones before it): the answer and which controller gave it.
    pub async fn call_from<T>(
        &self,
        start: usize,
        mut f: impl AsyncFnMut(Api) -> Result<tonic::Response<T>, tonic::Status>,
    ) -> Result<(usize, T), OpsError> {
        let n = self.servers.len();
        let mut why = Vec::new();
        for k in 0..n {
            let i = (start + k) % n;
            let api = match self.connect_one(&self.servers[i]).await {
                Ok(api) => api,
                Err(e) => {
                    why.push(format!("{}: {e}", self.servers[i]));
                    continue;
                }
            };
            match f(api).await {
                Ok(r) => return Ok((i, r.into_inner())),
                // The connection failed under the call (a TLS handshake
                // the controller refused, a reset): as unreachable.
                Err(s) if is_transport(&s) => {
                    why.push(format!(
                        "{}: {}{}",
                        self.servers[i],
                        s.message(),
                        if self.tls.is_some() {
                            " (under [tls] the controller admits only a client certificate of \
                             its CA: check --cert-file/--key-file or the config's [tls])"
                        } else {
                            ""
                        }
                    ));
                }
                Err(s) if s.code() == tonic::Code::Unavailable && k + 1 < n => {
                    why.push(format!("{}: {}", self.servers[i], s.message()));
                }
                Err(s) if s.code() == tonic::Code::Unavailable && !why.is_empty() => {
                    why.push(format!("{}: {}", self.servers[i], s.message()));
                    return Err(OpsError::Unreachable(why.join("; ")));
                }
                Err(s) => return Err(OpsError::Api(s)),
            }
        }
        Err(OpsError::Unreachable(why.join("; ")))
    }

    /// The number of controllers to try.
    pub fn servers(&self) -> usize {
        self.servers.len()
    }

    /// Makes one call that must not be repeated (a request handed to the
    /// leader, a cancel): to the first controller that takes a connection
    /// only. An error after that may or may not have changed something;
    /// the caller says so rather than trying again.
    pub async fn call_once<T>(
        &self,
        f: impl AsyncFnOnce(Api) -> Result<tonic::Response<T>, tonic::Status>,
    ) -> Result<T, OpsError> {
        let api = self.connect_first().await?;
        f(api)
            .await
            .map(tonic::Response::into_inner)
            .map_err(OpsError::Api)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_address_gets_the_scheme_tls_implies_and_tls_takes_https_only() {
        assert_eq!(url("10.0.0.1:7400", false).unwrap(), "http://10.0.0.1:7400");
        assert_eq!(url("10.0.0.1:7400", true).unwrap(), "https://10.0.0.1:7400");
        assert!(url("http://10.0.0.1:7400", true).is_err());
        assert_eq!(url("http://h:1", false).unwrap(), "http://h:1");
    }

    #[test]
    fn plaintext_is_quiet_only_on_this_machine() {
        assert!(is_loopback_or_tls("http://127.0.0.1:7400"));
        assert!(is_loopback_or_tls("http://[::1]:7400"));
        assert!(is_loopback_or_tls("http://localhost:7400"));
        assert!(is_loopback_or_tls("https://10.0.0.1:7400"));
        assert!(!is_loopback_or_tls("http://10.0.0.1:7400"));
        assert!(!is_loopback_or_tls("http://ctl.example.com:7400"));
    }

    #[test]
    fn a_token_file_is_trimmed_and_an_empty_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t");
        std::fs::write(&f, "s3cret\n").unwrap();
        assert_eq!(token(Some(&f)).unwrap(), "s3cret");
        std::fs::write(&f, " \n").unwrap();
        let e = token(Some(&f)).unwrap_err().to_string();
        assert!(e.contains("is empty"), "{e}");
        let e = token(Some(&dir.path().join("none")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("none"), "{e}");
    }

    #[test]
    fn a_connection_dropped_under_a_call_is_told_from_an_answer() {
        use tonic::{Code, Status};
        let table = [
            (Status::unavailable("transport error"), true),
            (Status::unknown("transport error: connection reset"), true),
            // A client certificate refused after a TLS 1.3 handshake.
            (Status::cancelled("operation was canceled"), true),
            // Answers a controller gave.
            (Status::unavailable("etcd unavailable: timed out"), false),
            (Status::cancelled("request cancelled by alice"), false),
            (
                Status::new(Code::PermissionDenied, "transport error"),
                false,
            ),
        ];
        for (status, want) in table {
            assert_eq!(is_transport(&status), want, "{status:?}");
        }
    }

    #[test]
    fn the_bearer_never_shows_the_token() {
        let b = Bearer("Bearer s3cret".parse().unwrap());
        assert!(!format!("{b:?}").contains("s3cret"));
    }

    #[test]
    fn no_server_and_no_config_is_an_error_that_says_what_to_pass() {
        let e = Remote::from_args(&ApiArgs::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("--server"), "{e}");
    }
}
