//! What the operator commands do to the cluster's shared state in etcd —
//! run by the operator API ([`crate::api::operator`]) on a controller, as
//! the caller's identity — and how the CLI prints what they return.
//!
//! Pause and drain are the operator's will, valid whoever leads, so they are
//! plain (unfenced) writes of control keys; the leader reads them every
//! second. Each change is also written to history. Every switch is
//! idempotent: pausing a paused cluster says so and changes nothing.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
    pub fn command(&self) -> &'static str {
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
    /// A `[tls]` file cannot be used.
    #[error(transparent)]
    GrpcTls(#[from] crate::tls::TlsFileError),
    /// A field of the command names something the config does not
    /// declare (`field` as the operator API names it).
    #[error("{message}")]
    Invalid {
        /// The request field at fault (`region`, `database`, `to`, …).
        field: &'static str,
        /// What is wrong, with what would be valid.
        message: String,
    },
    /// Writing the output failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// No controller given could be reached: each one's reason.
    #[error("no controller could be reached: {0}")]
    Unreachable(String),
    /// The operator API refused or failed the call.
    #[error("{}", api_error(.0))]
    Api(tonic::Status),
    /// A controller answered with something this CLI cannot read (another
    /// version's document).
    #[error("cannot read the controller's answer: {0}")]
    Answer(String),
}

/// A refusal as the operator reads it: what kind, then the controller's
/// words (which say what is needed).
fn api_error(s: &tonic::Status) -> String {
    use tonic::Code;
    let kind = match s.code() {
        Code::Unauthenticated => "not authenticated",
        Code::PermissionDenied => "not allowed",
        Code::InvalidArgument => "invalid",
        Code::Unavailable => "unavailable",
        Code::DeadlineExceeded => "no answer in time",
        Code::NotFound => "not found",
        _ => "failed",
    };
    format!("{kind}: {}", s.message())
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

/// A view as one pretty JSON document (`--output json`).
pub(crate) fn print_json(view: &impl Serialize, out: &mut dyn Write) -> Result<(), OpsError> {
    serde_json::to_writer_pretty(&mut *out, view).map_err(std::io::Error::other)?;
    writeln!(out)?;
    Ok(())
}

/// The first two lines of `status` and `plan`: who leads, and whether
/// automation runs (`paused_as`: how a paused one is shown).
pub(crate) fn print_leader(
    out: &mut dyn Write,
    leader: Option<&str>,
    paused: bool,
    paused_as: &str,
) -> std::io::Result<()> {
    writeln!(out, "leader     {}", leader.unwrap_or("(none)"))?;
    writeln!(
        out,
        "automation {}",
        if paused { paused_as } else { "running" }
    )
}

/// Who asks for a change, and why: recorded in history with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The identity: the `[[operators]]` name the caller's token maps to.
    pub by: String,
    /// Why, in the operator's words.
    pub reason: String,
    /// Where the request came from (the API client's address).
    pub origin: Option<String>,
}

