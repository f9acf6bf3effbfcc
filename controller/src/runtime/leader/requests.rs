//! Operator requests (manual failover, switchover): carried out through
//! the journal in their database's lane, after the promotion gate; void
//! ones dropped with a history event saying why.

use std::collections::{BTreeMap, BTreeSet};

use super::term::{Origin, RequestStep};
use super::{Lead, LeaderContext, gate};
use crate::engine::Topology;
use crate::executor::ActionSpec;
use crate::executor::journal::OperatorRequest;
use crate::runtime::control;
use crate::runtime::lanes::Lane;
use crate::store::Leadership;
use crate::store::kv::Op;

/// Carries out operator requests (manual failover, switchover) through the
/// journal, each in its database's lane (a request whose lane is busy waits
/// for the next tick). They run even while automation is paused: pause
/// stops the engine, not the operator.
pub(super) async fn serve_requests(
    ctx: &LeaderContext,
    leader: &Leadership,
    st: &mut Lead,
    controls: &control::ControlSnapshot,
    topology: &Topology,
    avoid: &BTreeSet<String>,
) {
    let requests: Vec<(String, OperatorRequest)> = match controls.requests() {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "cannot list operator requests");
            return;
        }
    };
    let now = ctx.clock.now();
    for (id, request) in requests {
        let mut action = request.action.clone();
        let void = request_void(&request, topology, now)
            .or_else(|| unreadable_void(&request, &st.unreadable));
        if let Some(why) = void {
            drop_request(ctx, leader, st, &id, &request, &why, now).await;
            continue;
        }
        if !st
            .term
            .may_start(&Lane::of(&action), None, switchyard_host::time::now())
        {
            continue;
        }
        if let ActionSpec::Failover { avoid_regions, .. } = &mut action
            && avoid_regions.is_empty()
        {
            avoid_regions.clone_from(avoid);
        }
        // The primary the intent replaces is the one on record now, which
        // `request_void` has just compared with the operator's.
        if let ActionSpec::Failover {
            database,
            from_member,
            ..
        }
        | ActionSpec::Switchover {
            database,
            from_member,
            ..
        } = &mut action
            && from_member.is_empty()
            && let Some(db) = topology.databases.get(database.as_str())
        {
            from_member.clone_from(&db.primary);
        }
        let mut reasons = vec![format!(
            "requested by {} at {}",
            request.requested_by,
            request.requested_at.to_rfc3339()
        )];
        reasons.extend(request.reason.clone());
        reasons.extend(request.origin.as_ref().map(|o| format!("from {o}")));
        let answer = gate(ctx, &action, now).await;
        let shut = answer.as_ref().err().map(String::as_str);
        match st.term.request_gate(&id, action.subject(), shut, now) {
            RequestStep::Start => reasons.extend(answer.ok().flatten()),
            RequestStep::Wait { note } => {
                // The request stays until the gate opens (or the operator
                // forces it); the CLI is told why, once.
                if note {
                    let reason = shut.unwrap_or_default();
                    tracing::info!(request = %id, database = %action.subject(), "operator failover waits for the promotion gate: {reason}");
                    // Only while the request stands: a cancel in between
                    // must not leave a waiting key behind for ever.
                    let keys = ctx.store.keys();
                    let put = crate::store::encode(&id, &reason)
                        .map(|json| vec![Op::put(keys.request_waiting(&id), json)]);
                    if let Ok(ops) = put
                        && let Ok(true) = ctx
                            .store
                            .fenced_txn_while(leader, &keys.request(&id), ops)
                            .await
                    {
                        st.term.noted(&id);
                    }
                }
                continue;
            }
        }
        tracing::info!(request = %id, action = action.kind(), subject = action.subject(), "operator request");
        st.start(
            ctx,
            leader,
            action,
            reasons,
            Some(id.clone()),
            Origin::Request(id),
            now,
        );
    }
}

