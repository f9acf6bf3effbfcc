//! The rejoin book on snapshots made up by hand.

use chrono::TimeZone as _;
use switchyard_probes::replication::{Credentials, MemberSpec, MemberState, Snapshot};

use super::*;

/// Member `id`, reachable (or not), read-only (or not), with `errant`
/// transactions and `bypass` accounts.
fn member(
    id: &str,
    reachable: bool,
    read_only: bool,
    errant: &[&str],
    bypass: &[&str],
) -> MemberState {
    let spec = MemberSpec::new(id, "r", format!("{id}:3306"), Credentials::new("u", "p"));
    let mut m = MemberState::unread(&spec);
    m.reachable = reachable;
    m.read_only = reachable.then_some(read_only);
    m.errant = errant.iter().map(|s| s.to_string()).collect();
    m.read_only_bypass = bypass.iter().map(|s| s.to_string()).collect();
    m
}

fn snapshot(members: Vec<MemberState>) -> Snapshot {
    Snapshot {
        members,
        primary: None,
        warnings: Vec::new(),
    }
}

#[test]
fn a_finding_is_news_once_a_leadership() {
    let s = snapshot(vec![
        member("m0", true, false, &[], &[]),
        member("m1", true, true, &["0-1-5"], &[]),
        member("m2", true, false, &[], &[]),
    ]);
    let mut book = Book::default();
    let news = book.news("orders", "m0", &s);
    let what: Vec<_> = news.iter().map(|f| (f.member.as_str(), f.what)).collect();
    assert_eq!(what, [("m1", "errant"), ("m2", "writable")]);
    assert!(news[0].text.contains("0-1-5") && news[0].text.contains("primary m0"));
    book.reported(&news[0]);
    let left: Vec<_> = book
        .news("orders", "m0", &s)
        .into_iter()
        .map(|f| f.what)
        .collect();
    assert_eq!(left, ["writable"], "an unreported finding stays news");
    book.reported(&book.news("orders", "m0", &s)[0]);
    assert!(book.news("orders", "m0", &s).is_empty());
    assert_eq!(book.news("users", "m0", &s).len(), 2, "per database");
}

#[test]
fn the_primary_and_members_not_reached_are_never_reported() {
    let s = snapshot(vec![
        member("m0", true, false, &["0-9-1"], &[]),
        member("m1", false, false, &["0-1-5"], &[]),
    ]);
    assert!(findings("orders", "m0", &s).is_empty());
}

#[test]
fn a_report_names_the_member_the_leader_and_the_epoch() {
    let f = Finding {
        database: "orders".into(),
        member: "m1".into(),
        what: "errant",
        text: "member m1 has transactions".into(),
    };
    let now = Utc
        .timestamp_opt(1_800_000_000, 0)
        .single()
        .expect("a time");
    let (hid, event) = report(&f, "ctl-a", 7, now);
    assert!(hid.contains("rejoin-orders-m1-errant"), "{hid}");
    let writable = Finding {
        what: "writable",
        ..f.clone()
    };
    assert_ne!(
        report(&writable, "ctl-a", 7, now).0,
        hid,
        "two findings of one member in one millisecond are two history events"
    );
    assert_eq!(event.by, "ctl-a");
    assert_eq!(event.what, "rejoin orders/m1: member m1 has transactions");
    assert_eq!(
        event.reasons,
        ["seen reachable again by the leader (epoch 7)"]
    );
}

#[test]
fn the_bypass_is_written_when_it_changes_and_unread_members_keep_theirs() {
    let mut book = Book::default();
    assert!(!book.knows_bypass("orders"));
    let stored: Bypass = [
        ("m1".to_string(), vec!["'app'@'%' (SUPER)".to_string()]),
        ("m2".to_string(), vec!["'ops'@'%' (SUPER)".to_string()]),
    ]
    .into();
    book.stored_bypass("orders", stored.clone());
    assert!(book.knows_bypass("orders"));
    // m1 read with the same accounts, m2 not read: nothing to write.
    let same = snapshot(vec![
        member("m1", true, true, &[], &["'app'@'%' (SUPER)"]),
        member("m2", false, true, &[], &[]),
    ]);
    assert_eq!(book.bypass_change("orders", &same), None);
    // m1's grant revoked: m1 leaves the entry, m2 (unread) keeps its own.
    let revoked = snapshot(vec![
        member("m1", true, true, &[], &[]),
        member("m2", false, true, &[], &[]),
    ]);
    let change = book.bypass_change("orders", &revoked).expect("a change");
    assert_eq!(change, [("m2".to_string(), stored["m2"].clone())].into());
    book.stored_bypass("orders", change);
    assert_eq!(book.bypass_change("orders", &revoked), None, "written once");
}
