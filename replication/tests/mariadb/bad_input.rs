//! Bad input: wrong credentials, an unreachable member, a target that is
//! not a replica, an unknown member — clear errors, nothing changed.

use std::time::Duration;

use switchyard_replication::{ContactErrorKind, Credentials, MemberSpec, ReplError, ReplicaSet};

use crate::common::{FREE, Lab, replica_set, req, rules, specs};

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() -> anyhow::Result<()> {
    let lab = Lab::start().await?;
    let before = lab.fingerprint().await?;

    // Wrong credentials.
    let mut bad = specs(&lab.topo);
    for s in &mut bad {
        s.credentials = Credentials::new("switchyard", "wrong-password");
    }
    let wrong = replica_set(bad, rules());
    let snap = wrong.observe().await?;
    for m in &snap.members {
        assert!(!m.reachable);
        let c = m.contact_error.as_ref().unwrap();
        assert_eq!(c.kind, ContactErrorKind::AccessDenied, "{c:?}");
        assert!(c.detail.contains("1045"), "{}", c.detail);
    }
    let e = wrong
        .switchover("db1", None, Duration::from_secs(5), &FREE)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ReplError::AccessDenied { member, user, .. } if member == "db1" && user == "switchyard"),
        "{e}"
    );
    assert!(e.to_string().contains("wrong credentials"), "{e}");
    assert!(!e.retryable());
    let e = wrong
        .failover(&req(None, false, Some("db0")), &FREE)
        .await
        .unwrap_err();
    assert!(matches!(e, ReplError::AccessDenied { .. }), "{e}");
    let e = wrong.fence("db0").await.unwrap_err();
    assert!(matches!(e, ReplError::AccessDenied { .. }), "{e}");

    // An unreachable member (nothing listens on its port).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut with_ghost = specs(&lab.topo);
    with_ghost.push(MemberSpec::new(
        "ghost",
        "local",
        format!("127.0.0.1:{closed}"),
        Credentials::new("switchyard", "switchyard-test"),
    ));
    let set = replica_set(with_ghost, rules());
    let snap = set.observe().await?;
    let ghost = snap.member("ghost").unwrap();
    assert_eq!(
        ghost.contact_error.as_ref().unwrap().kind,
        ContactErrorKind::Unreachable
    );
    assert_eq!(
        snap.primary.as_deref(),
        Some("db0"),
        "the others are read fine"
    );
    let e = set
        .switchover("ghost", None, Duration::from_secs(5), &FREE)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ReplError::Unreachable { member, .. } if member == "ghost"),
        "{e}"
    );
    assert!(e.retryable());
    let e = set.promote("ghost", &FREE).await.unwrap_err();
    assert!(matches!(e, ReplError::Unreachable { .. }), "{e}");
    let e = set.repoint("db2", "ghost", &FREE).await.unwrap_err();
    assert!(matches!(e, ReplError::Unreachable { .. }), "{e}");

    // Unknown members.
    let e = lab
        .set
        .switchover("db9", None, Duration::from_secs(5), &FREE)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ReplError::UnknownMember { known, .. } if known.len() == 3),
        "{e}"
    );
    let e = lab
        .set
        .failover(&req(Some("db9"), true, None), &FREE)
        .await
        .unwrap_err();
    assert!(matches!(e, ReplError::UnknownMember { .. }), "{e}");

    // A healthy primary is not failed over without force.
    let e = lab
        .set
        .failover(&req(None, false, Some("db0")), &FREE)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ReplError::PrimaryHealthy { member } if member == "db0"),
        "{e}"
    );
    // Failing over to the member that already is the primary: a no-op.
    let r = lab
        .set
        .failover(&req(Some("db0"), false, None), &FREE)
        .await?;
    assert!(!r.changed, "{:?}", r.steps);
    assert_eq!(r.new_primary, "db0");

    assert_eq!(lab.fingerprint().await?, before, "nothing changed");

    // A target that is not a replica.
    lab.topo.exec(2, "STOP SLAVE").await?;
    lab.topo.exec(2, "RESET SLAVE ALL").await?;
    let before = lab.fingerprint().await?;
    let e = lab
        .set
        .switchover("db2", None, Duration::from_secs(5), &FREE)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ReplError::NotAReplica { member, .. } if member == "db2"),
        "{e}"
    );
    assert!(e.to_string().contains("replicates from no one"), "{e}");
    assert_eq!(lab.fingerprint().await?, before, "nothing changed");
    Ok(())
}
