//! Every check kind against a real server on loopback: what counts as up,
//! and the reason given when it is down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use switchyard_probes::checks::{CheckContext, build};
use switchyard_probes::{
    CheckKind, CheckSpec, DnsCheck, DnsRecordType, FailureKind, GrpcCheck, HttpCheck, TcpCheck,
};
use switchyard_tests::{HttpMode, HttpTarget};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

fn spec(kind: CheckKind) -> CheckSpec {
    CheckSpec {
        name: "c".into(),
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(500),
        kind,
    }
}

/// Runs `kind` once (under its timeout, as the scheduler would).
async fn run(kind: CheckKind, ctx: &CheckContext) -> Result<(), FailureKind> {
    let s = spec(kind);
    let check = build(&s, ctx).expect("builds");
    match tokio::time::timeout(s.timeout, check.run()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(f)) => {
            println!("down: {f}");
            Err(f.kind)
        }
        Err(_) => Err(FailureKind::Timeout),
    }
}

fn plain() -> CheckContext {
    CheckContext::new(None, None).expect("context")
}

fn http(url: &str, f: impl FnOnce(&mut HttpCheck)) -> CheckKind {
    let mut c = HttpCheck::get(url);
    f(&mut c);
    CheckKind::Http(c)
}

#[tokio::test]
async fn http_status_body_and_latency() -> anyhow::Result<()> {
    let t = HttpTarget::start().await?;
    let ctx = plain();
    assert_eq!(run(http(&t.url(), |_| {}), &ctx).await, Ok(()));
    assert_eq!(
        run(
            http(&t.url(), |c| c.body_contains = Some("ok".into())),
            &ctx
        )
        .await,
        Ok(())
    );
    assert_eq!(
        run(
            http(&t.url(), |c| c.body_contains = Some("nope".into())),
            &ctx
        )
        .await,
        Err(FailureKind::Body)
    );
    assert_eq!(
        run(http(&t.url(), |c| c.expect_status = 204), &ctx).await,
        Err(FailureKind::Status)
    );
    assert_eq!(
        run(
            http(&t.url(), |c| c.max_latency = Some(Duration::from_nanos(1))),
            &ctx
        )
        .await,
        Err(FailureKind::Latency)
    );
    t.set_mode(HttpMode::Failing).await?;
    assert_eq!(
        run(http(&t.url(), |_| {}), &ctx).await,
        Err(FailureKind::Status)
    );
    assert_eq!(
        run(http(&t.url(), |c| c.expect_status = 500), &ctx).await,
        Ok(()),
        "500 is up when 500 is expected"
    );
    t.set_mode(HttpMode::Hang).await?;
    assert_eq!(
        run(http(&t.url(), |_| {}), &ctx).await,
        Err(FailureKind::Timeout)
    );
    t.set_mode(HttpMode::Refuse).await?;
    assert_eq!(
        run(http(&t.url(), |_| {}), &ctx).await,
        Err(FailureKind::Refused)
    );
    Ok(())
}

#[tokio::test]
async fn http_sends_the_host_header_and_binds_the_source_address() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/health", listener.local_addr()?);
    let server = tokio::spawn(async move {
        let (mut s, peer) = listener.accept().await?;
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await?;
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .await?;
        anyhow::Ok((String::from_utf8_lossy(&buf[..n]).into_owned(), peer))
    });
    let ctx = CheckContext::new(Some("127.0.0.3".parse()?), None)?;
    let kind = http(&url, |c| c.host_header = Some("api.example.com".into()));
    assert_eq!(run(kind, &ctx).await, Ok(()));
    let (request, peer) = server.await??;
    assert!(request.starts_with("GET /health HTTP/1.1\r\n"), "{request}");
    assert!(
        request
            .to_ascii_lowercase()
            .contains("host: api.example.com\r\n"),
        "{request}"
    );
    assert_eq!(peer.ip().to_string(), "127.0.0.3");
    Ok(())
}

