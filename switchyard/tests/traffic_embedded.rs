//! The embedded authoritative server, queried with `dig` (and, for load
//! during weight changes, a raw UDP client): weighted shares over 10,000
//! queries, a weight change seen by the next query with no query lost,
//! SOA/NS, NXDOMAIN, NODATA, REFUSED, TTL from the config, TCP, the
//! "all records" answer mode and a writer record moved to a CNAME.

use crate::traffic_support;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hickory_server::proto::rr::RecordType as DnsType;
use switchyard_controller::config::{AnswerMode, RecordType};
use switchyard_controller::traffic::conformance::Subject;
use switchyard_controller::traffic::embedded::{EmbeddedBackend, NameServer};
use switchyard_controller::traffic::records::WeightedRecord;
use switchyard_controller::traffic::{RecordChange, TrafficBackend, TrafficChange, WriterChange};
use switchyard_tests::paths::system_bin;
use traffic_support::dns::Client;

const ZONE: &str = "example.com.";

async fn server() -> anyhow::Result<(EmbeddedBackend, SocketAddr, Subject)> {
    let s = Subject::new(ZONE);
    let mut book = s.book();
    // `all.example.com.`: every region of weight > 0, in weighted order.
    book.insert_weighted(WeightedRecord {
        name: format!("all.{ZONE}"),
        kind: RecordType::A,
        ttl: 45,
        answer: AnswerMode::All,
        values: s
            .regions
            .iter()
            .enumerate()
            .map(|(i, r)| (r.clone(), format!("198.51.100.{}", i + 1)))
            .collect(),
    });
    // A record two labels below the apex, so `svc.example.com.` is an
    // empty non-terminal.
    book.insert_weighted(WeightedRecord {
        name: format!("api.svc.{ZONE}"),
        kind: RecordType::A,
        ttl: 30,
        answer: AnswerMode::One,
        values: [(s.regions[0].clone(), "203.0.113.1".to_string())].into(),
    });
    let ns = [NameServer {
        name: format!("ns1.{ZONE}"),
        address: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    }];
    let b =
        EmbeddedBackend::serve(ZONE, &ns, book, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let addr = b
        .addr()
        .ok_or_else(|| anyhow::anyhow!("no server address"))?;
    Ok((b, addr, s))
}

fn weights(s: &Subject, w: [u32; 3]) -> Vec<RecordChange> {
    vec![RecordChange {
        record: s.record(),
        weights: s.regions.iter().cloned().zip(w).collect(),
    }]
}

/// Runs `dig @addr -p port args…` and returns its output.
async fn dig(addr: SocketAddr, args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::process::Command::new(system_bin("dig")?)
        .arg(format!("@{}", addr.ip()))
        .arg("-p")
        .arg(addr.port().to_string())
        .args(["+tries=1", "+time=2"])
        .args(args)
        .kill_on_drop(true)
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "dig {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The values of the answer section of one `dig +short` run.
async fn dig_short(addr: SocketAddr, name: &str, t: &str) -> anyhow::Result<Vec<String>> {
    Ok(dig(addr, &["+short", name, t])
        .await?
        .lines()
        .map(str::to_string)
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_dig_queries_follow_60_30_10() -> anyhow::Result<()> {
    let (b, addr, s) = server().await?;
    b.apply(&weights(&s, [60, 30, 10])).await?;
    // One dig process runs the 10,000 queries from a batch file.
    let dir = tempfile::tempdir()?;
    let batch = dir.path().join("queries");
    let line = format!("{} A\n", s.record());
    std::fs::write(&batch, line.repeat(10_000))?;
    let out = dig(addr, &["+short", "-f", &batch.display().to_string()]).await?;
    let mut n: BTreeMap<String, usize> = BTreeMap::new();
    for l in out.lines() {
        *n.entry(l.to_string()).or_default() += 1;
    }
    let total: usize = n.values().sum();
    assert_eq!(total, 10_000, "one answer per query: {n:?}");
    for (i, want) in [60.0, 30.0, 10.0].iter().enumerate() {
        let got = n.get(&s.value(i)).copied().unwrap_or(0) as f64 / 100.0;
        assert!(
            (got - want).abs() <= 2.0,
            "{}: {got}% vs {want}% ({n:?})",
            s.regions[i]
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weight_change_shows_on_the_next_query_and_no_query_is_lost() -> anyhow::Result<()> {
    let (b, addr, s) = server().await?;
    // Load from a raw UDP client all along: every query must be answered.
    let stop = Arc::new(AtomicBool::new(false));
    let (asked, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (stop, asked, failed, name) = (stop.clone(), asked.clone(), failed.clone(), s.record());
        tokio::spawn(async move {
            let Ok(mut c) = Client::new(addr).await else {
                failed.fetch_add(1, Ordering::SeqCst);
                return;
            };
            while !stop.load(Ordering::SeqCst) {
                asked.fetch_add(1, Ordering::SeqCst);
                match c.ask(&name, DnsType::A).await {
                    Ok(a) if a.answers.len() == 1 => {}
                    _ => {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        })
    };
    for (round, region) in [0usize, 1, 2, 0, 1].into_iter().enumerate() {
        let mut w = [0u32; 3];
        w[region] = 100;
        b.apply(&weights(&s, w)).await?;
        let got = dig_short(addr, &s.record(), "A").await?;
        assert_eq!(got, vec![s.value(region)], "round {round}");
    }
    stop.store(true, Ordering::SeqCst);
    load.await?;
    assert!(asked.load(Ordering::SeqCst) > 100, "the load ran");
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "a query was dropped or wrong"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soa_ns_nxdomain_nodata_refused_and_ttl_are_right() -> anyhow::Result<()> {
    let (b, addr, s) = server().await?;
    b.apply(&weights(&s, [1, 0, 0])).await?;

    let soa = dig(addr, &["example.com.", "SOA"]).await?;
    assert!(soa.contains("status: NOERROR"), "{soa}");
    assert!(soa.contains(" aa"), "authoritative: {soa}");
    assert!(
        soa.contains("IN\tSOA\tns1.example.com. hostmaster.example.com."),
        "{soa}"
    );

    let ns = dig_short(addr, "example.com.", "NS").await?;
    assert_eq!(ns, vec!["ns1.example.com.".to_string()]);
    let glue = dig_short(addr, "ns1.example.com.", "A").await?;
    assert_eq!(glue, vec!["127.0.0.1".to_string()]);

    let nx = dig(addr, &["nope.example.com.", "A"]).await?;
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    assert!(nx.contains("AUTHORITY: 1") && nx.contains("SOA"), "{nx}");

    let nodata = dig(addr, &[&s.record(), "AAAA"]).await?;
    assert!(nodata.contains("status: NOERROR"), "{nodata}");
    assert!(
        nodata.contains("ANSWER: 0") && nodata.contains("AUTHORITY: 1"),
        "{nodata}"
    );

    let ent = dig(addr, &["svc.example.com.", "A"]).await?;
    assert!(
        ent.contains("status: NOERROR") && ent.contains("ANSWER: 0"),
        "empty non-terminal: {ent}"
    );

    let refused = dig(addr, &["www.example.org.", "A"]).await?;
    assert!(refused.contains("status: REFUSED"), "{refused}");

    let answer = dig(addr, &["+noall", "+answer", &s.record(), "A"]).await?;
    assert_eq!(
        answer.split_whitespace().collect::<Vec<_>>(),
        vec![s.record().as_str(), "30", "IN", "A", "192.0.2.1"],
        "TTL from the config"
    );

    let tcp = dig_short(addr, &s.record(), "A").await?;
    let over_tcp = dig(addr, &["+tcp", "+short", &s.record(), "A"]).await?;
    assert_eq!(
        over_tcp.lines().collect::<Vec<_>>(),
        tcp.iter().map(String::as_str).collect::<Vec<_>>()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_all_lists_every_nonzero_record_heaviest_first_most_often() -> anyhow::Result<()> {
    let (b, addr, s) = server().await?;
    let name = format!("all.{ZONE}");
    b.apply(&[RecordChange {
        record: name.clone(),
        weights: s.regions.iter().cloned().zip([90, 10, 0]).collect(),
    }])
    .await?;
    let mut c = Client::new(addr).await?;
    let mut heavy_first = 0;
    for _ in 0..1_000 {
        let a = c.ask(&name, DnsType::A).await?;
        assert_eq!(a.answers.len(), 2, "{a:?}");
        assert!(
            !a.answers.iter().any(|v| v.ends_with("198.51.100.3")),
            "{a:?}"
        );
        assert!(a.ttls.iter().all(|t| *t == 45));
        if a.answers[0].ends_with("198.51.100.1") {
            heavy_first += 1;
        }
    }
    assert!(
        (850..=950).contains(&heavy_first),
        "{heavy_first} of 1000 first"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_record_moves_with_the_weights_in_one_change() -> anyhow::Result<()> {
    let (b, addr, s) = server().await?;
    assert!(
        dig_short(addr, &s.writer(), "A").await?.is_empty(),
        "unset: NODATA"
    );
    b.apply_change(&TrafficChange {
        records: weights(&s, [0, 100, 0]),
        writers: vec![WriterChange {
            record: s.writer(),
            member: "m2".into(),
        }],
        force: false,
    })
    .await?;
    assert_eq!(
        dig_short(addr, &s.writer(), "A").await?,
        vec!["db2.example.net.".to_string()]
    );
    assert_eq!(
        dig_short(addr, &s.writer(), "CNAME").await?,
        vec!["db2.example.net.".to_string()]
    );
    assert_eq!(dig_short(addr, &s.record(), "A").await?, vec![s.value(1)]);
    Ok(())
}
