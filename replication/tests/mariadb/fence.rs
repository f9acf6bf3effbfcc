//! The fence against clients that hold locks (issue 11, item 3): a session
//! in an open transaction with row locks and one holding `LOCK TABLES …
//! WRITE` do not stall it; it completes within its budget, `read_only`
//! reads back on, and the open transaction can never commit. Accounts that
//! `read_only` does not stop are named in the snapshot.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use switchyard_replication::{ReplicaSet, Timeouts};

use crate::common::{APP_USER, Lab, app_conn, app_insert};

#[tokio::test]
async fn fence_completes_within_budget_while_clients_hold_locks() -> anyhow::Result<()> {
    let lab = Lab::start().await?;
    let port = lab.topo.port(0);
    assert_eq!(Timeouts::default().fence, Duration::from_secs(1));
    lab.topo
        .exec(0, "CREATE TABLE app.locked (id INT PRIMARY KEY)")
        .await?;
    lab.topo
        .exec(
            0,
            &format!("GRANT LOCK TABLES, UPDATE ON app.* TO '{APP_USER}'@'%'"),
        )
        .await?;
    app_insert(port, 1).await?;

    // An open transaction holding row locks, not committed.
    let mut txn = app_conn(port).await?;
    txn.query_drop("START TRANSACTION").await?;
    txn.query_drop("UPDATE app.t SET note = 'in flight' WHERE id = 1")
        .await?;
    txn.query_drop("INSERT INTO app.t (id) VALUES (2)").await?;
    // A session holding an explicit table write lock (this alone held
    // `SET GLOBAL read_only = ON` for as long as it lasted).
    let mut locker = app_conn(port).await?;
    locker.query_drop("LOCK TABLES app.locked WRITE").await?;

    let started = Instant::now();
    let r = lab.set.fence("db0").await;
    let took = started.elapsed();
    r?;
    // The fence is bounded by Timeouts::fence (1 s) on its own clock; allow
    // for a loaded machine around it.
    assert!(took < Duration::from_secs(3), "fence took {took:?}");
    assert_eq!(lab.topo.variable(0, "read_only").await?, "1");

    // The open transaction cannot commit: its session was ended (and even
    // a surviving one would meet read_only).
    let commit = txn.query_drop("COMMIT").await;
    assert!(
        commit.is_err(),
        "the open transaction committed after the fence"
    );
    assert!(
        locker.query_drop("SELECT 1").await.is_err(),
        "the locker was not ended"
    );
    let note: Option<String> = lab
        .topo
        .query_first(0, "SELECT note FROM app.t WHERE id = 1")
        .await?;
    assert_eq!(note.as_deref(), Some(""), "the uncommitted update survived");
    assert!(
        !lab.ids_on(0).await?.contains(&2),
        "the uncommitted insert survived"
    );
    // And the application cannot write any more.
    assert!(app_insert(port, 3).await.is_err());
    Ok(())
}

#[tokio::test]
async fn accounts_that_ignore_read_only_are_named() -> anyhow::Result<()> {
    let lab = Lab::start().await?;
    for sql in [
        "CREATE USER 'ops'@'%' IDENTIFIED BY 'ops-pw'",
        "GRANT READ_ONLY ADMIN, INSERT ON *.* TO 'ops'@'%'",
        "CREATE USER 'legacy'@'%' IDENTIFIED BY 'legacy-pw'",
        "GRANT SUPER, INSERT ON *.* TO 'legacy'@'%'",
    ] {
        lab.topo.exec(0, sql).await?;
    }
    lab.wait_caught_up(&[1, 2]).await?;
    let snap = lab.observe().await;
    for m in &snap.members {
        assert!(
            m.read_only_bypass
                .iter()
                .any(|a| a == "'ops'@'%' (READ_ONLY ADMIN)"),
            "{}: {:?}",
            m.id,
            m.read_only_bypass
        );
        assert!(m.read_only_bypass_unknown.is_none());
        // The adapter's own login is left out; the application's and a
        // SUPER-only account (10.11: SUPER no longer ignores read_only) are
        // not named.
        for who in ["switchyard", "app", "sy_app", "legacy"] {
            assert!(
                !m.read_only_bypass
                    .iter()
                    .any(|a| a.starts_with(&format!("'{who}'@"))),
                "{}: {:?}",
                m.id,
                m.read_only_bypass
            );
        }
    }
    // What the list claims, checked on the server: read-only stops the
    // SUPER-only account and not the READ_ONLY ADMIN one.
    lab.set.fence("db0").await?;
    let write_as = |user: &'static str, pw: &'static str, id: u64| {
        let port = lab.topo.port(0);
        async move {
            let opts = mysql_async::OptsBuilder::default()
                .ip_or_hostname("127.0.0.1")
                .tcp_port(port)
                .user(Some(user))
                .pass(Some(pw))
                .prefer_socket(false);
            let mut c = mysql_async::Conn::new(opts).await?;
            let r = c
                .query_drop(format!("INSERT INTO app.t (id) VALUES ({id})"))
                .await;
            c.disconnect().await.ok();
            anyhow::Ok(r.is_ok())
        }
    };
    assert!(
        write_as("ops", "ops-pw", 10).await?,
        "READ_ONLY ADMIN ignores read_only"
    );
    assert!(
        !write_as("legacy", "legacy-pw", 11).await?,
        "SUPER alone is stopped"
    );
    Ok(())
}
