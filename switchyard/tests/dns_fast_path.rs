//! The fast path against hickory, query by query: the same zone and
//! weights served by both, the same packet sent to each, the responses
//! compared byte for byte — or, where the fast path is deliberately more
//! compact (the SOA answer without hickory's NS records; pointers into a
//! mixed-case question), by content. The fast server's counters show which
//! cases the fast path itself answered, so a battery that only exercised
//! hickory on both sides would fail.

use crate::fast_support;

use fast_support::{Match, Pair, ZONE, differ, edns, query};
use hickory_server::proto::op::{Edns, OpCode};
use hickory_server::proto::rr::rdata::opt::EdnsOption;
use hickory_server::proto::rr::{DNSClass, RecordType};

/// One comparison: what is sent and whether the fast path (rather than
/// hickory behind it) must answer it. What hickory answers on both sides
/// must match byte for byte; what the fast path answers, by content
/// ([`Match::Content`]: it compresses names, hickory does not).
struct Case {
    what: String,
    packet: Vec<u8>,
    fast: bool,
}

fn case(what: impl Into<String>, packet: Vec<u8>, fast: bool) -> Case {
    Case {
        what: what.into(),
        packet,
        fast,
    }
}

fn name(label: &str) -> String {
    if label.is_empty() {
        ZONE.to_string()
    } else {
        format!("{label}.{ZONE}")
    }
}

/// Every (name, type) of the zone and around it, plain.
fn plain_cases() -> Vec<Case> {
    use RecordType::*;
    let mut cases = Vec::new();
    // Managed names, their own type: pre-encoded answers.
    for (label, t) in [
        ("api", A),
        ("web", A),
        ("v6", AAAA),
        ("api.svc", A),
        ("db", A),
    ] {
        cases.push(case(
            format!("{label} {t}"),
            query(&name(label), t, |_| {}),
            true,
        ));
    }
    // Managed names, other types: NODATA from the fast path.
    for label in ["api", "web", "v6", "api.svc", "db"] {
        for t in [
            AAAA, A, MX, TXT, NS, SOA, CNAME, SRV, PTR, HTTPS, SVCB, NULL,
        ] {
            let fast_kind = if label == "v6" { AAAA } else { A };
            if t == fast_kind {
                continue;
            }
            cases.push(case(
                format!("{label} {t}"),
                query(&name(label), t, |_| {}),
                true,
            ));
        }
    }
    // Names that do not exist: NXDOMAIN from the fast path, whatever the
    // type, however deep, below a managed name or a name server too.
    for label in [
        "nx",
        "deep.nx.nx",
        "x.api",
        "x.svc",
        "x.ns1",
        "a.b.c.d.e.f",
        "xapi",
    ] {
        for t in [A, AAAA, SOA, NS, MX, TXT, CNAME] {
            cases.push(case(
                format!("{label} {t}"),
                query(&name(label), t, |_| {}),
                true,
            ));
        }
    }
    // The SOA: fast, without hickory's NS records in the authority section.
    cases.push(case("apex SOA", query(ZONE, SOA, |_| {}), true));
    // hickory's: the rest of the apex, glue, an empty non-terminal,
    // "all records", meta types, outside the zone.
    for (label, t) in [
        ("", NS),
        ("", A),
        ("", MX),
        ("", ANY),
        ("ns1", A),
        ("ns1", AAAA),
        ("svc", A),
        ("all", A),
        ("api", ANY),
        ("nx", ANY),
        ("api", AXFR),
        ("api", IXFR),
        ("api", OPT),
        ("api", Unknown(200)),
        ("api", CAA),
        ("nx", CAA),
        ("api", Unknown(65280)),
    ] {
        cases.push(case(
            format!("{label:?} {t}"),
            query(&name(label), t, |_| {}),
            false,
        ));
    }
    for outside in ["www.example.org.", "example.", "com.", ".", "xexample.com."] {
        cases.push(case(
            format!("outside {outside}"),
            query(outside, A, |_| {}),
            false,
        ));
    }
    cases
}

