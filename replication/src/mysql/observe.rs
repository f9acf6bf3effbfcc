//! Reading members: all at once, each bounded, failures kept as data.

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::bypass::bypass_accounts;
use super::flavor::Flavor;
use super::session::{Servers, Session, Timeouts, contact_error};
use super::status::{member_state, parse_replica_status, parse_variables};
use crate::error::ReplError;
use crate::snapshot::{MemberState, Snapshot};
use crate::spec::MemberSpec;

/// Reads every member concurrently and assembles the snapshot; with a
/// `deadline` (an orchestration's observe step) every read ends by it.
pub(super) async fn observe_all(
    servers: &Servers,
    flavor: Flavor,
    members: &[MemberSpec],
    timeouts: Timeouts,
    deadline: Option<Instant>,
) -> Snapshot {
    let mut tasks = JoinSet::new();
    for (i, spec) in members.iter().enumerate() {
        let (spec, all, servers) = (spec.clone(), members.to_vec(), servers.clone());
        switchyard_host::spawn_in(&mut tasks, async move {
            (
                i,
                read_member(&servers, flavor, &spec, &all, timeouts, deadline).await,
            )
        });
    }
    let mut states: Vec<Option<MemberState>> = vec![None; members.len()];
    while let Some(done) = tasks.join_next().await {
        if let Ok((i, state)) = done {
            states[i] = Some(state);
        }
    }
    let states = states
        .into_iter()
        .zip(members)
        .map(|(s, spec)| s.unwrap_or_else(|| MemberState::unread(spec)))
        .collect();
    Snapshot::assemble(states)
}

/// Reads one member, and the accounts that ignore its `read_only`; an
/// error becomes an unreachable member with its reason.
pub(super) async fn read_member(
    servers: &Servers,
    flavor: Flavor,
    spec: &MemberSpec,
    all: &[MemberSpec],
    timeouts: Timeouts,
    deadline: Option<Instant>,
) -> MemberState {
    let result = async {
        let mut s = match deadline {
            Some(d) => Session::open_until(servers, spec, timeouts, flavor, d).await?,
            None => Session::open(servers, spec, timeouts).await?,
        };
        let r = read_on(&mut s, flavor, spec, all).await;
        let r = match (r, flavor.bypass_query()) {
            (Ok(mut m), Some(q)) => {
                match s.rows(q).await {
                    Ok(rows) => m.read_only_bypass = bypass_accounts(&rows, &spec.credentials.user),
                    Err(e) => m.read_only_bypass_unknown = Some(e.to_string()),
                }
                Ok(m)
            }
            (r, _) => r,
        };
        s.close().await;
        r
    }
    .await;
    result.unwrap_or_else(|e| {
        let mut m = MemberState::unread(spec);
        m.contact_error = Some(contact_error(&e));
        m
    })
}

/// Reads one member on an open session.
pub(super) async fn read_on(
    s: &mut Session,
    flavor: Flavor,
    spec: &MemberSpec,
    all: &[MemberSpec],
) -> Result<MemberState, ReplError> {
    let bad = |what: &str, detail: String| ReplError::Command {
        member: spec.id.clone(),
        statement: what.to_string(),
        detail,
    };
    let vars = s.rows(flavor.variables_query()).await?;
    let vars = vars
        .first()
        .ok_or_else(|| bad(flavor.variables_query(), "no row".into()))?;
    let vars = parse_variables(flavor, vars).map_err(|e| bad(flavor.variables_query(), e))?;
    let status = s.rows(flavor.status_query()).await?;
    let status = match status.first() {
        Some(row) => {
            parse_replica_status(flavor, row).map_err(|e| bad(flavor.status_query(), e))?
        }
        None => None,
    };
    Ok(member_state(spec, all, vars, status))
}