/// An HTTPS server on loopback with a certificate for `svc.test` from a CA
/// of its own; returns its address and the CA's PEM.
async fn https_server() -> anyhow::Result<(SocketAddr, String)> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate()?;
    let leaf = rcgen::CertificateParams::new(vec!["svc.test".to_string()])?
        .signed_by(&leaf_key, &issuer)?;
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der())
        .map_err(|e| anyhow::anyhow!(e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                if tls.read(&mut buf).await.is_ok() {
                    let _ = tls
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nsecure")
                        .await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    Ok((addr, ca_cert.pem()))
}

#[tokio::test]
async fn https_verifies_the_certificate_for_the_host_header_name() -> anyhow::Result<()> {
    let (addr, ca_pem) = https_server().await?;
    let url = format!("https://{addr}/");
    let trusting = CheckContext::new(None, Some(&ca_pem))?;
    let with_name = |c: &mut HttpCheck| {
        c.host_header = Some("svc.test".into());
        c.body_contains = Some("secure".into());
    };
    assert_eq!(run(http(&url, with_name), &trusting).await, Ok(()));
    // SNI/certificate name is the IP when no host header is given: mismatch.
    assert_eq!(
        run(http(&url, |_| {}), &trusting).await,
        Err(FailureKind::Tls)
    );
    // A CA the probe does not trust.
    assert_eq!(
        run(http(&url, with_name), &plain()).await,
        Err(FailureKind::Tls)
    );
    Ok(())
}

#[tokio::test]
async fn tcp_connects_or_is_refused() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let ctx = plain();
    let tcp = || {
        CheckKind::Tcp(TcpCheck {
            address: addr.clone(),
        })
    };
    assert_eq!(run(tcp(), &ctx).await, Ok(()));
    drop(listener);
    assert_eq!(run(tcp(), &ctx).await, Err(FailureKind::Refused));
    Ok(())
}

#[tokio::test]
async fn grpc_health_serving_not_serving_and_unknown() -> anyhow::Result<()> {
    use tonic_health::ServingStatus;
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("api", ServingStatus::Serving)
        .await;
    reporter
        .set_service_status("batch", ServingStatus::NotServing)
        .await;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let ctx = plain();
    let grpc = |service: Option<&str>| {
        CheckKind::Grpc(GrpcCheck {
            address: addr.clone(),
            service: service.map(str::to_string),
        })
    };
    assert_eq!(run(grpc(None), &ctx).await, Ok(()));
    assert_eq!(run(grpc(Some("api")), &ctx).await, Ok(()));
    assert_eq!(
        run(grpc(Some("batch")), &ctx).await,
        Err(FailureKind::NotServing)
    );
    assert_eq!(
        run(grpc(Some("nosuch")), &ctx).await,
        Err(FailureKind::NotServing)
    );
    server.abort();
    let _ = server.await;
    assert!(matches!(
        run(grpc(None), &ctx).await,
        Err(FailureKind::Refused | FailureKind::Connect)
    ));
    Ok(())
}

/// A one-name DNS server: `api.test.` A 192.0.2.10; anything else NXDOMAIN.
async fn dns_server() -> anyhow::Result<SocketAddr> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let addr = socket.local_addr()?;
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            if let Some(answer) = dns_answer(&buf[..n]) {
                let _ = socket.send_to(&answer, peer).await;
            }
        }
    });
    Ok(addr)
}

fn dns_answer(query: &[u8]) -> Option<Vec<u8>> {
    // Header (12 bytes), then one question: name, type (2), class (2).
    let mut end = 12;
    let mut labels = Vec::new();
    loop {
        let len = *query.get(end)? as usize;
        end += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(end..end + len)?).to_ascii_lowercase());
        end += len;
    }
    let qtype = u16::from_be_bytes([*query.get(end)?, *query.get(end + 1)?]);
    end += 4;
    let found = labels == ["api", "test"] && qtype == 1;
    let mut out = query[..2].to_vec(); // id
    out.extend_from_slice(if found { &[0x85, 0x80] } else { &[0x85, 0x83] });
    out.extend_from_slice(&[0, 1, 0, u8::from(found), 0, 0, 0, 0]);
    out.extend_from_slice(&query[12..end]);
    if found {
        out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 10]);
    }
    Some(out)
}

#[tokio::test]
async fn dns_expects_an_answer_from_the_given_server() -> anyhow::Result<()> {
    let server = dns_server().await?;
    let ctx = plain();
    let dns = |name: &str, expect: Option<&str>| {
        CheckKind::Dns(DnsCheck {
            server,
            name: name.into(),
            record_type: DnsRecordType::A,
            expect: expect.map(str::to_string),
        })
    };
    assert_eq!(run(dns("api.test.", None), &ctx).await, Ok(()));
    assert_eq!(run(dns("api.test", Some("192.0.2.10")), &ctx).await, Ok(()));
    assert_eq!(
        run(dns("api.test.", Some("192.0.2.11")), &ctx).await,
        Err(FailureKind::DnsAnswer)
    );
    assert_eq!(
        run(dns("nosuch.test.", None), &ctx).await,
        Err(FailureKind::DnsAnswer)
    );
    // A server that never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").await?;
    let quiet = CheckKind::Dns(DnsCheck {
        server: silent.local_addr()?,
        name: "api.test.".into(),
        record_type: DnsRecordType::A,
        expect: None,
    });
    assert!(matches!(
        run(quiet, &ctx).await,
        Err(FailureKind::Timeout | FailureKind::Connect)
    ));
    Ok(())
}
