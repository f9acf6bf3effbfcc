//! The isolation loop's decision, wired to a real MariaDB primary and a
//! real etcd (for the store handle), with its inputs — etcd reachability,
//! peers, the primary lease held — driven by the test (issue 11, item 2):
//!
//! - a lease holder whose renewals stop fences its primary before the
//!   lease can expire, counted from its last successful renewal, even while
//!   etcd still answers it (connected);
//! - with etcd down for everybody and every controller answering, it fails
//!   static: no fence however long the lease has not been renewed;
//! - the moment one controller stops answering, it fences at once (the
//!   lease ran out long ago), and the record says what it was made under.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use switchyard_controller::clock::SystemClock;
use switchyard_controller::fence::lease::Renewal;
use switchyard_controller::fence::local::{
    FenceLog, FenceOutcome, FenceRecord, FencedUnder, LocalFencer,
};
use switchyard_controller::runtime::isolation::{Inputs, IsolationLoop, Timing};
use switchyard_controller::runtime::lease_keeper::HeldLease;
use switchyard_controller::store::Store;
use switchyard_probes::replication::{
    Credentials, Flavor, MemberSpec, MySqlReplicaSet, ReplicaSet, Rules, Timeouts,
};
use switchyard_tests::mariadb::{ADMIN_PASSWORD, ADMIN_USER, REPL_PASSWORD, REPL_USER};
use switchyard_tests::wait::wait_for;
use switchyard_tests::{Etcd, MariaDbTopology};
use tokio::sync::watch;
use tokio::time::Instant;

const TTL: Duration = Duration::from_secs(4);