/// The same questions with header and EDNS variations.
fn variant_cases() -> Vec<Case> {
    use RecordType::*;
    let api = name("api");
    let mut cases = vec![
        case(
            "no RD",
            query(&api, A, |m| m.metadata.recursion_desired = false),
            true,
        ),
        case(
            "CD",
            query(&api, A, |m| m.metadata.checking_disabled = true),
            true,
        ),
        case(
            "AD in query",
            query(&api, A, |m| m.metadata.authentic_data = true),
            true,
        ),
        case(
            "RA in query",
            query(&api, A, |m| m.metadata.recursion_available = true),
            true,
        ),
        case(
            "nx no RD",
            query(&name("nx"), A, |m| m.metadata.recursion_desired = false),
            true,
        ),
        case("EDNS", query(&api, A, edns), true),
        case("EDNS nx", query(&name("nx"), A, edns), true),
        case("EDNS NODATA", query(&api, AAAA, edns), true),
        case("EDNS SOA", query(ZONE, SOA, edns), true),
        case(
            "EDNS small payload",
            query(&api, A, |m| {
                let mut e = Edns::new();
                e.set_max_payload(100);
                m.set_edns(e);
            }),
            true,
        ),
        case(
            "EDNS cookie",
            query(&api, A, |m| {
                let mut e = Edns::new();
                e.options_mut()
                    .insert(EdnsOption::Unknown(10, vec![1, 2, 3, 4, 5, 6, 7, 8]));
                m.set_edns(e);
            }),
            true,
        ),
        case("EDNS ANY", query(&api, ANY, edns), false),
        case("EDNS glue", query(&name("ns1"), A, edns), false),
        case("EDNS outside", query("www.example.org.", A, edns), false),
        case(
            "EDNS DO",
            query(&api, A, |m| {
                let mut e = Edns::new();
                e.set_max_payload(4096).set_dnssec_ok(true);
                m.set_edns(e);
            }),
            true,
        ),
        case(
            "EDNS version 1",
            query(&api, A, |m| {
                let mut e = Edns::new();
                e.set_version(1);
                m.set_edns(e);
            }),
            false,
        ),
        case(
            "NOTIFY",
            query(&api, A, |m| m.metadata.op_code = OpCode::Notify),
            false,
        ),
        case(
            "UPDATE",
            query(&api, A, |m| m.metadata.op_code = OpCode::Update),
            false,
        ),
        case(
            "STATUS",
            query(&api, A, |m| m.metadata.op_code = OpCode::Status),
            false,
        ),
        case(
            "TC set",
            query(&api, A, |m| m.metadata.truncation = true),
            false,
        ),
        case(
            "class CH",
            query(&api, A, |m| {
                if let Some(q) = m.queries.first_mut() {
                    q.set_query_class(DNSClass::CH);
                }
            }),
            false,
        ),
        case("no question", query(&api, A, |m| m.queries.clear()), false),
        case(
            "two questions",
            query(&api, A, |m| {
                let q = m.queries[0].clone();
                m.queries.push(q);
            }),
            false,
        ),
    ];
    // A response is never answered, by either.
    let mut response = query(&api, A, |_| {});
    response[2] |= 0x80;
    cases.push(case("a response", response, false));
    // Trailing bytes after the question: hickory's to judge.
    let mut trailing = query(&api, A, |_| {});
    trailing.extend_from_slice(&[0, 0, 0]);
    cases.push(case("trailing bytes", trailing, false));
    // Case as sent is echoed; the fast path points into it.
    for (what, n) in [
        ("mixed case api", "ApI.ExAmPlE.CoM."),
        ("upper case nx", "NX.EXAMPLE.COM."),
        ("upper case apex", "EXAMPLE.COM."),
    ] {
        let t = if what.contains("apex") { SOA } else { A };
        cases.push(case(what, query(n, t, |_| {}), true));
    }
    cases
}

