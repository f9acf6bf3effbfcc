//! Operator commands that read or set the cluster's shared state in etcd:
//! `status`, `history`, `pause`, `resume`, `drain`, `undrain`.
//!
//! Pause and drain are the operator's will, valid whoever leads, so they are
//! plain (unfenced) writes of control keys; the leader reads them every
//! second. Each change is also written to history. Every command is
//! idempotent: pausing a paused cluster says so and changes nothing.

use std::io::Write;
use std::path::Path;

use chrono::Utc;
use serde::Serialize;

use crate::config;
use crate::engine::RegionState;
use crate::executor::{HistoryEvent, JournalEntry, Status, history_id};
use crate::fence::lease::{LeaseValue, Vouch};
use crate::runtime::control::DatabaseState;
use crate::runtime::peers::Registration;
use crate::store::{Store, encode};

/// How to print results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Output {
    /// Aligned text for people.
    #[default]
    Table,
    /// One JSON document.
    Json,
}

impl Switch {
    /// The command's name, for JSON output.
    fn command(&self) -> &'static str {
        match self {
            Switch::Pause => "pause",
            Switch::Resume => "resume",
            Switch::Drain(_) => "drain",
            Switch::Undrain(_) => "undrain",
            Switch::Failback(_) => "failback",
        }
    }
}

/// An operator switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Switch {
    /// Stop acting (plans are still computed and shown).
    Pause,
    /// Act again.
    Resume,
    /// Take a region out of traffic whatever its health.
    Drain(String),
    /// Give a drained region back to the engine.
    Undrain(String),
    /// Approve the manual failback of a recovered region (ramp starts now).
    Failback(String),
}

