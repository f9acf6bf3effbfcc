use super::*;
use crate::spec::Credentials;

fn member(id: &str, role: Role, read_only: bool, source: Option<&str>) -> MemberState {
    let mut m = MemberState::unread(&MemberSpec::new(
        id,
        "east",
        format!("{id}:3306"),
        Credentials::new("u", "p"),
    ));
    m.reachable = true;
    m.role = role;
    m.read_only = Some(read_only);
    m.source = source.map(str::to_string);
    m
}

#[test]
fn the_writable_member_is_the_primary() {
    let s = Snapshot::assemble(vec![
        member("a", Role::Primary, false, None),
        member("b", Role::Replica, true, Some("a")),
    ]);
    assert_eq!(s.primary.as_deref(), Some("a"));
    assert!(s.warnings.is_empty());
    assert_eq!(s.writable().len(), 1);
}

#[test]
fn without_a_writable_member_the_followed_source_is_the_primary() {
    let mut a = member("a", Role::Unknown, false, None);
    a.reachable = false;
    a.read_only = None;
    let s = Snapshot::assemble(vec![
        a,
        member("b", Role::Replica, true, Some("a")),
        member("c", Role::Replica, true, Some("a")),
    ]);
    assert_eq!(s.primary.as_deref(), Some("a"));
    assert_eq!(s.warnings, ["primary a is unreachable"]);

    let s = Snapshot::assemble(vec![
        member("a", Role::Fenced, true, None),
        member("b", Role::Replica, true, Some("a")),
    ]);
    assert_eq!(s.primary.as_deref(), Some("a"));
    assert!(s.warnings[0].contains("not writable"));
}

#[test]
fn two_writable_members_are_split_brain() {
    let s = Snapshot::assemble(vec![
        member("a", Role::Primary, false, None),
        member("b", Role::Primary, false, None),
    ]);
    assert_eq!(s.primary, None);
    assert!(s.warnings[0].contains("split brain"), "{:?}", s.warnings);
}

#[test]
fn odd_topologies_are_warned_about() {
    let s = Snapshot::assemble(vec![
        member("a", Role::Primary, false, None),
        member("b", Role::Replica, false, Some("a")),
    ]);
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("replica b is writable"))
    );
    let s = Snapshot::assemble(vec![
        member("a", Role::Fenced, true, None),
        member("b", Role::Fenced, true, None),
        member("c", Role::Replica, true, Some("a")),
        member("d", Role::Replica, true, Some("b")),
        member("e", Role::Replica, true, Some("b")),
    ]);
    assert_eq!(s.primary.as_deref(), Some("b"));
    assert!(s.warnings.iter().any(|w| w.contains("different sources")));
}

#[test]
fn a_restarted_old_primary_lists_what_the_new_one_lacks() {
    let pos = |s: &str| Some(Position::MariaDb(s.parse().unwrap()));
    let mut new = member("b", Role::Primary, false, None);
    new.origin = Some("1002".into());
    new.position = pos("0-1001-150,0-1002-160");
    let mut old = member("a", Role::Fenced, true, None);
    old.origin = Some("1001".into());
    old.position = pos("0-1001-152");
    let s = Snapshot::assemble(vec![old, new]);
    assert_eq!(s.primary.as_deref(), Some("b"));
    assert_eq!(s.member("a").unwrap().errant, ["0-1001-151..152"]);
    assert!(s.member("b").unwrap().errant.is_empty());
}

#[test]
fn snapshots_serialize_for_the_journal() {
    let mut a = member("a", Role::Primary, false, None);
    a.position = Some(Position::MariaDb("0-1-5".parse().unwrap()));
    let s = Snapshot::assemble(vec![a]);
    let json = serde_json::to_string(&s).unwrap();
    let back: Snapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
}