/// Applies a switch as `actor` at `now` (the time the switch and its
/// history event carry): whether it changed anything, and what holds now
/// in words.
pub async fn apply_switch(
    cfg: &config::Config,
    store: &Store,
    which: &Switch,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(bool, String), OpsError> {
    let keys = store.keys().clone();
    let (key, on, what) = match which {
        Switch::Pause => (keys.pause(), true, "automation paused".to_string()),
        Switch::Resume => (keys.pause(), false, "automation resumed".to_string()),
        Switch::Failback(r) => {
            check_region(cfg, r)?;
            let json = encode(r, &now.to_rfc3339())?;
            let what = format!("failback of region {r} approved");
            store
                .control_txn(
                    None,
                    Vec::new(),
                    vec![
                        (
                            keys.failback(r),
                            String::from_utf8_lossy(&json).into_owned(),
                        ),
                        history_entry(store, &what, actor, now)?,
                    ],
                )
                .await?;
            return Ok((true, what));
        }
        Switch::Drain(r) | Switch::Undrain(r) => {
            check_region(cfg, r)?;
            let on = matches!(which, Switch::Drain(_));
            let verb = if on { "drained" } else { "undrained" };
            (keys.drain(r), on, format!("region {r} {verb}"))
        }
    };
    // The switch and its history event in one transaction that goes
    // through only if it changes something.
    let value = now.to_rfc3339();
    let changed = store
        .switch_control(
            key,
            on.then_some(value.as_str()),
            history_entry(store, &what, actor, now)?,
        )
        .await?;
    Ok((changed, what))
}

/// A switch's result: one line for people, one JSON object for scripts.
pub fn print_switch(
    command: &str,
    changed: bool,
    what: &str,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
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
}

fn check_region(cfg: &config::Config, r: &str) -> Result<(), OpsError> {
    if cfg.region(r).is_some() {
        return Ok(());
    }
    let declared: Vec<&str> = cfg.regions.iter().map(|r| r.name.as_str()).collect();
    Err(OpsError::Invalid {
        field: "region",
        message: format!(
            "region {r:?} is not declared; declared regions: {}",
            declared.join(", ")
        ),
    })
}

/// An operator event for history — who, why, and from where — as the
/// (key, value) to write with the change it records.
fn history_entry(
    store: &Store,
    what: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(String, String), OpsError> {
    let mut reasons = vec![actor.reason.clone()];
    if let Some(origin) = &actor.origin {
        reasons.push(format!("from {origin}"));
    }
    let event = HistoryEvent {
        at: now,
        by: actor.by.clone(),
        what: what.to_string(),
        reasons,
        journal_id: None,
        steps: Vec::new(),
    };
    let hid = history_id(now, "operator");
    let json = encode(&hid, &event)?;
    Ok((
        store.keys().history(&hid),
        String::from_utf8_lossy(&json).into_owned(),
    ))
}

/// What `status` shows.
#[derive(Debug, Serialize, Deserialize)]
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
    /// Database → why its record cannot be decoded (a newer version's, a
    /// hand edit): the leader plans nothing for it until it is mended, so
    /// status names it rather than leaving it out.
    #[serde(default)]
    pub unreadable_databases: Vec<(String, String)>,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// Reads the cluster's state (and pings the controllers that could fence
/// each database's primary).
pub async fn status_view(cfg: &config::Config, store: &Store) -> Result<StatusView, OpsError> {
    let keys = store.keys();
    // Lenient: an entry a newer version wrote must not hide the rest.
    let journal = store
        .scan_json::<JournalEntry>(&keys.journal_prefix())
        .await?;
    for (key, why) in &journal.undecodable {
        tracing::warn!(%key, error = %why, "journal entry cannot be decoded; status leaves it out");
    }
    let journal: Vec<(String, JournalEntry)> = journal.values;
    // Lenient too: one record that cannot be decoded is named, not a
    // failed status (it is what the operator has to find).
    let records = crate::runtime::control::databases(store).await?;
    let databases: Vec<(String, DatabaseState)> = records.states.into_iter().collect();
    let unreadable_databases: Vec<(String, String)> = records.undecodable.into_iter().collect();
    let primary_leases: Vec<(String, LeaseValue)> =
        store.list_json(&keys.primary_leases_prefix()).await?;
    let registered: Vec<(String, Registration)> =
        store.list_json(&keys.controllers_prefix()).await?;
    // The liveness pings present this host's certificate under `[tls]`: an
    // unusable one is an error, not a dead controller.
    let tls = crate::tls::client_config(cfg)?;
    let mut fencing = Vec::new();
    for (db, state) in &databases {
        let vouch: Option<Vouch> = store.get_json(&keys.vouched(db)).await?;
        let lease = primary_leases.iter().find(|(d, _)| d == db).map(|(_, l)| l);
        fencing.push((
            db.clone(),
            fencing_of(
                cfg,
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
        unreadable_databases,
        primary_leases,
        fencing,
        bypass: store.list_json(&keys.bypass_prefix()).await?,
    };
    Ok(view)
}

/// Prints a [`StatusView`] as a table or one JSON document.
pub fn print_status(
    view: &StatusView,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    if output == Output::Json {
        return print_json(view, out);
    }
    print_leader(out, view.leader.as_deref(), view.paused, "PAUSED")?;
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
    if !view.databases.is_empty() || !view.unreadable_databases.is_empty() {
        writeln!(out, "databases")?;
        for (db, why) in &view.unreadable_databases {
            writeln!(
                out,
                "  {db:<12} RECORD UNREADABLE, nothing is planned for it: {why}"
            )?;
        }
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

/// One page of history, oldest first.
#[derive(Debug, Serialize, Deserialize)]
pub struct HistoryPage {
    /// The events that could be read.
    pub events: Vec<HistoryEvent>,
    /// How many on the page could not be read (a newer version's).
    pub unreadable: usize,
    /// The cursor of the page before this one, if any.
    pub older: Option<String>,
}

/// Reads the `limit` events before `before` (the newest when `None`).
pub async fn history_page(
    store: &Store,
    limit: usize,
    before: Option<&str>,
) -> Result<HistoryPage, OpsError> {
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
    Ok(HistoryPage {
        events,
        unreadable,
        older,
    })
}

/// Prints a page: the events (JSON: their array), then what was not read
/// and the cursor to the page before.
pub fn print_history(
    page: &HistoryPage,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    if output == Output::Json {
        return print_json(&page.events, out);
    }
    for e in &page.events {
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
    if page.unreadable > 0 {
        writeln!(
            out,
            "({} event(s) on this page could not be read: written by a newer version?)",
            page.unreadable
        )?;
    }
    if let Some(cursor) = &page.older {
        writeln!(out, "(older events: switchyard history --before {cursor})")?;
    }
    Ok(())
}

/// How long the leader keeps a request it has not started (the operator
/// who asked has long stopped waiting by then).
pub const DEFAULT_REQUEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

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

/// Checks `req` against the config and hands it to the leader as
/// `actor`; returns the request's id. `expected_primary`: refused by the
/// leader if the primary is another by then; `deadline`: dropped if not
/// started within it.
pub async fn submit_request(
    cfg: &config::Config,
    store: &Store,
    req: DbRequest,
    actor: &Actor,
    expected_primary: Option<String>,
    deadline: std::time::Duration,
) -> Result<String, OpsError> {
    use crate::executor::ActionSpec;
    use crate::executor::journal::OperatorRequest;

    let (database, to) = match &req {
        DbRequest::Failover { database, to, .. } => (database, to.as_ref()),
        DbRequest::Switchover { database, to } => (database, Some(to)),
    };
    let Some(db) = cfg.databases.iter().find(|d| &d.name == database) else {
        let declared: Vec<&str> = cfg.databases.iter().map(|d| d.name.as_str()).collect();
        return Err(OpsError::Invalid {
            field: "database",
            message: format!(
                "database {database:?} is not declared; declared databases: {}",
                declared.join(", ")
            ),
        });
    };
    let members: Vec<&str> = db.members.iter().map(|m| m.id.as_str()).collect();
    for (field, what, name) in [
        ("to", "member", to),
        (
            "expected_primary",
            "expected primary",
            expected_primary.as_ref(),
        ),
    ] {
        if let Some(name) = name
            && !members.contains(&name.as_str())
        {
            return Err(OpsError::Invalid {
                field,
                message: format!(
                    "database {database:?} has no {what} {name:?}; members: {}",
                    members.join(", ")
                ),
            });
        }
    }
    // Never re-aimed (docs/SAFETY.md S10): without a primary named by the
    // operator, the one recorded now is the one the request is about.
    let expected_primary = match expected_primary {
        Some(p) => Some(p),
        None => store
            .get_json::<DatabaseState>(&store.keys().database(database))
            .await?
            .map(|s| s.primary)
            .filter(|p| !p.is_empty()),
    };
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
            // The leader fills it from its record, which it has compared
            // with `expected_primary`.
            from_member: String::new(),
        },
    };
    let now = Utc::now();
    let id = format!(
        "{:013}-{:08x}",
        now.timestamp_millis(),
        rand::random::<u32>()
    );
    let request = OperatorRequest {
        action,
        requested_by: actor.by.clone(),
        requested_at: now,
        reason: Some(actor.reason.clone()),
        origin: actor.origin.clone(),
        expected_primary,
        expires_at: chrono::Duration::from_std(deadline)
            .ok()
            .and_then(|d| now.checked_add_signed(d)),
    };
    let json = encode(&id, &request)?;
    store
        .put_control(store.keys().request(&id), &String::from_utf8_lossy(&json))
        .await?;
    Ok(id)
}

/// Where a submitted request stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// With the leader, not started (its lane busy, or the next tick).
    #[default]
    Queued,
    /// Held by the promotion gate.
    WaitingAtGate,
    /// Started: its intent is in the journal.
    Running,
    /// Carried out.
    Done,
    /// Carried out and failed.
    Failed,
    /// Neither pending nor started: cancelled, expired, refused, or never
    /// made.
    Gone,
}

impl RequestStatus {
    /// As the API and `--output json` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Queued => "queued",
            RequestStatus::WaitingAtGate => "waiting_at_gate",
            RequestStatus::Running => "running",
            RequestStatus::Done => "done",
            RequestStatus::Failed => "failed",
            RequestStatus::Gone => "gone",
        }
    }

    /// The status the API spells `s`, if it is one.
    pub fn parse(s: &str) -> Option<Self> {
        [
            RequestStatus::Queued,
            RequestStatus::WaitingAtGate,
            RequestStatus::Running,
            RequestStatus::Done,
            RequestStatus::Failed,
            RequestStatus::Gone,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// True once nothing more will happen to the request.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RequestStatus::Done | RequestStatus::Failed | RequestStatus::Gone
        )
    }
}

/// Where a submitted request stands, with what is known of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RequestState {
    /// Where it stands.
    pub status: RequestStatus,
    /// done/failed: what happened; gone: what may have.
    pub outcome: Option<String>,
    /// Its journal entry, once started.
    pub journal_id: Option<String>,
    /// waiting_at_gate: the gate's evidence.
    pub gate: Option<String>,
    /// done, when the primary moved: how long no member took writes.
    pub write_unavailable_ms: Option<u64>,
    /// running: the external steps done so far.
    pub steps: Vec<String>,
}

/// Reads where request `id` stands. The request key is read before the
/// journal: the leader deletes the key in the transaction that writes the
/// intent, so a request started between the two reads is found in the
/// journal, never taken for gone.
pub async fn request_state(store: &Store, id: &str) -> Result<RequestState, OpsError> {
    let keys = store.keys();
    let pending = store.exists(&keys.request(id)).await?;
    let gate: Option<String> = if pending {
        store.get_json(&keys.request_waiting(id)).await?
    } else {
        None
    };
    let journal = store
        .scan_json::<JournalEntry>(&keys.journal_prefix())
        .await?;
    if let Some(e) = journal
        .values
        .into_iter()
        .map(|(_, e)| e)
        .find(|e| e.request.as_deref() == Some(id))
    {
        let status = match e.status {
            Status::Pending => RequestStatus::Running,
            Status::Done => RequestStatus::Done,
            Status::Failed => RequestStatus::Failed,
        };
        return Ok(RequestState {
            status,
            outcome: e.outcome,
            journal_id: Some(e.id),
            gate: None,
            write_unavailable_ms: e.write_unavailable_ms,
            steps: e.steps.iter().map(ToString::to_string).collect(),
        });
    }
    if pending {
        return Ok(RequestState {
            status: if gate.is_some() {
                RequestStatus::WaitingAtGate
            } else {
                RequestStatus::Queued
            },
            gate,
            ..RequestState::default()
        });
    }
    Ok(RequestState {
        status: RequestStatus::Gone,
        outcome: Some(format!(
            "request {id} is neither pending nor started: cancelled, expired, refused or never \
             made; `switchyard history` says which"
        )),
        ..RequestState::default()
    })
}

/// Withdraws request `id` if the leader has not started it, recording it
/// in history at `now`: whether it was withdrawn, and what holds, in
/// words.
pub async fn cancel_request(
    store: &Store,
    id: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(bool, String), OpsError> {
    let keys = store.keys();
    let what = format!("request {id} cancelled before it started");
    // The request, its waiting note and the history event go together,
    // and only while the request is pending.
    let withdrawn = store
        .control_txn(
            Some(keys.request(id)),
            vec![keys.request(id), keys.request_waiting(id)],
            vec![history_entry(store, &what, actor, now)?],
        )
        .await?;
    if !withdrawn {
        let state = request_state(store, id).await?;
        let what = match state.status {
            RequestStatus::Gone => format!("nothing to cancel: request {id} is not pending"),
            s => format!("request {id} cannot be cancelled: it is {}", s.as_str()),
        };
        return Ok((false, what));
    }
    Ok((true, what))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view_with_unreadable() -> StatusView {
        StatusView {
            leader: None,
            paused: false,
            drained: vec![],
            alarms: vec![],
            regions: vec![],
            traffic: vec![],
            pending: vec![],
            databases: vec![],
            unreadable_databases: vec![(
                "orders".into(),
                "bad value at orders: invalid type: string \"seven\", expected u64".into(),
            )],
            primary_leases: vec![],
            fencing: vec![],
            bypass: vec![],
        }
    }

    /// A database whose record cannot be decoded is named in `status`
    /// with why, not left out: it is what the operator has to find.
    #[test]
    fn status_names_a_database_whose_record_cannot_be_read() {
        let mut out = Vec::new();
        print_status(&view_with_unreadable(), Output::Table, &mut out).expect("printed");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            text.contains("orders") && text.contains("RECORD UNREADABLE"),
            "{text}"
        );
        assert!(text.contains("invalid type"), "{text}");
    }

    /// The JSON carries the unreadable ones, and a document from before
    /// the field existed still reads (a newer CLI against an older
    /// controller's API).
    #[test]
    fn status_json_carries_unreadable_records_and_reads_without_them() {
        let mut out = Vec::new();
        print_status(&view_with_unreadable(), Output::Json, &mut out).expect("printed");
        let mut doc: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(doc["unreadable_databases"][0][0], "orders");
        doc.as_object_mut()
            .expect("an object")
            .remove("unreadable_databases");
        let older: StatusView = serde_json::from_value(doc).expect("reads without the field");
        assert!(older.unreadable_databases.is_empty());
    }
}