/// Why an operator command failed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The config could not be loaded.
    #[error("{0}")]
    Config(#[from] config::LoadError),
    /// etcd failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The etcd TLS files or login named by the config cannot be used.
    #[error(transparent)]
    EtcdAccess(#[from] crate::store::AccessError),
    /// A `[tls]` file cannot be used.
    #[error(transparent)]
    GrpcTls(#[from] crate::tls::TlsFileError),
    /// The command names something the config does not declare.
    #[error("{0}")]
    Usage(String),
    /// Writing the output failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The standing alarms under `ALARMS` (nothing when there are none), as
/// `status` and `plan` show them.
pub(crate) fn print_alarms(
    out: &mut dyn Write,
    alarms: &[crate::engine::PublishedAlarm],
) -> std::io::Result<()> {
    if alarms.is_empty() {
        return Ok(());
    }
    writeln!(out, "ALARMS")?;
    for a in alarms {
        writeln!(
            out,
            "  {:<16} {:<12} since {}: {}",
            crate::engine::kind_label(a.kind),
            a.subject,
            a.since.format("%Y-%m-%d %H:%M:%S"),
            a.message
        )?;
    }
    Ok(())
}

pub(crate) async fn connect(path: &Path) -> Result<(config::Config, Store), OpsError> {
    let cfg = config::load(path)?.config;
    let access = crate::store::EtcdAccess::from_config(&cfg)?;
    let store = Store::connect_reachable(
        &cfg.etcd.endpoints,
        &cfg.cluster,
        &access,
        std::time::Duration::from_millis(500),
    )
    .await?;
    Ok((cfg, store))
}

/// Applies a switch; prints what changed (or that nothing had to).
pub async fn switch(
    path: &Path,
    which: Switch,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    let (cfg, store) = connect(path).await?;
    let command = which.command();
    // One line for people, one JSON object for scripts.
    let mut say = |changed: bool, what: &str| -> Result<(), OpsError> {
        match output {
            Output::Table if changed => writeln!(out, "{what}")?,
            Output::Table => writeln!(out, "unchanged: {what} already")?,
            Output::Json => writeln!(
                out,
                "{}",
                serde_json::json!({ "command": command, "changed": changed, "what": what })
            )?,
        }
        Ok(())
    };
    let keys = store.keys().clone();
    let (key, on, what) = match &which {
        Switch::Pause => (keys.pause(), true, "automation paused".to_string()),
        Switch::Resume => (keys.pause(), false, "automation resumed".to_string()),
        Switch::Failback(r) => {
            check_region(&cfg, r)?;
            let now = Utc::now();
            let json = encode(r, &now.to_rfc3339())?;
            store
                .put_control(keys.failback(r), &String::from_utf8_lossy(&json))
                .await?;
            let what = format!("failback of region {r} approved");
            record(&store, &what).await?;
            return say(true, &what);
        }
        Switch::Drain(r) | Switch::Undrain(r) => {
            check_region(&cfg, r)?;
            let on = matches!(which, Switch::Drain(_));
            let verb = if on { "drained" } else { "undrained" };
            (keys.drain(r), on, format!("region {r} {verb}"))
        }
    };
    let present = store.exists(&key).await?;
    if present == on {
        return say(false, &what);
    }
    if on {
        store.put_control(key, &Utc::now().to_rfc3339()).await?;
    } else {
        store.delete_control(key).await?;
    }
    record(&store, &what).await?;
    say(true, &what)
}

fn check_region(cfg: &config::Config, r: &str) -> Result<(), OpsError> {
    if cfg.region(r).is_some() {
        return Ok(());
    }
    let declared: Vec<&str> = cfg.regions.iter().map(|r| r.name.as_str()).collect();
    Err(OpsError::Usage(format!(
        "region {r:?} is not declared; declared regions: {}",
        declared.join(", ")
    )))
}

/// Writes an operator event to history.
async fn record(store: &Store, what: &str) -> Result<(), OpsError> {
    let now = Utc::now();
    let event = HistoryEvent {
        at: now,
        by: format!("operator@{}", hostname()),
        what: what.to_string(),
        reasons: vec!["operator command".into()],
        journal_id: None,
        steps: Vec::new(),
    };
    let hid = history_id(now, "operator");
    let json = encode(&hid, &event)?;
    store
        .put_control(store.keys().history(&hid), &String::from_utf8_lossy(&json))
        .await?;
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// What `status` shows.
#[derive(Debug, Serialize)]
pub struct StatusView {
    /// The leader's gRPC address, if any controller leads.
    pub leader: Option<String>,
    /// Automation paused.
    pub paused: bool,
    /// Drained regions.
    pub drained: Vec<String>,
    /// The alarms standing, as the leader last published them: a guard
    /// rail holding automation back (fail-open, settle window,
    /// `max_evacuated`, anti-flap, manual failover with its command).
    pub alarms: Vec<crate::engine::PublishedAlarm>,
    /// Region → state.
    pub regions: Vec<(String, RegionState)>,
    /// Record → desired weights.
    pub traffic: Vec<(String, std::collections::BTreeMap<String, u32>)>,
    /// Intents not yet finished.
    pub pending: Vec<JournalEntry>,
    /// Database → recorded primary and epoch.
    pub databases: Vec<(String, DatabaseState)>,
    /// Database → its primary lease (absent: nobody renews it now).
    pub primary_leases: Vec<(String, LeaseValue)>,
    /// Database → who could fence its primary: the primary's region and
    /// its live controllers.
    pub fencing: Vec<(String, Fencing)>,
    /// Database → member → accounts that bypass `read_only` (a fence
    /// cannot stop them), as the leader last read them.
    pub bypass: Vec<(String, crate::runtime::rejoin::Bypass)>,
}

/// Who could fence a database's recorded primary if its region were cut
/// off, and whether the promotion gate could ever open for replacing it
/// without `--force`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fencing {
    /// The primary's region (`None`: the member is not in the config).
    pub region: Option<String>,
    /// The controllers the config puts in that region.
    pub controllers: Vec<String>,
    /// Those that are alive: holding the primary lease now, or answering a
    /// ping from here.
    pub live: Vec<String>,
    /// Whether one of them took the primary's lease since it became
    /// primary (at this epoch): until then the gate stays shut for
    /// replacing it.
    pub vouched: bool,
    /// What the operator must know, in words; `None` when all is well.
    pub warning: Option<String>,
}

/// How long `status` waits for a controller's ping answer.
const STATUS_PING: std::time::Duration = std::time::Duration::from_millis(1_000);

/// Works out [`Fencing`] for `db`'s recorded primary: pings (at once) the
/// registered controllers of its region that do not hold the lease.
async fn fencing_of(
    cfg: &config::Config,
    tls: Option<&tonic::transport::ClientTlsConfig>,
    db: &str,
    state: &DatabaseState,
    lease: Option<&LeaseValue>,
    vouch: Option<&Vouch>,
    registered: &[(String, Registration)],
) -> Fencing {
    let region = cfg
        .databases
        .iter()
        .find(|d| d.name == db)
        .and_then(|d| d.members.iter().find(|m| m.id == state.primary))
        .map(|m| m.region.clone());
    let controllers: Vec<String> = cfg
        .controllers
        .iter()
        .filter(|c| Some(&c.region) == region.as_ref())
        .map(|c| c.id.clone())
        .collect();
    let vouched = vouch.is_some_and(|v| {
        v.covers(&state.primary, state.epoch) && controllers.contains(&v.lease.holder)
    });
    let holder = lease
        .filter(|l| l.primary == state.primary && controllers.contains(&l.holder))
        .map(|l| l.holder.clone());
    let checks = controllers.iter().map(|id| {
        let holder = holder.clone();
        async move {
            if holder.as_deref() == Some(id.as_str()) {
                return (id.clone(), Ok(()));
            }
            let Some((_, r)) = registered.iter().find(|(rid, _)| rid == id) else {
                return (id.clone(), Err("never registered".to_string()));
            };
            let answer = crate::api::peer::ping_once(
                &r.address,
                "switchyard-cli",
                &cfg.cluster,
                STATUS_PING,
                tls,
            )
            .await;
            let answer = match answer {
                Ok(reply) if reply.id == *id => Ok(()),
                Ok(reply) => Err(format!("{} answers as {}", r.address, reply.id)),
                Err(e) => Err(format!("registered at {}, does not answer: {e}", r.address)),
            };
            (id.clone(), answer)
        }
    });
    let answers = futures_util::future::join_all(checks).await;
    let live: Vec<String> = answers
        .iter()
        .filter(|(_, a)| a.is_ok())
        .map(|(id, _)| id.clone())
        .collect();
    let p = &state.primary;
    let warning = match &region {
        None => Some(format!(
            "{p} is not a member of {db} in this config: the gate waits for any failover away from it"
        )),
        Some(r) if controllers.is_empty() => Some(format!(
            "region {r} has no controller: nobody there can fence {p} if the region is cut off; \
             a failover away from {p} does not wait for a lease (`config check` warns about this)"
        )),
        Some(r) if live.is_empty() => {
            let why: Vec<String> = answers
                .iter()
                .map(|(id, a)| format!("{id}: {}", a.as_ref().err().map_or("?", |e| e)))
                .collect();
            let gate = if vouched {
                String::new()
            } else {
                format!(
                    "; no controller of {r} has taken {p}'s lease since it became primary \
                     (epoch {}), so a failover away from {p} waits at the promotion gate until \
                     forced",
                    state.epoch
                )
            };
            Some(format!(
                "NO LIVE CONTROLLER IN REGION {r} ({}): nobody can fence {p} if region {r} is \
                 cut off{gate}",
                why.join("; ")
            ))
        }
        Some(r) if !vouched => Some(format!(
            "no controller of region {r} has taken {p}'s lease since it became primary (epoch \
             {}; {} answer{}, and take it only while they can read {p}): a failover away from \
             {p} waits at the promotion gate until forced",
            state.epoch,
            live.join(", "),
            if live.len() == 1 { "s" } else { "" }
        )),
        Some(_) => None,
    };
    Fencing {
        region,
        controllers,
        live,
        vouched,
        warning,
    }
}

/// Prints the cluster's state.
pub async fn status(path: &Path, output: Output, out: &mut dyn Write) -> Result<(), OpsError> {
    let (cfg, store) = connect(path).await?;
    let keys = store.keys();
    // Lenient: an entry a newer version wrote must not hide the rest.
    let journal = store
        .scan_json::<JournalEntry>(&keys.journal_prefix())
        .await?;
    for (key, why) in &journal.undecodable {
        eprintln!("warning: journal entry {key} cannot be decoded ({why}); not shown");
    }
    let journal: Vec<(String, JournalEntry)> = journal.values;
    let databases: Vec<(String, DatabaseState)> = store.list_json(&keys.databases_prefix()).await?;
    let primary_leases: Vec<(String, LeaseValue)> =
        store.list_json(&keys.primary_leases_prefix()).await?;
    let registered: Vec<(String, Registration)> =
        store.list_json(&keys.controllers_prefix()).await?;
    // The liveness pings present this host's certificate under `[tls]`: an
    // unusable one is an error, not a dead controller.
    let tls = crate::tls::client_config(&cfg)?;
    let mut fencing = Vec::new();
    for (db, state) in &databases {
        let vouch: Option<Vouch> = store.get_json(&keys.vouched(db)).await?;
        let lease = primary_leases.iter().find(|(d, _)| d == db).map(|(_, l)| l);
        fencing.push((
            db.clone(),
            fencing_of(
                &cfg,
                tls.as_ref(),
                db,
                state,
                lease,
                vouch.as_ref(),
                &registered,
            )
            .await,
        ));
    }
    let view = StatusView {
        leader: store.leader_value().await?,
        paused: store.exists(&keys.pause()).await?,
        drained: store.list_keys(&keys.drains_prefix()).await?,
        alarms: store.get_json(&keys.alarms()).await?.unwrap_or_default(),
        regions: store.list_json(&keys.regions_prefix()).await?,
        traffic: store.list_json(&keys.traffic_prefix()).await?,
        pending: journal
            .into_iter()
            .map(|(_, e)| e)
            .filter(|e| e.status == Status::Pending)
            .collect(),
        databases,
        primary_leases,
        fencing,
        bypass: store.list_json(&keys.bypass_prefix()).await?,
    };
    if output == Output::Json {
        serde_json::to_writer_pretty(&mut *out, &view).map_err(std::io::Error::other)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "leader     {}",
        view.leader.as_deref().unwrap_or("(none)")
    )?;
    writeln!(
        out,
        "automation {}",
        if view.paused { "PAUSED" } else { "running" }
    )?;
    if !view.drained.is_empty() {
        writeln!(out, "drained    {}", view.drained.join(", "))?;
    }
    print_alarms(out, &view.alarms)?;
    writeln!(out, "regions")?;
    for (name, s) in &view.regions {
        writeln!(
            out,
            "  {name:<12} {:<10} since {}",
            format!("{:?}", s.status),
            s.since.format("%Y-%m-%d %H:%M:%S")
        )?;
        for r in &s.reasons {
            writeln!(out, "               {r}")?;
        }
    }
    writeln!(out, "traffic")?;
    for (record, w) in &view.traffic {
        let parts: Vec<String> = w.iter().map(|(r, w)| format!("{r}={w}")).collect();
        writeln!(out, "  {record:<30} {}", parts.join(" "))?;
    }
    if !view.databases.is_empty() {
        writeln!(out, "databases")?;
        for (db, state) in &view.databases {
            let lease = view.primary_leases.iter().find(|(d, _)| d == db).map_or(
                "no primary lease".to_string(),
                |(_, l)| {
                    format!(
                        "lease held by {} in {} for {}",
                        l.holder, l.region, l.primary
                    )
                },
            );
            writeln!(
                out,
                "  {db:<12} primary {} (epoch {}), {lease}",
                state.primary, state.epoch
            )?;
            if let Some(w) = view
                .fencing
                .iter()
                .find(|(d, _)| d == db)
                .and_then(|(_, f)| f.warning.as_ref())
            {
                writeln!(out, "  {:<12} {w}", "")?;
            }
            for (member, accounts) in view
                .bypass
                .iter()
                .filter(|(d, _)| d == db)
                .flat_map(|(_, b)| b.iter())
            {
                writeln!(
                    out,
                    "  {:<12} {member}: accounts that bypass read_only (a fence cannot stop them): {}",
                    "",
                    accounts.join(", ")
                )?;
            }
        }
    }
    if !view.pending.is_empty() {
        writeln!(out, "pending intents")?;
        for e in &view.pending {
            writeln!(
                out,
                "  {} {} {} (by {})",
                e.id,
                e.action.kind(),
                e.action.subject(),
                e.created_by
            )?;
        }
    }
    Ok(())
}

/// Prints the `limit` history events before `before` (the newest when
/// `None`), oldest first, read as one page however long history is; in text
/// form, ends with the cursor of the page before it, if any.
pub async fn history(
    path: &Path,
    limit: usize,
    before: Option<&str>,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    let (_, store) = connect(path).await?;
    let limit = i64::try_from(limit.clamp(1, 10_000)).unwrap_or(10_000);
    let page = store
        .page(
            &store.keys().history_prefix(),
            before,
            crate::store::pages::Direction::Backward,
            limit,
        )
        .await?;
    let older = if page.more {
        page.entries.last().map(|(k, _)| k.clone())
    } else {
        None
    };
    let mut events: Vec<HistoryEvent> = Vec::with_capacity(page.entries.len());
    let mut unreadable = 0usize;
    for (_, bytes) in page.entries.iter().rev() {
        match serde_json::from_slice(bytes) {
            Ok(e) => events.push(e),
            Err(_) => unreadable += 1,
        }
    }
    if output == Output::Json {
        serde_json::to_writer_pretty(&mut *out, &events).map_err(std::io::Error::other)?;
        writeln!(out)?;
        return Ok(());
    }
    for e in &events {
        writeln!(
            out,
            "{}  {:<16} {}",
            e.at.format("%Y-%m-%d %H:%M:%S%.3f"),
            e.by,
            e.what
        )?;
        for r in &e.reasons {
            writeln!(out, "    {r}")?;
        }
    }
    if unreadable > 0 {
        writeln!(
            out,
            "({unreadable} event(s) on this page could not be read: written by a newer version?)"
        )?;
    }
    if let Some(cursor) = older {
        writeln!(out, "(older events: switchyard history --before {cursor})")?;
    }
    Ok(())
}

/// A database change an operator asks the leader for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbRequest {
    /// Unplanned: replace the primary (optionally with `to`; `force` ignores
    /// the candidate rules and the promotion gate).
    Failover {
        /// The database.
        database: String,
        /// The member to promote, or the best candidate.
        to: Option<String>,
        /// Promote against the rules.
        force: bool,
    },
    /// Planned, zero-loss move of the primary to `to`.
    Switchover {
        /// The database.
        database: String,
        /// The member to promote.
        to: String,
    },
}

/// Hands a failover or switchover to the leader and waits up to `wait` for
/// its outcome. Returns the exit code: 0 done, 1 failed, 2 still running.
pub async fn request(
    path: &Path,
    req: DbRequest,
    wait: std::time::Duration,
    output: Output,
    out: &mut dyn Write,
) -> Result<i32, OpsError> {
    use crate::executor::ActionSpec;
    use crate::executor::journal::OperatorRequest;

    let (cfg, store) = connect(path).await?;
    let (database, to) = match &req {
        DbRequest::Failover { database, to, .. } => (database, to.as_ref()),
        DbRequest::Switchover { database, to } => (database, Some(to)),
    };
    let label = match &req {
        DbRequest::Failover { .. } => format!("failover of {database}"),
        DbRequest::Switchover { .. } => format!("switchover of {database}"),
    };
    let Some(db) = cfg.databases.iter().find(|d| &d.name == database) else {
        let declared: Vec<&str> = cfg.databases.iter().map(|d| d.name.as_str()).collect();
        return Err(OpsError::Usage(format!(
            "database {database:?} is not declared; declared databases: {}",
            declared.join(", ")
        )));
    };
    if let Some(to) = to
        && !db.members.iter().any(|m| &m.id == to)
    {
        let members: Vec<&str> = db.members.iter().map(|m| m.id.as_str()).collect();
        return Err(OpsError::Usage(format!(
            "database {database:?} has no member {to:?}; members: {}",
            members.join(", ")
        )));
    }
    let action = match req {
        DbRequest::Failover {
            database,
            to,
            force,
        } => ActionSpec::Failover {
            database,
            from_member: String::new(),
            to_member: to,
            force,
            avoid_regions: Default::default(),
        },
        DbRequest::Switchover { database, to } => ActionSpec::Switchover {
            database,
            to_member: to,
        },
    };
    let now = Utc::now();
    let id = format!("{:013}-{}", now.timestamp_millis(), std::process::id());
    let request = OperatorRequest {
        action,
        requested_by: format!("operator@{}", hostname()),
        requested_at: now,
    };
    let json = encode(&id, &request)?;
    store
        .put_control(store.keys().request(&id), &String::from_utf8_lossy(&json))
        .await?;
    if output == Output::Table {
        writeln!(out, "request {id} handed to the leader")?;
    }
    // Live phases on a terminal (nothing on a pipe, nothing for JSON).
    let progress = (output == Output::Table).then(|| super::progress::Progress::start(&label));
    // The end of the wait, as one line (table) or one JSON object; the
    // exit code follows the status.
    let mut end =
        |status: &str, text: String, detail: serde_json::Value| -> Result<i32, OpsError> {
            if let Some(p) = &progress {
                p.finish();
            }
            match output {
                Output::Table => writeln!(out, "{text}")?,
                Output::Json => {
                    let mut o =
                        serde_json::json!({ "request": id, "status": status, "message": text });
                    if let (Some(o), serde_json::Value::Object(d)) = (o.as_object_mut(), detail) {
                        o.extend(d);
                    }
                    writeln!(out, "{o}")?;
                }
            }
            Ok(match status {
                "done" => 0,
                "failed" => 1,
                _ => 2,
            })
        };
    let deadline = tokio::time::Instant::now() + wait;
    let waiting_key = store.keys().request_waiting(&id);
    loop {
        let journal = store
            .scan_json::<JournalEntry>(&store.keys().journal_prefix())
            .await?;
        let entry = journal
            .values
            .into_iter()
            .map(|(_, e)| e)
            .find(|e| e.request.as_deref() == Some(id.as_str()));
        if let Some(e) = entry.as_ref().filter(|e| e.status != Status::Pending) {
            let outcome = e.outcome.clone().unwrap_or_default();
            let status = if e.status == Status::Done {
                "done"
            } else {
                "failed"
            };
            return end(
                status,
                format!("{status}: {outcome}"),
                serde_json::json!({
                    "outcome": outcome,
                    "journal_id": e.id,
                    "write_unavailable_ms": e.write_unavailable_ms,
                }),
            );
        }
        // The leader notes why a failover waits at the promotion gate.
        let gate: Option<String> = match entry {
            Some(_) => None,
            None => store.get_json(&waiting_key).await.ok().flatten(),
        };
        if let Some(p) = &progress {
            p.phase(super::progress::phase(entry.as_ref(), gate.as_deref()));
        }
        if tokio::time::Instant::now() >= deadline {
            if let Some(reason) = gate {
                return end(
                    "waiting_at_gate",
                    format!(
                        "not started after {}s: the failover waits at the promotion gate: {reason}. \
                         The request stays with the leader. If you know the old primary cannot \
                         take writes, run it again with --force.",
                        wait.as_secs()
                    ),
                    serde_json::json!({ "gate": reason }),
                );
            }
            return end(
                "running",
                format!(
                    "not finished after {}s: the request stays with the leader; follow it with \
                     `switchyard status` and `switchyard history`",
                    wait.as_secs()
                ),
                serde_json::json!({}),
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