/// Why a request must not be carried out any more, if so: not started by
/// its deadline, or the primary is no longer the one the operator saw (a
/// request is never re-aimed at another primary). Pure.
pub fn request_void(
    request: &OperatorRequest,
    topology: &Topology,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<String> {
    let database = request.action.subject();
    if let Some(at) = request.expires_at
        && now > at
    {
        return Some(format!(
            "expired: not started by {} (its deadline); nothing done",
            at.to_rfc3339()
        ));
    }
    let expected = request.expected_primary.as_deref()?;
    let actual = topology
        .databases
        .get(database)
        .map_or("", |d| d.primary.as_str());
    (actual != expected).then(|| {
        format!(
            "refused: the primary of {database} is {}, not {expected} as the operator saw; \
             nothing done (ask again against the current primary)",
            if actual.is_empty() { "unknown" } else { actual }
        )
    })
}

/// Why a failover or switchover of a database whose record cannot be
/// decoded must not start: its end could never be recorded over that
/// record, and it would stay pending for every later leader to retry.
/// (`request_void` already refuses one that names the primary the
/// operator saw; this covers one written without.) Pure.
pub fn unreadable_void(
    request: &OperatorRequest,
    unreadable: &BTreeMap<String, String>,
) -> Option<String> {
    let database = request.action.subject();
    let moves_primary = matches!(
        request.action,
        ActionSpec::Failover { .. } | ActionSpec::Switchover { .. }
    );
    let why = unreadable.get(database).filter(|_| moves_primary)?;
    Some(format!(
        "refused: the record of {database} cannot be read ({why}); nothing done until it is mended"
    ))
}

/// Removes a void request and says why in history, once.
pub(super) async fn drop_request(
    ctx: &LeaderContext,
    leader: &Leadership,
    st: &mut Lead,
    id: &str,
    request: &OperatorRequest,
    why: &str,
    now: chrono::DateTime<chrono::Utc>,
) {
    let keys = ctx.store.keys();
    let event = crate::executor::HistoryEvent {
        at: now,
        by: ctx.id.clone(),
        what: format!(
            "request {id} ({} of {} by {}) {why}",
            request.action.kind(),
            request.action.subject(),
            request.requested_by
        ),
        reasons: request.reason.iter().cloned().collect(),
        journal_id: None,
        steps: Vec::new(),
    };
    let hid = crate::executor::history_id(now, &format!("request-{id}"));
    let ops = match crate::store::encode(&hid, &event) {
        Ok(json) => vec![
            Op::delete(keys.request(id)),
            Op::delete(keys.request_waiting(id)),
            Op::put(keys.history(&hid), json),
        ],
        Err(e) => {
            tracing::warn!(request = %id, error = %e, "cannot record a void request");
            return;
        }
    };
    match ctx
        .store
        .fenced_txn_while(leader, &keys.request(id), ops)
        .await
    {
        Ok(true) => {
            tracing::warn!(request = %id, "operator request {why}");
            st.term.request_gone(id);
        }
        // Cancelled meanwhile: the operator's cancel said so already.
        Ok(false) => st.term.request_gone(id),
        Err(e) => tracing::debug!(request = %id, error = %e, "cannot drop a void request yet"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine;

    #[test]
    fn a_request_is_void_once_expired_or_aimed_at_another_primary() {
        let at = |s: i64| chrono::DateTime::from_timestamp(s, 0).expect("time");
        let mut topology = Topology::default();
        topology.databases.insert(
            "orders".into(),
            engine::Database {
                members: BTreeMap::new(),
                primary: "m0".into(),
            },
        );
        let request = |expected: Option<&str>, expires: Option<i64>| OperatorRequest {
            action: ActionSpec::Switchover {
                database: "orders".into(),
                to_member: "m1".into(),
                from_member: String::new(),
            },
            requested_by: "otto".into(),
            requested_at: at(0),
            reason: None,
            origin: None,
            expected_primary: expected.map(str::to_string),
            expires_at: expires.map(at),
        };
        // (expected primary, expiry, now, void because)
        let cases = [
            (None, None, 100, None),
            (Some("m0"), Some(200), 100, None),
            (Some("m0"), Some(200), 200, None),
            (Some("m0"), Some(200), 201, Some("expired")),
            (
                Some("m2"),
                None,
                100,
                Some("is m0, not m2 as the operator saw"),
            ),
            (Some("m2"), Some(50), 100, Some("expired")),
        ];
        for (expected, expires, now, void) in cases {
            let got = request_void(&request(expected, expires), &topology, at(now));
            match (void, &got) {
                (None, None) => {}
                (Some(why), Some(text)) if text.contains(why) => {}
                _ => panic!("{expected:?} {expires:?} at {now}: {got:?}"),
            }
        }
        topology.databases.clear();
        let unknown = request_void(&request(Some("m0"), None), &topology, at(0));
        assert!(unknown.is_some_and(|t| t.contains("is unknown, not m0")));
    }

    /// A failover or switchover of a database whose record cannot be read
    /// is refused even without the primary the operator saw; anything
    /// else, and other databases, are not.
    #[test]
    fn a_primary_move_of_an_unreadable_database_is_void() {
        let request = |action: ActionSpec| OperatorRequest {
            action,
            requested_by: "otto".into(),
            requested_at: chrono::DateTime::from_timestamp(0, 0).expect("time"),
            reason: None,
            origin: None,
            expected_primary: None,
            expires_at: None,
        };
        let failover = |database: &str| ActionSpec::Failover {
            database: database.into(),
            from_member: String::new(),
            to_member: None,
            force: true,
            avoid_regions: Default::default(),
        };
        let unreadable =
            BTreeMap::from([("orders".to_string(), "bad value at orders".to_string())]);
        let void = unreadable_void(&request(failover("orders")), &unreadable);
        assert!(
            void.as_deref()
                .is_some_and(|t| t.contains("record of orders cannot be read")),
            "{void:?}"
        );
        let switchover = ActionSpec::Switchover {
            database: "orders".into(),
            to_member: "m1".into(),
            from_member: String::new(),
        };
        assert!(unreadable_void(&request(switchover), &unreadable).is_some());
        assert_eq!(
            unreadable_void(&request(failover("users")), &unreadable),
            None
        );
        assert_eq!(
            unreadable_void(&request(failover("orders")), &BTreeMap::new()),
            None
        );
    }
}
