//! `http`/`https`: one GET on a fresh connection (as blackbox_exporter,
//! Consul and Kubernetes do), so a target that stopped accepting connections
//! is seen, and TLS is verified on every run. HTTP/1.1 only; redirects are
//! not followed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, HOST, USER_AGENT};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::plan::HttpCheck;

use super::{Check, CheckContext, CheckFuture, Failure, FailureKind, net, tls};

/// Bytes of body read when looking for `body_contains`.
pub const BODY_LIMIT: usize = 64 * 1024;

const AGENT: &str = concat!("switchyard-probe/", env!("CARGO_PKG_VERSION"));

/// A parsed URL: where to connect and what to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequestPlan {
    /// TLS or not.
    pub https: bool,
    /// Host to connect to (name or IP, without brackets).
    pub host: String,
    /// Port to connect to.
    pub port: u16,
    /// Path and query sent in the request line.
    pub path: String,
    /// `Host` header value.
    pub host_header: String,
    /// TLS server name (SNI and certificate name).
    pub server_name: String,
}

impl HttpRequestPlan {
    /// Parses the check's URL and host header.
    pub fn parse(check: &HttpCheck) -> Result<Self, String> {
        let uri: Uri = check
            .url
            .parse()
            .map_err(|e| format!("url {:?}: {e}", check.url))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            other => {
                return Err(format!(
                    "url {:?}: scheme {other:?} is not http(s)",
                    check.url
                ));
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("url {:?} has no host", check.url))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".to_string());
        let host_header = check
            .host_header
            .clone()
            .unwrap_or_else(|| authority.as_str().to_string());
        let server_name = match &check.host_header {
            // A Host header may carry a port; the TLS name never does.
            Some(h) => strip_port(h).to_string(),
            None => host.clone(),
        };
        Ok(HttpRequestPlan {
            https,
            host,
            port,
            path,
            host_header,
            server_name,
        })
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split(']').next().map_or(host, |h| &h[1..]);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => h,
        _ => host,
    }
}

/// A built HTTP(S) check.
#[derive(Debug, Clone)]
pub struct HttpCheckRunner {
    req: HttpRequestPlan,
    expect_status: StatusCode,
    body_contains: Option<String>,
    max_latency: Option<Duration>,
    source: Option<std::net::IpAddr>,
    tls: Arc<rustls::ClientConfig>,
}

impl HttpCheckRunner {
    /// Builds the check; fails on a URL or status that can never work.
    pub fn new(spec: &HttpCheck, ctx: &CheckContext) -> Result<Self, String> {
        let expect_status = StatusCode::from_u16(spec.expect_status)
            .map_err(|e| format!("expect_status {}: {e}", spec.expect_status))?;
        Ok(HttpCheckRunner {
            req: HttpRequestPlan::parse(spec)?,
            expect_status,
            body_contains: spec.body_contains.clone(),
            max_latency: spec.max_latency,
            source: ctx.source_address,
            tls: ctx.tls.clone(),
        })
    }

    async fn once(&self) -> Result<(), Failure> {
        let start = Instant::now();
        let addr = net::resolve(&self.req.host, self.req.port).await?;
        let tcp = net::connect(addr, self.source).await?;
        if self.req.https {
            let name = tls::server_name(&self.req.server_name)?;
            let stream = TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| Failure::new(FailureKind::Tls, e.to_string()))?;
            self.exchange(TokioIo::new(stream), start).await
        } else {
            self.exchange(TokioIo::new(tcp), start).await
        }
    }

    async fn exchange<IO>(&self, io: IO, start: Instant) -> Result<(), Failure>
    where
        IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(io)
            .await
            .map_err(|e| hyper_failure("handshake", &e))?;
        let mut conn = std::pin::pin!(conn);
        let request = Request::get(self.req.path.as_str())
            .header(HOST, self.req.host_header.as_str())
            .header(USER_AGENT, AGENT)
            .header(CONNECTION, "close")
            .body(Empty::new())
            .map_err(|e| Failure::new(FailureKind::Protocol, format!("request: {e}")))?;
        let response: Response<Incoming> = drive(conn.as_mut(), async {
            sender
                .send_request(request)
                .await
                .map_err(|e| hyper_failure("request", &e))
        })
        .await?;
        let status = response.status();
        if status != self.expect_status {
            return Err(Failure::new(
                FailureKind::Status,
                format!("got {status}, expected {}", self.expect_status),
            ));
        }
        if let Some(needle) = &self.body_contains {
            let body = drive(conn.as_mut(), read_body(response.into_body())).await?;
            if !contains(&body, needle.as_bytes()) {
                return Err(Failure::new(
                    FailureKind::Body,
                    format!("body does not contain {needle:?}"),
                ));
            }
        }
        let took = start.elapsed();
        if let Some(max) = self.max_latency
            && took > max
        {
            return Err(Failure::new(
                FailureKind::Latency,
                format!("answered in {took:?}, limit {max:?}"),
            ));
        }
        Ok(())
    }
}

