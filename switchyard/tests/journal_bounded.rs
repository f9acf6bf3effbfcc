//! A bounded journal and history, on a real etcd and a real controller
//! process: a cluster whose etcd already holds 100,000 history events,
//! 1,000 finished intents and entries no version of ours can decode elects
//! a leader that acts within one lease TTL; `switchyard history` pages
//! through it (one range read of it would pass gRPC's 4 MiB cap); and the
//! leader's compaction brings both down to the configured retention without
//! touching what it cannot decode.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Backend, LEASE_TTL, RECORD, seed_weights, write_config_extra};
use etcd_client::{Client, GetOptions, Txn, TxnOp};
use switchyard_tests::wait::wait_for;
use switchyard_tests::{ControllerProcess, Etcd};

const HISTORY_EVENTS: usize = 100_000;
const FINISHED_INTENTS: usize = 1_000;
const KEEP_FINISHED: usize = 100;
const HISTORY_MAX: usize = 50_000;

/// Puts `kvs` in txns of 100, eight txns at a time.
async fn put_all(client: &Client, kvs: Vec<(String, String)>) -> anyhow::Result<()> {
    let mut set = tokio::task::JoinSet::new();
    for chunk in kvs.chunks(100) {
        let ops: Vec<TxnOp> = chunk
            .iter()
            .map(|(k, v)| TxnOp::put(k.as_str(), v.as_str(), None))
            .collect();
        let mut c = client.clone();
        set.spawn(async move { c.txn(Txn::new().and_then(ops)).await.map(|_| ()) });
        while set.len() >= 8 {
            set.join_next().await.transpose()?.transpose()?;
        }
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}

async fn count(client: &Client, prefix: &str) -> anyhow::Result<i64> {
    let mut c = client.clone();
    Ok(c.get(
        prefix,
        Some(GetOptions::new().with_prefix().with_count_only()),
    )
    .await?
    .count())
}

fn history_cli(config: &Path, server: &str, before: Option<&str>) -> anyhow::Result<String> {
    let dir = config.parent().expect("the config's directory");
    let mut cmd = common::cli_command(dir, &[server.to_string()]);
    cmd.args(["history", "--config"]).arg(config);
    if let Some(b) = before {
        cmd.args(["--before", b]);
    }
    let out = cmd.output()?;
    anyhow::ensure!(
        out.status.success(),
        "history failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

fn cursor_of(page: &str) -> Option<String> {
    page.lines()
        .find_map(|l| l.strip_prefix("(older events: switchyard history --before "))
        .map(|c| c.trim_end_matches(')').to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grown_journal_neither_stalls_a_new_leader_nor_grows_forever() -> anyhow::Result<()> {
    let etcd = Etcd::single().await?;
    let dir = tempfile::Builder::new()
        .prefix("switchyard-fixture-journal-")
        .tempdir()?;
    let cluster = format!("j{}", std::process::id());
    let extra = format!(
        "\n[journal]\nkeep_finished = {KEEP_FINISHED}\nhistory_max_events = {HISTORY_MAX}\n"
    );
    let (config, weights) = write_config_extra(
        dir.path(),
        &etcd.endpoints(),
        &cluster,
        Backend::File,
        &extra,
    );
    seed_weights(&weights);

    // What years of running leave behind.
    let client = etcd.client().await?;
    let root = format!("/switchyard/{cluster}");
    let now_ms = chrono::Utc::now().timestamp_millis();
    let filler = "x".repeat(150);
    let mut kvs = Vec::with_capacity(HISTORY_EVENTS + FINISHED_INTENTS + 4);
    for i in 0..HISTORY_EVENTS {
        let at = now_ms - 3_600_000 + i as i64;
        let at_rfc = chrono::DateTime::from_timestamp_millis(at)
            .unwrap_or_default()
            .to_rfc3339();
        kvs.push((
            format!("{root}/history/{at:013}-{:012}-{:06}", 1, i),
            format!(
                r#"{{"at":"{at_rfc}","by":"ctl-old","what":"seeded event {i}","reasons":["{filler}"],"journal_id":null}}"#
            ),
        ));
    }
    for i in 0..FINISHED_INTENTS {
        let id = format!("{:012}-{:06}", 1, i + 1);
        kvs.push((
            format!("{root}/journal/{id}"),
            format!(
                r#"{{"id":"{id}","action":{{"kind":"set_weights","record":"{RECORD}","weights":{{"a":100,"b":100,"c":100}}}},"reasons":["{filler}"],"status":"done","created_by":"ctl-old","created_at":"2026-01-01T00:00:00Z","finished_by":"ctl-old","finished_at":"2026-01-01T00:00:01Z","outcome":"applied"}}"#
            ),
        ));
    }
    // A newer version's entries, and a hand edit.
    let strange = format!("{root}/journal/{:012}-{:06}", 2, 1);
    kvs.push((
        strange.clone(),
        r#"{"id":"x","action":{"kind":"teleport"},"status":"pending"}"#.into(),
    ));
    kvs.push((
        format!("{root}/history/{now_ms:013}-garbage"),
        "not json".into(),
    ));
    // An operator drained region c before this leader's time: its first
    // decision is to take c out, with no probe needed.
    kvs.push((format!("{root}/control/drain/c"), "1".into()));
    let seeded = Instant::now();
    put_all(&client, kvs).await?;
    eprintln!("seeded in {:?}", seeded.elapsed());
    assert_eq!(
        count(&client, &format!("{root}/history/")).await?,
        HISTORY_EVENTS as i64 + 1
    );

    let started = Instant::now();
    let ctl = ControllerProcess::start(
        Path::new(env!("CARGO_BIN_EXE_switchyard")),
        &config,
        "ctl-a",
        dir.path(),
    )
    .await?;
    // From the moment etcd names it leader to its first action applied.
    let leader_prefix = format!("{root}/leader");
    wait_for("a leader", Duration::from_secs(30), || {
        let client = client.clone();
        let leader_prefix = leader_prefix.clone();
        async move {
            let mut c = client;
            match c.leader(leader_prefix).await {
                Ok(r) if r.kv().is_some() => Ok(()),
                other => Err(format!("{:?}", other.map(|r| r.kv().is_some()))),
            }
        }
    })
    .await?;
    let led = Instant::now();
    let file = weights.clone();
    wait_for(
        "region c drained in the backend",
        Duration::from_secs(30),
        || {
            let file = file.clone();
            async move {
                let all: std::collections::BTreeMap<
                    String,
                    std::collections::BTreeMap<String, u32>,
                > = serde_json::from_slice(&std::fs::read(&file).map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
                match all.get(RECORD).and_then(|w| w.get("c")) {
                    Some(0) => Ok(()),
                    other => Err(format!("c weighs {other:?}")),
                }
            }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", ctl.log()))?;
    let acted = led.elapsed();
    eprintln!(
        "controller started → leader {:?}, leader → first action applied {acted:?}",
        led - started
    );
    assert!(
        acted <= LEASE_TTL,
        "the new leader took {acted:?} to act, more than one lease TTL ({LEASE_TTL:?})\n{}",
        ctl.log()
    );
    assert!(
        ctl.log().contains("cannot be decoded"),
        "the undecodable entry is alarmed\n{}",
        ctl.log()
    );

    // History pages: the newest first page, then older ones by cursor.
    let first = history_cli(&config, &ctl.grpc_url(), None)?;
    assert!(first.contains("set_weights"), "{first}");
    assert!(first.contains("could not be read"), "{first}");
    let cursor = cursor_of(&first).ok_or_else(|| anyhow::anyhow!("no cursor in\n{first}"))?;
    let second = history_cli(&config, &ctl.grpc_url(), Some(&cursor))?;
    let numbers = |page: &str| -> Vec<usize> {
        page.lines()
            .filter_map(|l| l.split("seeded event ").nth(1))
            .filter_map(|n| n.trim().parse().ok())
            .collect()
    };
    let (newest, older) = (numbers(&first), numbers(&second));
    // Page two is the 50 events just before page one's oldest, oldest first.
    let oldest_shown = *newest.first().ok_or_else(|| anyhow::anyhow!("{first}"))?;
    let want: Vec<usize> = (oldest_shown - 50..oldest_shown).collect();
    assert_eq!(older, want, "{second}");
    assert!(cursor_of(&second).is_some_and(|c| c < cursor), "{second}");

    // Compaction (its first round runs a few seconds into the term).
    let journal_prefix = format!("{root}/journal/");
    let history_prefix = format!("{root}/history/");
    wait_for(
        "the journal and history down to their retention",
        Duration::from_secs(60),
        || {
            let client = client.clone();
            let (jp, hp) = (journal_prefix.clone(), history_prefix.clone());
            async move {
                let j = count(&client, &jp).await.map_err(|e| e.to_string())?;
                let h = count(&client, &hp).await.map_err(|e| e.to_string())?;
                // Kept: the newest finished intents, plus the strange one.
                if j <= KEEP_FINISHED as i64 + 1 && h <= HISTORY_MAX as i64 {
                    Ok(())
                } else {
                    Err(format!("{j} journal keys, {h} history keys"))
                }
            }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", ctl.log()))?;
    let mut c = client.clone();
    let strange_left = c.get(strange.as_str(), None).await?.kvs().len();
    assert_eq!(strange_left, 1, "an entry nobody can read is never deleted");
    // The leader's own intent, the newest, is among those kept.
    let kept = c
        .get(
            journal_prefix.as_str(),
            Some(GetOptions::new().with_prefix().with_keys_only()),
        )
        .await?;
    let newest = kept
        .kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .max()
        .unwrap_or_default();
    assert!(!newest.contains(&format!("{:012}-", 1)), "{newest}");
    Ok(())
}
