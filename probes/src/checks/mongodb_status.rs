//! Judging a MongoDB member from its `replSetGetStatus` reply: pure, and
//! tested on replies shaped as MongoDB documents them (no MongoDB server can
//! be installed on the machines these tests run on).

use std::time::Duration;

use mongodb::bson::{Bson, Document};

use super::{Failure, FailureKind};

/// Up when the member answering (`self: true`) is `PRIMARY`, `ARBITER`, or
/// a `SECONDARY` within `max_lag` of the primary's `optimeDate`. A secondary
/// that sees no primary is up: the lag cannot be measured, and the
/// primary's own check reports the primary.
pub fn judge(status: &Document, max_lag: Option<Duration>) -> Result<(), Failure> {
    let members: Vec<&Document> = status
        .get_array("members")
        .map_err(|e| Failure::new(FailureKind::Protocol, format!("replSetGetStatus: {e}")))?
        .iter()
        .filter_map(Bson::as_document)
        .collect();
    let me = members
        .iter()
        .find(|m| m.get_bool("self").unwrap_or(false))
        .ok_or_else(|| {
            Failure::new(
                FailureKind::Protocol,
                "replSetGetStatus lists no member with self: true",
            )
        })?;
    let state = me.get_str("stateStr").unwrap_or("UNKNOWN");
    match state {
        "PRIMARY" | "ARBITER" => Ok(()),
        "SECONDARY" => {
            let Some(max) = max_lag else {
                return Ok(());
            };
            let primary = members
                .iter()
                .find(|m| m.get_str("stateStr").ok() == Some("PRIMARY"));
            let Some(primary) = primary else {
                return Ok(());
            };
            let (Ok(p), Ok(s)) = (
                primary.get_datetime("optimeDate"),
                me.get_datetime("optimeDate"),
            ) else {
                return Err(Failure::new(
                    FailureKind::Lag,
                    "lag unknown: optimeDate missing",
                ));
            };
            let lag_ms = (p.timestamp_millis() - s.timestamp_millis()).max(0) as u64;
            let lag = Duration::from_millis(lag_ms);
            if lag > max {
                Err(Failure::new(
                    FailureKind::Lag,
                    format!("lag {lag:?} behind the primary, limit {max:?}"),
                ))
            } else {
                Ok(())
            }
        }
        other => Err(Failure::new(
            FailureKind::MemberState,
            format!("member is {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use mongodb::bson::{DateTime, doc};

    use super::*;

    fn member(id: i32, state: &str, optime_ms: i64, me: bool) -> Document {
        doc! {
            "_id": id,
            "name": format!("m{id}:27017"),
            "health": 1.0,
            "state": match state { "PRIMARY" => 1, "SECONDARY" => 2, _ => 3 },
            "stateStr": state,
            "optimeDate": DateTime::from_millis(optime_ms),
            "self": me,
        }
    }

    fn status(members: Vec<Document>) -> Document {
        doc! { "set": "rs0", "myState": 2, "members": members, "ok": 1.0 }
    }

    const MAX: Option<Duration> = Some(Duration::from_secs(10));

    #[test]
    fn primary_and_arbiter_are_up() {
        let s = status(vec![member(0, "PRIMARY", 1000, true)]);
        assert!(judge(&s, MAX).is_ok());
        let s = status(vec![
            member(0, "PRIMARY", 0, false),
            member(1, "ARBITER", 0, true),
        ]);
        assert!(judge(&s, MAX).is_ok());
    }

    #[test]
    fn a_secondary_is_judged_on_lag_behind_the_primary() {
        let s = status(vec![
            member(0, "PRIMARY", 100_000, false),
            member(1, "SECONDARY", 95_000, true),
        ]);
        assert!(judge(&s, MAX).is_ok());
        let s = status(vec![
            member(0, "PRIMARY", 100_000, false),
            member(1, "SECONDARY", 80_000, true),
        ]);
        let err = judge(&s, MAX).unwrap_err();
        assert_eq!(err.kind, FailureKind::Lag, "{err}");
        assert!(judge(&s, None).is_ok());
    }

    #[test]
    fn a_secondary_without_a_visible_primary_is_up() {
        let s = status(vec![
            member(0, "(not reachable/healthy)", 0, false),
            member(1, "SECONDARY", 80_000, true),
        ]);
        assert!(judge(&s, MAX).is_ok());
    }

    #[test]
    fn transitional_states_are_down() {
        for state in ["RECOVERING", "STARTUP2", "ROLLBACK"] {
            let s = status(vec![member(0, state, 0, true)]);
            let err = judge(&s, MAX).unwrap_err();
            assert_eq!(err.kind, FailureKind::MemberState);
            assert!(err.detail.contains(state));
        }
    }

    #[test]
    fn a_reply_without_self_is_a_protocol_failure() {
        let s = status(vec![member(0, "PRIMARY", 0, false)]);
        assert_eq!(judge(&s, MAX).unwrap_err().kind, FailureKind::Protocol);
        assert_eq!(
            judge(&doc! {"ok": 1.0}, MAX).unwrap_err().kind,
            FailureKind::Protocol
        );
    }
}
