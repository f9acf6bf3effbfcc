//! Reading the replica set: `hello` on every member directly, then
//! `replSetGetStatus` and `replSetGetConfig` on one reachable member (the
//! primary when there is one).

use std::time::Duration;

use tokio::task::JoinSet;

use super::reply::{self, Config, Hello, Status};
use super::{MongoReplicaSet, commands, plan};
use crate::error::ReplError;
use crate::snapshot::{ContactError, ContactErrorKind, Snapshot};
use crate::spec::MemberSpec;

/// One observation with the raw replies planning needs.
pub(super) struct Observed {
    pub(super) snap: Snapshot,
    pub(super) status: Option<Status>,
    pub(super) config: Option<Config>,
}

impl MongoReplicaSet {
    pub(super) async fn hello(&self, id: &str) -> Result<Hello, ReplError> {
        let c = self.client(id)?;
        let r = c.run(commands::hello(), Duration::ZERO).await?;
        reply::parse_hello(&r).map_err(|e| bad_reply(id, "hello", e))
    }

    pub(super) async fn status_and_config(&self, i: usize) -> Result<(Status, Config), ReplError> {
        let c = &self.members[i];
        let id = &c.spec().id;
        let s = c.run(commands::get_status(), Duration::ZERO).await?;
        let s = reply::parse_status(&s).map_err(|e| bad_reply(id, "replSetGetStatus", e))?;
        let g = c.run(commands::get_config(), Duration::ZERO).await?;
        let g = reply::parse_config(&g).map_err(|e| bad_reply(id, "replSetGetConfig", e))?;
        Ok((s, g))
    }

    pub(super) async fn observe_full(&self) -> Observed {
        let mut tasks = JoinSet::new();
        for (i, c) in self.members.iter().enumerate() {
            let c = c.clone();
            switchyard_host::spawn_in(&mut tasks, async move {
                let r = c
                    .run(commands::hello(), Duration::ZERO)
                    .await
                    .and_then(|r| {
                        reply::parse_hello(&r).map_err(|e| bad_reply(&c.spec().id, "hello", e))
                    });
                (i, r)
            });
        }
        let mut reach: Vec<Result<Hello, ContactError>> = (0..self.members.len())
            .map(|_| {
                Err(contact(&ReplError::Conflict {
                    detail: "not read".into(),
                }))
            })
            .collect();
        while let Some(Ok((i, r))) = tasks.join_next().await {
            reach[i] = r.map_err(|e| contact(&e));
        }
        let mut order: Vec<usize> = (0..reach.len()).filter(|&i| reach[i].is_ok()).collect();
        order.sort_by_key(|&i| !reach[i].as_ref().is_ok_and(|h| h.writable_primary));
        let mut status = None;
        for i in order {
            if let Ok(sc) = self.status_and_config(i).await {
                status = Some(sc);
                break;
            }
        }
        let specs: Vec<MemberSpec> = self.members.iter().map(|m| m.spec().clone()).collect();
        let snap = plan::snapshot(
            &specs,
            &reach,
            status.as_ref().map(|s| &s.0),
            status.as_ref().map(|s| &s.1),
        );
        let (status, config) = match status {
            Some((s, c)) => (Some(s), Some(c)),
            None => (None, None),
        };
        Observed {
            snap,
            status,
            config,
        }
    }
}

pub(super) fn bad_reply(member: &str, command: &str, detail: String) -> ReplError {
    ReplError::Command {
        member: member.to_string(),
        statement: command.to_string(),
        detail: format!("unexpected reply: {detail}"),
    }
}

pub(super) fn contact(e: &ReplError) -> ContactError {
    let (kind, detail) = match e {
        ReplError::Unreachable { detail, .. } => (ContactErrorKind::Unreachable, detail.clone()),
        ReplError::AccessDenied { detail, .. } => (ContactErrorKind::AccessDenied, detail.clone()),
        other => (ContactErrorKind::Failed, other.to_string()),
    };
    ContactError { kind, detail }
}