fn ids(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

struct Lab {
    db: MariaDbTopology,
    _etcd: Etcd,
    _dir: tempfile::TempDir,
    log: Arc<FenceLog>,
    /// When etcd last answered, as the loop sees it.
    etcd_ok: watch::Sender<Instant>,
    peers: watch::Sender<BTreeSet<String>>,
    peers_with_etcd: watch::Sender<BTreeSet<String>>,
    renewal: watch::Sender<Renewal>,
    shutdown: watch::Sender<bool>,
}

async fn start() -> anyhow::Result<Lab> {
    let db = MariaDbTopology::start(0).await?;
    let etcd = Etcd::single().await?;
    let store = Store::connect(&etcd.endpoints(), "iso").await?;
    let dir = tempfile::tempdir()?;
    let set: Arc<dyn ReplicaSet> = Arc::new(
        MySqlReplicaSet::new(
            Flavor::MariaDb,
            vec![MemberSpec::new(
                "m0",
                "a",
                db.address(0),
                Credentials::new(ADMIN_USER, ADMIN_PASSWORD),
            )],
            Rules::default(),
            Credentials::new(REPL_USER, REPL_PASSWORD),
        )?
        .with_timeouts(Timeouts {
            connect: Duration::from_secs(1),
            ..Timeouts::default()
        }),
    );
    let log = Arc::new(FenceLog::new(dir.path().join("fences.jsonl")));
    let now = Instant::now();
    let (etcd_ok, last_etcd_ok) = watch::channel(now);
    let (peers, peers_rx) = watch::channel(ids(&["ctl-b", "ctl-c"]));
    let (peers_with_etcd, with_etcd_rx) = watch::channel(ids(&["ctl-b", "ctl-c"]));
    let (renewal, renewal_rx) = watch::channel(Renewal {
        last_renewed: now,
        deadline: now + TTL,
        lost: false,
    });
    let held = BTreeMap::from([(
        "orders".to_string(),
        HeldLease {
            renewal: renewal_rx,
            ttl: TTL,
            lease_id: 0x51,
            primary: "m0".into(),
            epoch: Some(4),
        },
    )]);
    let (_held_tx, held_rx) = watch::channel(held);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let looped = IsolationLoop {
        store,
        self_id: "ctl-a".into(),
        controllers: ids(&["ctl-a", "ctl-b", "ctl-c"]),
        fencers: vec![LocalFencer::with_log(
            "orders",
            ["m0".to_string()],
            set,
            log.clone(),
        )],
        timing: Timing::for_ttl(TTL),
        clock: Arc::new(SystemClock),
    };
    tokio::spawn(async move {
        let _held_tx = _held_tx;
        looped
            .run(
                Inputs {
                    last_etcd_ok,
                    peers: peers_rx,
                    peers_with_etcd: with_etcd_rx,
                    held: held_rx,
                },
                shutdown_rx,
            )
            .await;
    });
    Ok(Lab {
        db,
        _etcd: etcd,
        _dir: dir,
        log,
        etcd_ok,
        peers,
        peers_with_etcd,
        renewal,
        shutdown,
    })
}

impl Lab {
    fn renew(&self) {
        let now = Instant::now();
        self.renewal.send_replace(Renewal {
            last_renewed: now,
            deadline: now + TTL,
            lost: false,
        });
    }

    async fn read_only(&self) -> anyhow::Result<bool> {
        Ok(self.db.variable(0, "read_only").await? == "1")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

/// etcd answers the holder's reads all along, but its renewals stop: it
/// fences once only the fence's budget is left before its fence deadline
/// (TTL 4 s: start by +2 s after the last renewal, done by +3 s), well
/// before etcd could let the lease go (+4 s).
/// The fence records once there are any: `read_only` reads ON as soon as
/// the fence's statement ran, and the loop writes its record once the whole
/// fence (read back included) is done.
async fn fence_records(lab: &Lab) -> anyhow::Result<Vec<FenceRecord>> {
    wait_for("the fence record", Duration::from_secs(10), || async move {
        let r = lab.log.pending().await.map_err(|e| e.to_string())?;
        if r.is_empty() {
            Err("no record yet".to_string())
        } else {
            Ok(r)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_cannot_renew_fences_even_while_etcd_answers() -> anyhow::Result<()> {
    let lab = start().await?;
    // Renewing, etcd answering: nothing happens for a few TTL quarters.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        lab.renew();
        lab.etcd_ok.send_replace(Instant::now());
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(!lab.read_only().await?, "fenced while renewing");
    }
    // The renewals stop; etcd keeps answering reads.
    let last = lab.renewal.borrow().last_renewed;
    let stopped = Instant::now();
    let fenced = {
        let lab = &lab;
        wait_for("m0 to be fenced", Duration::from_secs(10), || async move {
            lab.etcd_ok.send_replace(Instant::now());
            match lab.read_only().await {
                Ok(true) => Ok(Instant::now()),
                other => Err(format!("read_only: {other:?}")),
            }
        })
        .await?
    };
    eprintln!(
        "renewals stopped → fenced after {:?} (since the last renewal {:?})",
        fenced - stopped,
        fenced - last
    );
    assert!(
        fenced - last < TTL,
        "fenced {:?} after the last renewal: the lease could have expired",
        fenced - last
    );
    let records = fence_records(&lab).await?;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].result, FenceOutcome::Fenced);
    assert!(
        records[0].reason.contains("primary lease not renewed"),
        "{}",
        records[0].reason
    );
    assert_eq!(
        records[0].under,
        Some(FencedUnder {
            primary: "m0".into(),
            epoch: 4,
            lease_id: Some(0x51),
        })
    );
    Ok(())
}

/// etcd down for everybody, every controller answering none reaching it:
/// fail static, however stale the lease. One controller falls silent: that
/// one may be leading with etcd, so the primary is fenced at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_static_needs_every_controller_one_silent_fences() -> anyhow::Result<()> {
    let lab = start().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // etcd goes: no more answers, no more renewals; the peers say they
    // have no etcd either, and all of them answer.
    lab.peers_with_etcd.send_replace(BTreeSet::new());
    let until = Instant::now() + TTL * 2;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(!lab.read_only().await?, "fenced during an etcd outage");
    }
    assert!(lab.log.pending().await?.is_empty());
    // ctl-c stops answering.
    let silent = Instant::now();
    lab.peers.send_replace(ids(&["ctl-b"]));
    let fenced = {
        let lab = &lab;
        wait_for("m0 to be fenced", Duration::from_secs(10), || async move {
            match lab.read_only().await {
                Ok(true) => Ok(Instant::now()),
                other => Err(format!("read_only: {other:?}")),
            }
        })
        .await?
    };
    eprintln!("ctl-c silent → fenced after {:?}", fenced - silent);
    let records = fence_records(&lab).await?;
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(
        records[0].reason.contains("ctl-c silent"),
        "{}",
        records[0].reason
    );
    Ok(())
}