impl Check for HttpCheckRunner {
    fn run(&self) -> CheckFuture<'_> {
        Box::pin(self.once())
    }
}

/// Runs `fut` while driving the connection (in place, not spawned: when the
/// scheduler's timeout drops the check, the socket goes with it).
async fn drive<C, F, T>(mut conn: Pin<&mut C>, fut: F) -> Result<T, Failure>
where
    C: Future<Output = hyper::Result<()>>,
    F: Future<Output = Result<T, Failure>>,
{
    let mut fut = std::pin::pin!(fut);
    let mut conn_done = false;
    loop {
        tokio::select! {
            biased;
            out = &mut fut => return out,
            done = conn.as_mut(), if !conn_done => {
                conn_done = true;
                if let Err(e) = done {
                    return Err(hyper_failure("connection", &e));
                }
            }
        }
    }
}

async fn read_body(mut body: Incoming) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    while out.len() < BODY_LIMIT {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    out.extend_from_slice(data);
                }
            }
            Some(Err(e)) => return Err(hyper_failure("body", &e)),
        }
    }
    out.truncate(BODY_LIMIT);
    Ok(out)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn hyper_failure(what: &str, e: &hyper::Error) -> Failure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return net::io_failure(what, io);
        }
        source = s.source();
    }
    let kind = if e.is_incomplete_message() || e.is_closed() {
        FailureKind::Connect
    } else {
        FailureKind::Protocol
    };
    Failure::new(kind, format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(url: &str, host: Option<&str>) -> HttpRequestPlan {
        let mut c = HttpCheck::get(url);
        c.host_header = host.map(str::to_string);
        HttpRequestPlan::parse(&c).expect("parses")
    }

    #[test]
    fn urls_parse_into_connect_and_request_parts() {
        let p = plan("http://127.0.0.1:8080/health?x=1", None);
        assert_eq!(
            (p.https, p.host.as_str(), p.port),
            (false, "127.0.0.1", 8080)
        );
        assert_eq!(p.path, "/health?x=1");
        assert_eq!(p.host_header, "127.0.0.1:8080");

        let p = plan("https://api.example.com", None);
        assert_eq!((p.https, p.port, p.path.as_str()), (true, 443, "/"));
        assert_eq!(p.server_name, "api.example.com");

        let p = plan("https://[::1]:8443/", Some("api.example.com:8443"));
        assert_eq!(p.host, "::1");
        assert_eq!(p.host_header, "api.example.com:8443");
        assert_eq!(p.server_name, "api.example.com");
    }

    #[test]
    fn other_schemes_are_refused() {
        assert!(HttpRequestPlan::parse(&HttpCheck::get("ftp://x/")).is_err());
        assert!(HttpRequestPlan::parse(&HttpCheck::get("/relative")).is_err());
    }

    #[test]
    fn host_ports_are_stripped_for_tls() {
        assert_eq!(strip_port("a.example:443"), "a.example");
        assert_eq!(strip_port("a.example"), "a.example");
        assert_eq!(strip_port("[::1]:443"), "::1");
    }

    #[test]
    fn substring_search() {
        assert!(contains(b"status: ok", b"ok"));
        assert!(!contains(b"status: failing", b"ok!"));
        assert!(contains(b"", b""));
    }
}
