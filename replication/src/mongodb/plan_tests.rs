use std::time::Duration;

use super::super::reply::tests::{
    config_reply, status_healthy, status_majority_lost, status_primary_lost,
};
use super::super::reply::{parse_config, parse_status};
use super::*;
use crate::gtid::OpTime;
use crate::snapshot::ContactErrorKind;
use crate::spec::Credentials;

fn specs() -> Vec<MemberSpec> {
    (1..=3)
        .map(|i| {
            MemberSpec::new(
                format!("m{i}"),
                format!("region-{i}"),
                format!("m{i}.example.net:27017"),
                Credentials::new("switchyard", "pw"),
            )
        })
        .collect()
}

fn hello(primary: bool, secs: u32) -> Result<Hello, ContactError> {
    Ok(Hello {
        writable_primary: primary,
        secondary: !primary,
        primary: None,
        me: None,
        last_write: Some(OpTime {
            term: 3,
            secs,
            inc: 1,
        }),
    })
}

fn down() -> Result<Hello, ContactError> {
    Err(ContactError {
        kind: ContactErrorKind::Unreachable,
        detail: "Server selection timeout".into(),
    })
}

fn observed(
    status: &Document,
    reach: &[Result<Hello, ContactError>],
) -> (Snapshot, Status, Config) {
    let status = parse_status(status).unwrap();
    let config = parse_config(&config_reply()).unwrap();
    let snap = snapshot(&specs(), reach, Some(&status), Some(&config));
    (snap, status, config)
}

#[test]
fn snapshot_of_a_healthy_set() {
    let (snap, _, _) = observed(
        &status_healthy(),
        &[
            hello(true, 1_723_763_173),
            hello(false, 1_723_763_173),
            hello(false, 1_723_763_168),
        ],
    );
    assert_eq!(snap.primary.as_deref(), Some("m1"));
    let m3 = snap.member("m3").unwrap();
    assert_eq!(m3.role, Role::Replica);
    assert_eq!(m3.source.as_deref(), Some("m1"));
    assert_eq!(m3.lag, Some(Duration::from_secs(5)));
    assert_eq!(m3.read_only, Some(true));
    assert!(m3.io_running && m3.sql_running);
    assert!(snap.warnings.is_empty(), "{:?}", snap.warnings);
}

#[test]
fn raising_a_priority_bumps_the_version_and_keeps_the_rest() {
    let config = parse_config(&config_reply()).unwrap();
    let doc = raise_priority(&config, "m2.example.net:27017").unwrap();
    assert_eq!(doc.get_i64("version").unwrap(), 3);
    assert!(!doc.contains_key("term"), "term is the server's to set");
    assert!(doc.contains_key("settings"));
    let members = doc.get_array("members").unwrap();
    let prio: Vec<f64> = members
        .iter()
        .map(|m| m.as_document().unwrap().get_f64("priority").unwrap())
        .collect();
    assert_eq!(prio, vec![1.0, 2.0, 1.0]);
    assert!(raise_priority(&config, "nobody:1").is_err());
}

#[test]
fn hidden_members_cannot_be_raised() {
    let mut reply = config_reply();
    let cfg = reply.get_document_mut("config").unwrap();
    let members = cfg.get_array_mut("members").unwrap();
    members[1].as_document_mut().unwrap().insert("hidden", true);
    let config = parse_config(&reply).unwrap();
    assert!(raise_priority(&config, "m2.example.net:27017").is_err());
}

#[test]
fn restore_puts_the_old_priorities_back_as_a_newer_version() {
    let config = parse_config(&config_reply()).unwrap();
    let doc = restore(&config, 3);
    assert_eq!(doc.get_i64("version").unwrap(), 4);
    assert!(!doc.contains_key("term"));
}

#[test]
fn a_healthy_primary_is_not_failed_over_without_force() {
    let (snap, status, config) = observed(
        &status_healthy(),
        &[
            hello(true, 1_723_763_173),
            hello(false, 1_723_763_173),
            hello(false, 1_723_763_168),
        ],
    );
    let r = plan_failover(
        &snap,
        &status,
        &config,
        &Rules::default(),
        None,
        false,
        Some("m1"),
    );
    assert_eq!(
        r,
        Err(ReplError::PrimaryHealthy {
            member: "m1".into()
        })
    );
    // Forced: hand over to the most advanced secondary (m3 is 5 s behind).
    let r = plan_failover(
        &snap,
        &status,
        &config,
        &Rules::default(),
        None,
        true,
        Some("m1"),
    );
    assert!(
        matches!(r, Ok(FailoverPlan::HandOver { ref to, .. }) if to == "m2"),
        "{r:?}"
    );
}

#[test]
fn someone_else_already_failed_over() {
    let (snap, status, config) = observed(
        &status_healthy(),
        &[
            hello(true, 1_723_763_173),
            hello(false, 1_723_763_173),
            hello(false, 1_723_763_168),
        ],
    );
    let r = plan_failover(
        &snap,
        &status,
        &config,
        &Rules::default(),
        None,
        false,
        Some("m2"),
    );
    assert_eq!(
        r,
        Ok(FailoverPlan::AlreadyDone {
            primary: "m1".into()
        })
    );
    let r = plan_failover(
        &snap,
        &status,
        &config,
        &Rules::default(),
        Some("m3"),
        false,
        Some("m2"),
    );
    assert!(matches!(r, Err(ReplError::Conflict { .. })), "{r:?}");
}

#[test]
fn with_a_majority_up_mongodb_elects_by_itself() {
    let (snap, status, config) = observed(
        &status_primary_lost(),
        &[
            down(),
            hello(false, 1_723_763_173),
            hello(false, 1_723_763_168),
        ],
    );
    assert_eq!(snap.primary, None);
    let r = plan_failover(
        &snap,
        &status,
        &config,
        &Rules::default(),
        None,
        false,
        Some("m1"),
    );
    assert_eq!(r, Ok(FailoverPlan::AwaitElection { then: None }));
}

#[test]
fn majority_lost_is_refused_unless_data_loss_is_allowed() {
    let (snap, status, config) = observed(
        &status_majority_lost(),
        &[down(), down(), hello(false, 1_723_763_168)],
    );
    let r = plan_failover(
        &snap,
        &status,
        &config,
        &Rules::default(),
        None,
        false,
        Some("m1"),
    );
    let Err(ReplError::DataLossNotAllowed { reason }) = r else {
        panic!("expected a refusal, got {r:?}");
    };
    assert!(reason.contains("1 of 3 votes up, 2 needed"), "{reason}");
    assert!(reason.contains("allow_data_loss = true"), "{reason}");

    let rules = Rules {
        allow_data_loss: true,
        ..Rules::default()
    };
    let r = plan_failover(&snap, &status, &config, &rules, None, false, Some("m1")).unwrap();
    let FailoverPlan::ForcedReconfig {
        on,
        config: doc,
        reasons,
    } = r
    else {
        panic!("expected a forced reconfig, got {r:?}");
    };
    assert_eq!(on, "m3");
    assert!(reasons[0].contains("allowed by allow_data_loss"));
    let members = doc.get_array("members").unwrap();
    assert_eq!(members.len(), 1);
    let m = members[0].as_document().unwrap();
    assert_eq!(m.get_str("host").unwrap(), "m3.example.net:27017");
    assert_eq!(m.get_f64("priority").unwrap(), MAX_PRIORITY);
    assert_eq!(doc.get_i64("version").unwrap(), 3);
}
