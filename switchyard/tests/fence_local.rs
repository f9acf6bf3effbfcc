//! The local fencer against real MariaDB: an isolated controller fences its
//! region's writable primary (read-only on, open client sessions killed),
//! leaves other regions alone, records what it did in its local file, does
//! nothing the second time, and records a failed attempt on a member it
//! cannot reach.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use switchyard_controller::fence::local::{FenceOutcome, FencedUnder, LocalFencer};
use switchyard_probes::replication::{
    Credentials, Flavor, MemberSpec, MySqlReplicaSet, ReplicaSet, Rules, Timeouts,
};
use switchyard_tests::mariadb::{ADMIN_PASSWORD, ADMIN_USER, REPL_PASSWORD, REPL_USER};
use switchyard_tests::wait::wait_for;
use switchyard_tests::{FIXTURE_ENV, MariaDbTopology};

fn replica_set(db: &MariaDbTopology) -> anyhow::Result<Arc<dyn ReplicaSet>> {
    let members = vec![
        MemberSpec::new(
            "m0",
            "east",
            db.address(0),
            Credentials::new(ADMIN_USER, ADMIN_PASSWORD),
        ),
        MemberSpec::new(
            "m1",
            "west",
            db.address(1),
            Credentials::new(ADMIN_USER, ADMIN_PASSWORD),
        ),
    ];
    let set = MySqlReplicaSet::new(
        Flavor::MariaDb,
        members,
        Rules::default(),
        Credentials::new(REPL_USER, REPL_PASSWORD),
    )?
    .with_timeouts(Timeouts {
        connect: Duration::from_secs(1),
        ..Timeouts::default()
    });
    Ok(Arc::new(set))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_region_primary_is_fenced_once_and_recorded() -> anyhow::Result<()> {
    let mut db = MariaDbTopology::start(1).await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("fences.jsonl");
    let set = replica_set(&db)?;
    let east = LocalFencer::new("orders", ["m0".to_string()], set.clone(), &path);

    // A client session open on the primary before the fence: the `mariadb`
    // command-line client, busy in a long statement.
    let mut client = tokio::process::Command::new("mariadb")
        .args(["-h127.0.0.1", &format!("-P{}", db.port(0))])
        .args([format!("-u{ADMIN_USER}"), format!("-p{ADMIN_PASSWORD}")])
        .args(["-e", "SELECT SLEEP(50) AS fence_victim"])
        .env(FIXTURE_ENV, "fence_local")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let db_ref = &db;
    wait_for(
        "the client session to run",
        Duration::from_secs(10),
        || async move {
            let n: Vec<(u64,)> = db_ref
                .query(
                    0,
                    "SELECT COUNT(*) FROM information_schema.processlist \
                 WHERE info LIKE 'SELECT SLEEP(50)%'",
                )
                .await
                .map_err(|e| e.to_string())?;
            match n.first() {
                Some((1,)) => Ok(()),
                other => Err(format!("sessions: {other:?}")),
            }
        },
    )
    .await?;
    assert_eq!(db.variable(0, "read_only").await?, "0");

    let now = Utc::now();
    let under = FencedUnder {
        primary: "m0".into(),
        epoch: 3,
        lease_id: Some(0x7f),
    };
    let records = east
        .fence_region(now, "test: isolated", Some(&under))
        .await?;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].member, "m0");
    assert_eq!(records[0].database, "orders");
    assert_eq!(records[0].at, now);
    assert_eq!(records[0].result, FenceOutcome::Fenced);
    // What it was made under travels with it (the promotion gate counts it
    // only for that primary, epoch and lease).
    assert_eq!(records[0].under.as_ref(), Some(&under));
    assert_eq!(db.variable(0, "read_only").await?, "1");
    // The open session was killed: the client ends at once, with an error.
    let status = tokio::time::timeout(Duration::from_secs(5), client.wait()).await??;
    assert!(!status.success(), "the client session survived the fence");
    // The other region's replica was not touched (still replicating).
    db.wait_replicating(1).await?;

    // Twice is a no-op.
    assert!(
        east.fence_region(Utc::now(), "test: isolated", Some(&under))
            .await?
            .is_empty()
    );
    assert_eq!(east.pending_records().await?, records);

    // A local member it cannot reach: the attempt is recorded as failed.
    db.kill9(1);
    let both = LocalFencer::new("orders", ["m0".to_string(), "m1".to_string()], set, &path);
    let failed = both
        .fence_region(Utc::now(), "test: isolated", None)
        .await?;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].member, "m1");
    assert!(
        matches!(&failed[0].result, FenceOutcome::Failed { error } if !error.is_empty()),
        "{failed:?}"
    );

    // Written to history: acknowledged records leave the file, others stay.
    let pending = east.pending_records().await?;
    assert_eq!(pending.len(), 2);
    east.acknowledge(&records).await?;
    assert_eq!(east.pending_records().await?, failed);
    both.acknowledge(&failed).await?;
    assert!(both.pending_records().await?.is_empty());
    Ok(())
}
