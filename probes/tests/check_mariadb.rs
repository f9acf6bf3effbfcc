//! The MySQL/MariaDB check against real MariaDB servers replicating with
//! GTID (the `MariaDbTopology` fixture): reachable, read-only as expected,
//! replication threads running, lag within limit.

use std::time::Duration;

use switchyard_probes::checks::{CheckContext, build};
use switchyard_probes::replication::Flavor;
use switchyard_probes::{CheckKind, CheckSpec, FailureKind, MySqlCheck};
use switchyard_tests::MariaDbTopology;
use switchyard_tests::mariadb::{ADMIN_PASSWORD, ADMIN_USER};

async fn check(
    address: String,
    password: &str,
    expect_read_only: Option<bool>,
) -> Result<(), FailureKind> {
    let spec = CheckSpec {
        name: "mysql".into(),
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(2),
        kind: CheckKind::MySql(MySqlCheck {
            flavor: Flavor::MariaDb,
            address,
            user: ADMIN_USER.into(),
            password: password.into(),
            expect_read_only,
            max_lag: Some(Duration::from_secs(10)),
        }),
    };
    let ctx = CheckContext::new(None, None).expect("context");
    let c = build(&spec, &ctx).expect("builds");
    match tokio::time::timeout(spec.timeout, c.run()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(f)) => {
            println!("down: {f}");
            Err(f.kind)
        }
        Err(_) => Err(FailureKind::Timeout),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_members_are_judged_on_role_replication_and_login() -> anyhow::Result<()> {
    let mut topo = MariaDbTopology::start(1).await?;
    let (primary, replica) = (topo.address(0), topo.address(1));

    assert_eq!(
        check(primary.clone(), ADMIN_PASSWORD, Some(false)).await,
        Ok(())
    );
    assert_eq!(check(primary.clone(), ADMIN_PASSWORD, None).await, Ok(()));
    assert_eq!(
        check(replica.clone(), ADMIN_PASSWORD, Some(true)).await,
        Ok(())
    );
    assert_eq!(check(replica.clone(), ADMIN_PASSWORD, None).await, Ok(()));

    // Roles as the check expects them, or not.
    assert_eq!(
        check(primary.clone(), ADMIN_PASSWORD, Some(true)).await,
        Err(FailureKind::ReadOnly)
    );
    assert_eq!(
        check(replica.clone(), ADMIN_PASSWORD, Some(false)).await,
        Err(FailureKind::ReadOnly)
    );
    assert_eq!(
        check(primary.clone(), "wrong-password", None).await,
        Err(FailureKind::Auth)
    );

    // Replication stopped: the replica is down whatever is expected of it.
    topo.exec(1, "STOP SLAVE").await?;
    assert_eq!(
        check(replica.clone(), ADMIN_PASSWORD, None).await,
        Err(FailureKind::Replication)
    );
    topo.exec(1, "START SLAVE").await?;
    topo.wait_replicating(1).await?;
    assert_eq!(
        check(replica.clone(), ADMIN_PASSWORD, Some(true)).await,
        Ok(())
    );

    // The primary dies.
    topo.kill9(0);
    assert_eq!(
        check(primary, ADMIN_PASSWORD, None).await,
        Err(FailureKind::Refused)
    );
    Ok(())
}
