//! MongoDB decisions, pure: the snapshot from the replies, the reconfig
//! documents, and what a failover must do.
//!
//! MongoDB elects its own primary whenever a majority of voting members is
//! up, so a failover mostly waits for that election (or hands over to a
//! named member). Only when the majority is lost is there something for
//! the controller to force — a `replSetReconfig` with `force: true` keeping
//! the surviving members — and that may roll back majority-committed writes
//! when the others return: it is done only when the database's policy sets
//! `allow_data_loss = true`.

use std::collections::BTreeSet;

use mongodb::bson::{Bson, Document};

use super::reply::{Config, Hello, Status};
use crate::candidate::{choose_candidate, vet_target};
use crate::error::ReplError;
use crate::gtid::Position;
use crate::lag::LagHistory;
use crate::snapshot::{ContactError, MemberState, Role, Snapshot};
use crate::spec::{MemberSpec, Promotion, Rules};

/// Highest priority MongoDB accepts.
pub const MAX_PRIORITY: f64 = 1000.0;

/// What a failover does, decided from one observation.
#[derive(Debug, Clone, PartialEq)]
pub enum FailoverPlan {
    /// Another member is already the healthy primary: nothing to do.
    AlreadyDone {
        /// The current primary.
        primary: String,
    },
    /// The primary is healthy and the failover is forced: hand over to
    /// `to` as a planned switchover would.
    HandOver {
        /// The member to promote.
        to: String,
        /// Why it was chosen.
        reasons: Vec<String>,
    },
    /// A majority of voting members is up: MongoDB elects a primary by
    /// itself; wait for it, then hand over to `then` if named.
    AwaitElection {
        /// A member the operator named.
        then: Option<String>,
    },
    /// The majority is lost and data loss is allowed: force a config of the
    /// surviving members on `on`, which becomes primary.
    ForcedReconfig {
        /// Member to run the forced reconfig on (the new primary).
        on: String,
        /// The new configuration.
        config: Document,
        /// Why it was chosen and what it costs.
        reasons: Vec<String>,
    },
}

