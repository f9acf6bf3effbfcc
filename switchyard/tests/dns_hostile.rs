//! Hostile input against the fast path and the hickory fallback behind
//! it: random bytes, truncated, oversized, pointer-looping and mutated
//! queries. Each packet goes to the fast server and to hickory's own UDP
//! server: the fast one must answer exactly as hickory does (byte for
//! byte when hickory answers on both sides, by content when the fast path
//! answers), an unparsable packet gets a FORMERR or nothing, and after
//! every packet — and after a flood of them — the server still answers.

use crate::fast_support;

use std::time::Duration;

use fast_support::{Match, Pair, ZONE, differ, query, show};
use hickory_server::proto::op::{Message, ResponseCode};
use hickory_server::proto::rr::RecordType;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Valid queries the mutations start from.
fn seeds() -> Vec<Vec<u8>> {
    let api = format!("api.{ZONE}");
    vec![
        query(&api, RecordType::A, |_| {}),
        query(&format!("nx.{ZONE}"), RecordType::AAAA, |_| {}),
        query(ZONE, RecordType::SOA, fast_support::edns),
        query(&api, RecordType::ANY, fast_support::edns),
    ]
}

/// A header asking one question, followed by `rest`.
fn with_header(rest: &[u8]) -> Vec<u8> {
    let mut p = vec![0x66, 0x66, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    p.extend_from_slice(rest);
    p
}

/// Packets whose names loop or point outside the packet.
fn pointer_packets() -> Vec<Vec<u8>> {
    vec![
        // The name is a pointer to itself.
        with_header(&[0xC0, 0x0C, 0, 1, 0, 1]),
        // A label, then a pointer back to the label: a cycle.
        with_header(&[3, b'a', b'p', b'i', 0xC0, 0x0C, 0, 1, 0, 1]),
        // Two pointers pointing at each other.
        with_header(&[0xC0, 0x0E, 0xC0, 0x0C, 0, 1, 0, 1]),
        // A pointer past the end.
        with_header(&[0xC3, 0xFF, 0, 1, 0, 1]),
        // A pointer into the header.
        with_header(&[0xC0, 0x02, 0, 1, 0, 1]),
        // Extended label type 0x40 and the reserved 0x80.
        with_header(&[0x41, 0, 0, 1, 0, 1]),
        with_header(&[0x81, 0, 0, 1, 0, 1]),
        // A label longer than the packet.
        with_header(&[63, b'a', b'b']),
    ]
}

fn hostile() -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds();
    let n = seeds.len();
    prop_oneof![
        // Random bytes, short and long.
        proptest::collection::vec(any::<u8>(), 0..600),
        // A valid query cut short.
        (0..n, any::<prop::sample::Index>()).prop_map({
            let seeds = seeds.clone();
            move |(i, at)| {
                let s = &seeds[i];
                s[..at.index(s.len())].to_vec()
            }
        }),
        // A valid query with bytes flipped.
        (
            0..n,
            proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)
        )
            .prop_map({
                let seeds = seeds.clone();
                move |(i, flips)| {
                    let mut s = seeds[i].clone();
                    let len = s.len();
                    for (at, byte) in flips {
                        s[at.index(len)] = byte;
                    }
                    s
                }
            }),
        // A valid query with garbage after it, past the 4096-byte buffer.
        (0..n, 1usize..6000).prop_map(move |(i, extra)| {
            let mut s = seeds[i].clone();
            s.extend((0..extra).map(|k| k as u8));
            s
        }),
        // Names that loop.
        (0..pointer_packets().len()).prop_map(|i| pointer_packets()[i].clone()),
    ]
}

/// The fast server answers `packet` as hickory does, and then still
/// answers a plain query right.
async fn check(pair: &Pair, packet: &[u8]) -> anyhow::Result<()> {
    let before = pair.counts();
    let (fast, slow) = pair.ask(packet).await?;
    let by_fast = pair.counts().fast > before.fast;
    let how = if by_fast {
        Match::Content
    } else {
        Match::Bytes
    };
    if let Some(d) = differ(&fast, &slow, how) {
        anyhow::bail!("packet {packet:02x?}: {d}");
    }
    if Message::from_vec(packet).is_err()
        && let Some(r) = &fast
    {
        let m = Message::from_vec(r);
        anyhow::ensure!(
            m.as_ref()
                .is_ok_and(|m| m.metadata.response_code == ResponseCode::FormErr),
            "unparsable packet {packet:02x?} got {}",
            show(r)
        );
    }
    still_answers(pair).await
}

async fn still_answers(pair: &Pair) -> anyhow::Result<()> {
    let probe = query(&format!("api.{ZONE}"), RecordType::A, |_| {});
    let got = fast_support::exchange(pair.fast_addr(), &probe).await?;
    let ok = got
        .as_deref()
        .and_then(|r| Message::from_vec(r).ok())
        .is_some_and(|m| m.answers.len() == 1 && m.metadata.response_code == ResponseCode::NoError);
    anyhow::ensure!(ok, "the server stopped answering: {got:02x?}");
    Ok(())
}

#[test]
fn hostile_packets_get_what_hickory_gives_them_and_the_server_keeps_answering() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let pair = rt
        .block_on(Pair::start([100, 0, 0], true))
        .expect("servers");
    for p in pointer_packets() {
        rt.block_on(check(&pair, &p)).expect("pointer packet");
    }
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&hostile(), |packet| {
            rt.block_on(check(&pair, &packet))
                .map_err(|e| TestCaseError::fail(e.to_string()))
        })
        .expect("hostile packets");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_garbage_from_many_ports_leaves_every_worker_answering() -> anyhow::Result<()> {
    let pair = Pair::start([100, 0, 0], true).await?;
    // 64 sockets (so both SO_REUSEPORT workers get some), 200 packets
    // each, sent without waiting: random-looking bytes, loops, truncations.
    let mut garbage: Vec<Vec<u8>> = pointer_packets();
    for s in seeds() {
        for cut in 0..s.len() {
            garbage.push(s[..cut].to_vec());
        }
    }
    garbage.push(vec![0xFF; 4096]);
    garbage.push(vec![0; 9000]);
    let mut sockets = Vec::new();
    for _ in 0..64 {
        let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        for k in 0..200 {
            let _ = s
                .send_to(&garbage[k % garbage.len()], pair.fast_addr())
                .await;
        }
        sockets.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Every source socket still gets answers (each hashes to one worker).
    let probe = query(&format!("api.{ZONE}"), RecordType::A, |_| {});
    for s in &sockets {
        // Drain what the flood got back, then ask.
        let mut buf = [0u8; 4096];
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(1), s.recv_from(&mut buf)).await
        {}
        s.send_to(&probe, pair.fast_addr()).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let (n, _) = tokio::time::timeout_at(deadline, s.recv_from(&mut buf)).await??;
            if buf[..2] == probe[..2] && n > 12 && buf[3] & 0x0F == 0 && buf[7] == 1 {
                break;
            }
        }
    }
    anyhow::ensure!(
        pair.counts().slow > 1000,
        "the flood reached hickory: {:?}",
        pair.counts()
    );
    Ok(())
}
