//! The step guard's contract on real servers: a refused step sends nothing
//! and stops the orchestration, undoing nothing; a resumed run (the next
//! leader, given the journal) finishes with the candidate the first run
//! chose, even when it would now choose another.

use switchyard_replication::{ReplError, ReplicaSet, Step};

use crate::common::{
    FREE, Journal, Lab, app_insert, id, replica_set, req, rules, writable_members,
};

/// `Connections` (attempts to connect) of member `i`, read over a
/// connection of its own (which counts once).
async fn connections(lab: &Lab, i: usize) -> anyhow::Result<u64> {
    let row: Option<(String, String)> = lab
        .topo
        .query_first(i, "SHOW GLOBAL STATUS LIKE 'Connections'")
        .await?;
    Ok(row.map(|(_, v)| v.parse().unwrap_or(0)).unwrap_or(0))
}

#[tokio::test]
async fn a_refused_first_step_sends_nothing() -> anyhow::Result<()> {
    let lab = Lab::start().await?;
    let before: Vec<u64> = [
        connections(&lab, 0).await?,
        connections(&lab, 1).await?,
        connections(&lab, 2).await?,
    ]
    .into();
    let deposed = Journal::refusing_after(0);
    let e = lab
        .set
        .failover(&req(None, true, Some("db0")), &deposed)
        .await
        .unwrap_err();
    assert!(matches!(e, ReplError::Deposed { .. }), "{e}");
    let e = lab
        .set
        .switchover("db1", None, std::time::Duration::from_secs(5), &deposed)
        .await
        .unwrap_err();
    assert!(matches!(e, ReplError::Deposed { .. }), "{e}");
    for (what, r) in [
        (
            "unfence",
            lab.set.unfence("db0", &deposed).await.map(|_| ()),
        ),
        ("promote", lab.set.promote("db1", &deposed).await),
        ("repoint", lab.set.repoint("db2", "db0", &deposed).await),
    ] {
        assert!(matches!(r, Err(ReplError::Deposed { .. })), "{what}: {r:?}");
    }
    for (i, b) in before.iter().enumerate() {
        // One more: the connection that reads the counter again.
        assert_eq!(
            connections(&lab, i).await?,
            b + 1,
            "member {i} was contacted by a deposed leader"
        );
    }
    Ok(())
}

#[tokio::test]
async fn deposed_at_every_step_then_resumed_keeps_the_first_choice() -> anyhow::Result<()> {
    let lab = Lab::start().await?;
    // The next leader's adapter would prefer db2: a resumed run must keep
    // the candidate the first run recorded all the same.
    let mut specs = crate::common::specs(&lab.topo);
    specs[2].promotion = switchyard_replication::Promotion::Prefer;
    let next_leader = replica_set(specs, rules());

    let mut primary = 0;
    let mut next_row = 1;
    let mut n = 0;
    loop {
        app_insert(lab.topo.port(primary), next_row).await?;
        next_row += 1;
        lab.wait_caught_up(
            &[0, 1, 2]
                .into_iter()
                .filter(|&i| i != primary)
                .collect::<Vec<_>>(),
        )
        .await?;
        let old = id(primary);
        let first = Journal::refusing_after(n);
        let r = lab.set.failover(&req(None, true, Some(&old)), &first).await;
        let writable = writable_members(&lab.topo, &[0, 1, 2]).await?;
        assert!(
            writable.len() <= 1,
            "after {n} steps: writable {writable:?}"
        );
        let finished = match r {
            Ok(report) => {
                assert_eq!(writable, std::slice::from_ref(&report.new_primary));
                true
            }
            Err(ReplError::Deposed { .. }) => false,
            Err(e) => panic!("after {n} steps: {e}"),
        };
        assert!(first.begun().len() <= n);
        let chosen = first.chosen();
        let next = first.resume();
        let report = next_leader
            .failover(&req(None, true, Some(&old)), &next)
            .await?;
        if let Some(c) = &chosen {
            assert_eq!(
                &report.new_primary, c,
                "after {n} steps the resumed run re-chose"
            );
        }
        let writable = writable_members(&lab.topo, &[0, 1, 2]).await?;
        assert_eq!(
            writable,
            std::slice::from_ref(&report.new_primary),
            "after {n} steps, resumed"
        );
        assert!(
            !next
                .begun()
                .iter()
                .any(|s| matches!(s, Step::Chosen { .. }))
                || chosen.is_none(),
            "a resumed run recorded a new choice"
        );
        // The old primary back as a replica, for the next round.
        let new: usize = report.new_primary.trim_start_matches("db").parse()?;
        lab.set.repoint(&old, &report.new_primary, &FREE).await?;
        primary = new;
        if finished {
            break;
        }
        n += 1;
    }
    assert!(n >= 6, "a failover has at least 6 steps, saw {n}");
    Ok(())
}