async fn run(pair: &Pair, cases: &[Case]) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    for c in cases {
        let before = pair.counts();
        let (fast, slow) = pair.ask(&c.packet).await?;
        let after = pair.counts();
        if slow.is_none() && c.fast {
            failures.push(format!("{}: hickory did not answer", c.what));
        }
        let how = if c.fast { Match::Content } else { Match::Bytes };
        if let Some(d) = differ(&fast, &slow, how) {
            failures.push(format!("{}: {d}", c.what));
        }
        let by_fast = after.fast > before.fast;
        if by_fast != c.fast {
            failures.push(format!(
                "{}: answered by the {} path, expected the {}",
                c.what,
                if by_fast { "fast" } else { "hickory" },
                if c.fast { "fast" } else { "hickory" }
            ));
        }
    }
    anyhow::ensure!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_matches_hickory() -> anyhow::Result<()> {
    // One region at 100: the weighted pick is deterministic on both sides.
    let pair = Pair::start([100, 0, 0], true).await?;
    run(&pair, &plain_cases()).await?;
    run(&pair, &variant_cases()).await?;
    // After a weight change both move to the new record.
    pair.set([0, 0, 100], true).await?;
    run(&pair, &plain_cases()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpointed_writer_record_and_all_zero_weights_match_hickory() -> anyhow::Result<()> {
    // Writer never moved: its name exists with no data — hickory's case.
    let pair = Pair::start([100, 0, 0], false).await?;
    let cases = vec![
        case(
            "db A unset",
            query(&name("db"), RecordType::A, |_| {}),
            false,
        ),
        case(
            "db AAAA unset",
            query(&name("db"), RecordType::AAAA, |_| {}),
            false,
        ),
    ];
    run(&pair, &cases).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_answers_follow_the_same_shares_as_hickory() -> anyhow::Result<()> {
    // By content: each answer is one of the records, in the weights'
    // proportions (the all-zero case is uniform, fail open).
    for weights in [[60, 30, 10], [0, 0, 0], [1, 0, 1]] {
        let pair = Pair::start(weights, true).await?;
        let packet = query(&name("api"), RecordType::A, |_| {});
        let total: u32 = weights.iter().sum();
        let want: Vec<f64> = weights
            .iter()
            .map(|w| {
                if total == 0 {
                    1.0 / 3.0
                } else {
                    f64::from(*w) / f64::from(total)
                }
            })
            .collect();
        for (side, addr) in [("fast", pair.fast_addr()), ("hickory", pair.slow_addr())] {
            let mut client = Client::new(addr).await?;
            let mut n = [0usize; 3];
            const N: usize = 3_000;
            for _ in 0..N {
                let answer = client.ask(&packet).await?;
                let i = (1..=3)
                    .find(|i| answer.ends_with(&[192, 0, 2, *i as u8]))
                    .ok_or_else(|| anyhow::anyhow!("{side}: unexpected answer {answer:02x?}"))?;
                n[i - 1] += 1;
            }
            for i in 0..3 {
                let got = n[i] as f64 / N as f64;
                anyhow::ensure!(
                    (got - want[i]).abs() < 0.04,
                    "{side} {weights:?}: region {i} got {got:.3}, want {:.3} ({n:?})",
                    want[i]
                );
            }
        }
    }
    Ok(())
}

/// Sends a packet and waits for the answer with its id, from one socket.
struct Client {
    socket: tokio::net::UdpSocket,
    id: u16,
}

impl Client {
    async fn new(addr: std::net::SocketAddr) -> anyhow::Result<Self> {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        socket.connect(addr).await?;
        Ok(Client { socket, id: 0 })
    }

    async fn ask(&mut self, packet: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.id = self.id.wrapping_add(1);
        let mut p = packet.to_vec();
        p[..2].copy_from_slice(&self.id.to_be_bytes());
        self.socket.send(&p).await?;
        let mut buf = [0u8; 1024];
        loop {
            let n = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                self.socket.recv(&mut buf),
            )
            .await??;
            if buf[..2] == self.id.to_be_bytes() {
                return Ok(buf[..n].to_vec());
            }
        }
    }
}
