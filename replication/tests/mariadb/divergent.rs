//! Divergent replicas (neither has everything the other has): automatic
//! promotion is refused with the reason; a forced promotion naming one works.
//!
//! The divergence is staged as a split brain makes it, with real
//! replication: db1 keeps following db0, which writes one more transaction;
//! db2 follows db3, which an operator made writable and wrote to; then db0
//! and db3 both die.

use switchyard_replication::{ReplError, ReplicaSet};

use crate::common::{FREE, Lab, app_insert, req};

#[tokio::test]
async fn divergent_replicas_need_a_forced_choice() -> anyhow::Result<()> {
    let mut lab = Lab::start_n(3, |_| {}).await?;
    for i in [2, 3] {
        lab.topo.exec(i, "STOP SLAVE").await?;
    }
    lab.insert_admin(0, 1, 1).await?;
    lab.wait_caught_up(&[1]).await?;
    lab.topo.exec(3, "RESET SLAVE ALL").await?;
    lab.topo.exec(3, "SET GLOBAL read_only = OFF").await?;
    lab.insert_admin(3, 2, 1).await?;
    let port3 = lab.topo.port(3);
    lab.topo.replicate_from(2, port3).await?;
    lab.wait_member(2, "db2 to get db3's transaction", |m| {
        m.position
            .as_ref()
            .is_some_and(|p| p.to_string().contains("0-1004-"))
    })
    .await?;
    lab.topo.kill9(0);
    lab.topo.kill9(3);
    let before = lab.fingerprint_alive(&[1, 2]).await?;

    let e = lab
        .set
        .failover(&req(None, false, Some("db0")), &FREE)
        .await
        .unwrap_err();
    let ReplError::DivergentReplicas { details } = &e else {
        panic!("expected divergence, got {e}");
    };
    assert_eq!(details.len(), 2, "{details:?}");
    assert!(details[0].starts_with("db1 lacks 0-1004-"), "{details:?}");
    assert!(details[0].ends_with("that db2 has"), "{details:?}");
    assert!(details[1].starts_with("db2 lacks 0-1001-"), "{details:?}");
    assert!(!e.retryable());
    assert_eq!(
        lab.fingerprint_alive(&[1, 2]).await?,
        before,
        "nothing changed"
    );
    // Named but not forced: refused too.
    let e = lab
        .set
        .failover(&req(Some("db1"), false, Some("db0")), &FREE)
        .await
        .unwrap_err();
    assert!(matches!(e, ReplError::DivergentReplicas { .. }), "{e}");
    assert_eq!(
        lab.fingerprint_alive(&[1, 2]).await?,
        before,
        "nothing changed"
    );

    let report = lab
        .set
        .failover(&req(Some("db1"), true, Some("db0")), &FREE)
        .await?;
    assert_eq!(report.new_primary, "db1");
    assert!(
        report
            .reasons
            .iter()
            .any(|r| r.starts_with("db2 has 0-1004-")),
        "{:?}",
        report.reasons
    );
    assert_eq!(report.not_repointed.len(), 2, "{:?}", report.not_repointed);
    let db2 = report
        .not_repointed
        .iter()
        .find(|(m, _)| m == "db2")
        .unwrap();
    assert!(db2.1.contains("not re-joined"), "{}", db2.1);
    app_insert(lab.topo.port(1), 3).await?;
    Ok(())
}