fn same_host(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Builds the snapshot: `reach[i]` is the direct `hello` to member `i`,
/// `status`/`config` come from one reachable member (the primary when
/// there is one). Members that `config` marks unelectable (priority 0,
/// hidden, delayed, arbiter) are treated as `must_not`.
pub fn snapshot(
    specs: &[MemberSpec],
    reach: &[Result<Hello, ContactError>],
    status: Option<&Status>,
    config: Option<&Config>,
) -> Snapshot {
    let status_of = |spec: &MemberSpec| {
        status.and_then(|s| s.members.iter().find(|m| same_host(&m.name, &spec.address)))
    };
    let primary_millis = status
        .and_then(|s| s.members.iter().find(|m| m.state == "PRIMARY" && m.healthy))
        .and_then(|p| p.optime_millis);
    let members = specs
        .iter()
        .zip(reach)
        .map(|(spec, hello)| {
            let mut m = MemberState::unread(spec);
            match hello {
                Ok(h) => {
                    m.reachable = true;
                    m.role = if h.writable_primary {
                        Role::Primary
                    } else if h.secondary {
                        Role::Replica
                    } else {
                        Role::Unknown
                    };
                    m.position = h.last_write.map(Position::OpTime);
                }
                Err(e) => m.contact_error = Some(e.clone()),
            }
            if let Some(s) = status_of(spec) {
                m.state = Some(s.state.clone());
                if m.reachable || s.state == "PRIMARY" {
                    m.role = match s.state.as_str() {
                        "PRIMARY" => Role::Primary,
                        "SECONDARY" => Role::Replica,
                        "ARBITER" => Role::Arbiter,
                        _ => Role::Unknown,
                    };
                }
                let replicating = s.healthy && s.state == "SECONDARY";
                m.io_running = replicating;
                m.sql_running = replicating;
                if s.healthy
                    && let Some(o) = s.optime.filter(|o| o.term >= 0)
                {
                    m.position = Some(Position::OpTime(o));
                }
                if !s.healthy {
                    m.io_error = s.message.clone();
                }
                m.source = s.sync_source.as_deref().map(|src| {
                    specs
                        .iter()
                        .find(|o| same_host(&o.address, src))
                        .map(|o| o.id.clone())
                        .unwrap_or_else(|| src.to_string())
                });
                if let (Some(p), Some(me)) = (primary_millis, s.optime_millis)
                    && s.healthy
                    && m.role == Role::Replica
                {
                    m.lag = Some(std::time::Duration::from_millis(
                        u64::try_from(p - me).unwrap_or(0),
                    ));
                }
            }
            if let Some(c) =
                config.and_then(|c| c.members.iter().find(|c| same_host(&c.host, &spec.address)))
                && (c.priority <= 0.0 || c.hidden || c.delay_secs > 0 || c.arbiter || c.votes == 0)
            {
                m.promotion = Promotion::MustNot;
            }
            m.read_only = m.reachable.then_some(m.role != Role::Primary);
            m.received = m.position.clone();
            m
        })
        .collect();
    Snapshot::assemble(members)
}

/// The configuration with `target`'s priority above every other member's
/// (so that it wins the next election and takes over once caught up),
/// `version` incremented and the server-managed `term` left out.
pub fn raise_priority(config: &Config, target_host: &str) -> Result<Document, String> {
    let Some(t) = config
        .members
        .iter()
        .find(|m| same_host(&m.host, target_host))
    else {
        return Err(format!("{target_host} is not in the replica set config"));
    };
    if t.arbiter || t.hidden || t.delay_secs > 0 || t.votes == 0 {
        return Err(format!(
            "{target_host} is an arbiter, hidden, delayed or non-voting member: it cannot become primary"
        ));
    }
    let top = config
        .members
        .iter()
        .filter(|m| !same_host(&m.host, target_host))
        .map(|m| m.priority)
        .fold(0.0_f64, f64::max);
    let wanted = (top + 1.0).min(MAX_PRIORITY).max(t.priority);
    edit_config(config, |host, member| {
        if same_host(host, target_host) {
            member.insert("priority", wanted);
        }
        true
    })
}

/// The configuration `original` again, as the next version (to undo a
/// priority change after a handover that did not happen).
pub fn restore(original: &Config, current_version: i64) -> Document {
    let mut raw = original.raw.clone();
    raw.insert("version", current_version + 1);
    raw.remove("term");
    raw
}

/// The forced configuration: only the members in `keep` (hosts), with
/// `target` given the top priority.
pub fn forced_config(
    config: &Config,
    keep: &BTreeSet<String>,
    target_host: &str,
) -> Result<Document, String> {
    let mut doc = edit_config(config, |host, member| {
        if same_host(host, target_host) {
            member.insert("priority", MAX_PRIORITY);
        }
        keep.iter().any(|k| same_host(k, host))
    })?;
    let n = doc.get_array("members").map(Vec::len).unwrap_or(0);
    if n == 0 {
        return Err("no surviving member to keep".to_string());
    }
    doc.insert("version", config.version + 1);
    Ok(doc)
}

/// Copies the raw config, keeping the members `edit` returns true for
/// (after letting it change them), with the version bumped.
fn edit_config(
    config: &Config,
    mut edit: impl FnMut(&str, &mut Document) -> bool,
) -> Result<Document, String> {
    let mut raw = config.raw.clone();
    let members = match raw.get("members") {
        Some(Bson::Array(a)) => a.clone(),
        _ => return Err("config without members".to_string()),
    };
    let mut kept = Vec::new();
    for m in members {
        let Bson::Document(mut d) = m else {
            return Err("a config member is not a document".to_string());
        };
        let host = d.get_str("host").unwrap_or_default().to_string();
        if edit(&host, &mut d) {
            kept.push(Bson::Document(d));
        }
    }
    raw.insert("members", kept);
    raw.insert("version", config.version + 1);
    raw.remove("term");
    Ok(raw)
}

/// Decides a failover. `snap` comes from [`snapshot`]; `status` and
/// `config` from the same observation.
pub fn plan_failover(
    snap: &Snapshot,
    status: &Status,
    config: &Config,
    rules: &Rules,
    to: Option<&str>,
    force: bool,
    expected_old_primary: Option<&str>,
) -> Result<FailoverPlan, ReplError> {
    plan_failover_with(
        snap,
        status,
        config,
        rules,
        &LagHistory::default(),
        to,
        force,
        expected_old_primary,
    )
}

/// [`plan_failover`], judging candidates' lag with `history` (what was
/// seen while the primary was alive, see [`crate::lag`]).
#[allow(clippy::too_many_arguments)]
pub fn plan_failover_with(
    snap: &Snapshot,
    status: &Status,
    config: &Config,
    rules: &Rules,
    history: &LagHistory,
    to: Option<&str>,
    force: bool,
    expected_old_primary: Option<&str>,
) -> Result<FailoverPlan, ReplError> {
    let id_of = |host: &str| {
        snap.members
            .iter()
            .find(|m| same_host(&m.address, host))
            .map(|m| m.id.clone())
    };
    let healthy_primary = status
        .members
        .iter()
        .find(|m| m.state == "PRIMARY" && m.healthy)
        .and_then(|m| id_of(&m.name));
    let old = expected_old_primary
        .map(str::to_string)
        .or_else(|| healthy_primary.clone())
        .or_else(|| snap.primary.clone());
    let mut view = snap.clone();
    view.primary = old.clone();

    if let Some(p) = healthy_primary {
        if Some(&p) != old.as_ref() {
            if let Some(t) = to.filter(|t| *t != p) {
                return Err(ReplError::Conflict {
                    detail: format!("asked to fail over to {t}, but {p} is already the primary"),
                });
            }
            return Ok(FailoverPlan::AlreadyDone { primary: p });
        }
        if !force {
            return Err(ReplError::PrimaryHealthy { member: p });
        }
        let choice = match to {
            Some(t) => vet_target(&view, rules, history, t, true)?,
            None => choose_candidate(&view, rules, history)?,
        };
        return Ok(FailoverPlan::HandOver {
            to: choice.member,
            reasons: choice.reasons,
        });
    }

    let votes_total: i64 = config.members.iter().map(|m| m.votes).sum();
    let up: BTreeSet<String> = status
        .members
        .iter()
        .filter(|m| m.healthy)
        .map(|m| m.name.clone())
        .collect();
    let votes_up: i64 = config
        .members
        .iter()
        .filter(|m| up.iter().any(|u| same_host(u, &m.host)))
        .map(|m| m.votes)
        .sum();
    let majority = votes_total / 2 + 1;
    if votes_up >= majority {
        return Ok(FailoverPlan::AwaitElection {
            then: to.map(str::to_string),
        });
    }
    let why = format!(
        "the majority of voting members is lost ({votes_up} of {votes_total} votes up, \
         {majority} needed): only a forced reconfig can elect a primary, and it may roll back \
         majority-committed writes when the lost members return"
    );
    if !rules.allow_data_loss {
        return Err(ReplError::DataLossNotAllowed {
            reason: format!("{why}; the database's policy does not set allow_data_loss = true"),
        });
    }
    let relaxed = Rules {
        max_lag: std::time::Duration::MAX,
        ..rules.clone()
    };
    let choice = match to {
        Some(t) => vet_target(&view, &relaxed, history, t, force)?,
        None => choose_candidate(&view, &relaxed, history)?,
    };
    let target = snap
        .member(&choice.member)
        .map(|m| m.address.clone())
        .unwrap_or_default();
    let mut keep = up;
    keep.insert(target.clone());
    let doc = forced_config(config, &keep, &target)
        .map_err(|detail| ReplError::InvalidSpec { detail })?;
    let mut reasons = vec![format!("{why}; allowed by allow_data_loss = true")];
    reasons.extend(choice.reasons);
    Ok(FailoverPlan::ForcedReconfig {
        on: choice.member,
        config: doc,
        reasons,
    })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
