//! The leader loop's own state as a state machine with no I/O: what one
//! term of leadership keeps between ticks ([`Term`]), the phase it is in
//! ([`Phase`]), and the rules for what the loop may start and when.
//!
//! The driver (`super`) reads etcd, asks the engine and the promotion gate,
//! runs actions in their lanes and reports back; every choice about *what*
//! to do with those answers is made here, from data and the `now` passed
//! in:
//!
//! - [`Term::chores`]: which of the tick's chores are due (operator
//!   requests, lifting fences, compaction, the writer-record check);
//! - [`Term::next`]: after the engine decided, whether to resume an
//!   interrupted intent, hold, or which of the plan's actions are ready;
//! - [`Term::gate_answered`] / [`Term::request_gate`]: what a promotion
//!   gate's answer means for a failover or an operator request;
//! - [`Term::ended`]: what an action's end means (backoff, resume first,
//!   the engine's memory, the primaries), as a [`Followup`] the driver
//!   performs;
//! - [`Term::resumed`]: how a resume went.
//!
//! The one rule everything here serves: an intent of this term that was
//! interrupted, or whose outcome may be unwritten, is resumed from its
//! cursor before anything else starts ([`Phase::Resuming`]), so a step is
//! never run again over newer decisions.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::engine::{self, ControlState};
use crate::executor::{ActionSpec, JournalEntry, Status};
use crate::runtime::lanes::{Lane, Lanes};
use crate::runtime::retry::RetryBook;

/// How often a wait at the promotion gate is logged again.
pub const GATE_LOG_EVERY: Duration = Duration::from_secs(30);
/// How often a shut promotion gate is asked again.
pub const GATE_RETRY: Duration = super::TICK;
/// How often the leader checks that every writer record names its
/// database's recorded primary (a read of the backend per database).
pub const WRITER_CHECK: Duration = Duration::from_secs(30);
/// How long an interrupted intent is left before it is resumed.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);
/// How long after winning the first compaction round runs (never before
/// the leader's first decisions), and how often after that.
pub const COMPACT_FIRST: Duration = Duration::from_secs(5);
/// How often compaction runs after the first round.
pub const COMPACT_EVERY: Duration = Duration::from_secs(60);
/// The backoff key of the drift check.
pub const DRIFT: &str = "drift";

/// Where a term stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Deciding and acting every tick.
    Leading,
    /// An intent of this term was interrupted after some of its steps, or
    /// its outcome may not have been written: it is resumed from its
    /// cursor at `at`, once every lane is idle (a resume re-reads the
    /// whole journal and must not meet an intent a lane is running), and
    /// nothing else starts until it has been.
    Resuming {
        /// When the resume is due.
        at: Instant,
    },
}

/// Who started an action, to know what to do with its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The engine's plan (the action's key, for backoff).
    Engine(String),
    /// Lifting a fence (backoff key).
    Unfence(String),
    /// Repairing a writer record.
    Writer,
    /// An operator's request (its id).
    Request(String),
    /// Correcting traffic that drifted from the desired weights (backoff
    /// key).
    Drift(String),
}

impl Origin {
    /// The key its failures are backed off under (`None`: not retried by
    /// the loop; a request is the operator's, a writer repair is checked
    /// again every [`WRITER_CHECK`]).
    pub fn backoff_key(&self) -> Option<&str> {
        match self {
            Origin::Engine(k) | Origin::Unfence(k) | Origin::Drift(k) => Some(k),
            Origin::Writer | Origin::Request(_) => None,
        }
    }
}

/// How an action in a lane ended, as the driver saw it.
#[derive(Debug, Clone)]
pub enum Ended {
    /// The task found nothing to do (a drift check that found no drift,
    /// or could not read the backend).
    NothingToDo,
    /// Its journal entry, done or failed.
    Journaled(Box<JournalEntry>),
    /// The lease was lost under it.
    LostLeadership,
    /// An operator request withdrawn before it started (its id).
    Withdrawn(String),
    /// Interrupted after some of its steps.
    Interrupted,
    /// etcd trouble while executing: the action may have been carried out
    /// and its outcome left unwritten.
    Unsettled,
    /// Its task ended abnormally (a panic, an abort): its intent may be
    /// left pending, so it is settled by a resume like an unsettled one.
    Aborted,
}

/// What the driver does after an action ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followup {
    /// Nothing more.
    Nothing,
    /// The term is over (the driver ends it once every lane was looked at).
    Lost,
    /// The operator withdrew the request before it started.
    Withdrawn,
    /// The journal is resumed before anything else starts
    /// (`interrupted`: after some steps; otherwise its outcome may be
    /// unwritten).
    Resume {
        /// Interrupted rather than unsettled.
        interrupted: bool,
    },
    /// It was carried out.
    Done {
        /// The engine's memory follows what it did (the engine started
        /// it).
        engine: bool,
    },
    /// It failed.
    Failed {
        /// When it is tried again (`None`: the loop does not retry it).
        retry_in: Option<Duration>,
        /// It keeps failing and needs a person.
        alarmed: bool,
    },
}

/// Which of a tick's chores are due before the engine decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Chores {
    /// Serve operator requests.
    pub requests: bool,
    /// Lift the fences of recorded primaries whose region is back.
    pub lift_fences: bool,
    /// One compaction round of the journal and history.
    pub compact: bool,
    /// Check the writer records.
    pub check_writers: bool,
}

/// What the engine decided, as the term needs it.
#[derive(Debug, Clone)]
pub struct Decided<'a> {
    /// When.
    pub now: Instant,
    /// Automation is paused: the engine's plan starts nothing.
    pub paused: bool,
    /// The backoff key of the plan's traffic intent, if it changes
    /// weights.
    pub traffic: Option<&'a str>,
    /// The plan's failovers: backoff key and lane of each.
    pub failovers: &'a [(String, Lane)],
    /// Whether any record has desired weights (a drift check has
    /// something to compare).
    pub desired_weights: bool,
    /// How often live weights are compared with the desired ones.
    pub drift_every: Duration,
}

/// What the loop does once the engine decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Nothing this tick: resuming, but not yet (not due, or a lane is
    /// still busy), or the primaries are to be read again first.
    Hold,
    /// Resume the interrupted intent now; report with [`Term::resumed`].
    Resume,
    /// Automation is paused: nothing of the engine's starts.
    Paused,
    /// Start what is ready.
    Act(Acts),
}

/// The plan's actions that are ready to start.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Acts {
    /// Start the traffic intent.
    pub traffic: bool,
    /// Start a drift check in the traffic lane.
    pub drift: bool,
    /// The failovers (backoff keys) to ask the promotion gate about.
    pub failovers: Vec<String>,
}

/// What a promotion gate's answer means for an engine failover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateStep {
    /// Start it.
    Start,
    /// Wait; ask again after [`GATE_RETRY`]. `log`: the wait is new, or
    /// was last logged [`GATE_LOG_EVERY`] ago.
    Wait {
        /// Log the wait now.
        log: bool,
    },
}

/// What a promotion gate's answer means for an operator request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestStep {
    /// Start it.
    Start,
    /// Wait for the gate. `note`: the operator has not been told yet (the
    /// driver writes the waiting note, then calls [`Term::noted`]).
    Wait {
        /// Tell the operator why it waits.
        note: bool,
    },
}

/// What the term last published, so a new leader neither raises again
/// what its predecessor raised nor publishes an unchanged plan.
#[derive(Debug, Default)]
pub struct Published {
    /// The alarms as last published (`state/alarms`); read from etcd at
    /// the term's first decision.
    pub alarms: Option<BTreeMap<engine::AlarmKey, engine::PublishedAlarm>>,
    /// The fingerprint of the plan this term last published (`None`: not
    /// yet, so a new leader publishes at its first decision).
    pub plan: Option<String>,
    /// Whether this term has taken over the gate waits its predecessor
    /// published.
    pub inherited_holds: bool,
}

/// What one term of leadership keeps between ticks.
#[derive(Debug)]
pub struct Term {
    phase: Phase,
    /// Backoff of actions that failed.
    retries: RetryBook,
    /// Gate waits are not failures: asked again after [`GATE_RETRY`].
    gate_retry: BTreeMap<String, Instant>,
    /// When each gate wait was last logged.
    gate_said: BTreeMap<String, Instant>,
    /// How long each database's failover has waited at the gate (an
    /// alarm past `gate_alarm_after`).
    pub gate_waits: engine::GateWaits,
    /// Operator requests whose wait at the gate was already noted.
    waiting: BTreeSet<String>,
    /// Who started what runs in each lane.
    lanes: Lanes<Origin>,
    /// When the next compaction round is due.
    next_compaction: Instant,
    /// When the writer records were last checked (`None`: not yet this
    /// term, so at once: a predecessor may have promoted without moving
    /// one).
    writers_checked: Option<Instant>,
    /// When traffic was last compared with the desired weights.
    drift_checked: Instant,
    /// What this term published.
    pub published: Published,
    /// The primaries the driver holds may be out of date (a failover or
    /// switchover ended, or an intent was resumed) and must be read from
    /// etcd again: until a read succeeds nothing is planned on them.
    primaries_stale: bool,
}

impl Term {
    /// A term won at `now`, past its predecessor's pending intents.
    pub fn new(now: Instant) -> Term {
        Term {
            phase: Phase::Leading,
            retries: RetryBook::default(),
            gate_retry: BTreeMap::new(),
            gate_said: BTreeMap::new(),
            gate_waits: engine::GateWaits::default(),
            waiting: BTreeSet::new(),
            lanes: Lanes::default(),
            next_compaction: now + COMPACT_FIRST,
            writers_checked: None,
            drift_checked: now,
            published: Published::default(),
            primaries_stale: false,
        }
    }

    /// Whether the primaries must be read again before anything is
    /// planned on them.
    pub fn primaries_stale(&self) -> bool {
        self.primaries_stale
    }

    /// The driver read the primaries from etcd (`ok`) or could not. A
    /// read that failed (etcd out of reach just as a failover ended) is
    /// tried again every tick: until then no request, lift, writer repair
    /// or engine decision works from the primary the failover replaced
    /// (docs/SIMULATION.md, seed 9184).
    pub fn primaries_read(&mut self, ok: bool) {
        self.primaries_stale = !ok;
    }

    /// A database's record changed in etcd (the leader's own commit, a
    /// hand edit, a record that no longer decodes): the primaries are
    /// read again before anything more is planned on them.
    pub fn records_changed(&mut self) {
        self.primaries_stale = true;
    }

    /// Where the term stands.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The actions that keep failing, for the alarm.
    pub fn failing(&self) -> Vec<crate::runtime::retry::Alarm> {
        self.retries.alarms()
    }

    /// Who started what runs in `lane`, if anything.
    pub fn origin(&self, lane: &Lane) -> Option<&Origin> {
        self.lanes.get(lane)
    }

    /// True when an action under backoff `key` may start in `lane` at
    /// `now`: the lane is free, the key's backoff is over, and no resume
    /// is pending.
    pub fn may_start(&self, lane: &Lane, key: Option<&str>, now: Instant) -> bool {
        self.phase == Phase::Leading
            && self.lanes.is_free(lane)
            && key.is_none_or(|k| self.retries.ready(k, now))
    }

    /// Records that `origin`'s action runs in `lane` now; false (and
    /// nothing recorded) when the lane is busy or a resume is pending, so
    /// the driver starts nothing.
    pub fn start(&mut self, lane: Lane, origin: Origin) -> bool {
        self.phase == Phase::Leading && self.lanes.occupy(lane, origin).is_ok()
    }

    /// A primary lease changed: a failover waiting at the gate is asked
    /// again at once, not after [`GATE_RETRY`].
    pub fn leases_changed(&mut self) {
        self.gate_retry.clear();
    }

    /// The chores due at `now`, before the engine decides (`paused`:
    /// automation is paused, which stops lifting fences but not the
    /// operator's requests). Due compaction and writer checks are counted
    /// as done.
    pub fn chores(&mut self, now: Instant, paused: bool) -> Chores {
        let leading = self.phase == Phase::Leading;
        let compact = now >= self.next_compaction;
        if compact {
            self.next_compaction = now + COMPACT_EVERY;
        }
        let planning = leading && !self.primaries_stale;
        let check_writers = planning
            && self
                .writers_checked
                .is_none_or(|t| now.saturating_duration_since(t) >= WRITER_CHECK);
        if check_writers {
            self.writers_checked = Some(now);
        }
        Chores {
            requests: planning,
            lift_fences: planning && !paused,
            compact,
            check_writers,
        }
    }

    /// What to do once the engine decided.
    pub fn next(&mut self, d: &Decided<'_>) -> Next {
        if let Phase::Resuming { at } = self.phase {
            return if d.now >= at && self.lanes.is_idle() {
                Next::Resume
            } else {
                Next::Hold
            };
        }
        if self.primaries_stale {
            return Next::Hold;
        }
        if d.paused {
            return Next::Paused;
        }
        let mut acts = Acts {
            traffic: d
                .traffic
                .is_some_and(|k| self.may_start(&Lane::Traffic, Some(k), d.now)),
            ..Acts::default()
        };
        // Drift is checked only when the engine wants no weight change: the
        // desired weights are then settled, and the check never holds the
        // lane an evacuation needs. A failed change the engine no longer
        // wants does not hold it off (it did: a hand edit at the provider
        // was then never undone, docs/SIMULATION.md, seed 8032).
        if d.traffic.is_none()
            && self.lanes.is_free(&Lane::Traffic)
            && d.now.saturating_duration_since(self.drift_checked) >= d.drift_every
        {
            self.drift_checked = d.now;
            acts.drift = d.desired_weights && self.retries.ready(DRIFT, d.now);
        }
        let mut lanes = BTreeSet::new();
        for (key, lane) in d.failovers {
            if self.may_start(lane, Some(key), d.now)
                && self.gate_retry.get(key).is_none_or(|t| d.now >= *t)
                && lanes.insert(lane.clone())
            {
                acts.failovers.push(key.clone());
            }
        }
        Next::Act(acts)
    }

    /// The promotion gate answered for the engine's failover `key` of
    /// `database` (`shut`: why it must wait).
    pub fn gate_answered(
        &mut self,
        key: &str,
        database: &str,
        shut: Option<&str>,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> GateStep {
        if self.gate_seen(database, shut, wall).is_none() {
            return GateStep::Start;
        }
        let log = self
            .gate_said
            .get(key)
            .is_none_or(|t| now.saturating_duration_since(*t) >= GATE_LOG_EVERY);
        if log {
            self.gate_said.insert(key.to_string(), now);
        }
        self.gate_retry.insert(key.to_string(), now + GATE_RETRY);
        GateStep::Wait { log }
    }

    /// The promotion gate answered for operator request `id` on
    /// `database` (`shut`: why it must wait). The request stays until the
    /// gate opens or the operator forces it.
    pub fn request_gate(
        &mut self,
        id: &str,
        database: &str,
        shut: Option<&str>,
        wall: DateTime<Utc>,
    ) -> RequestStep {
        if self.gate_seen(database, shut, wall).is_none() {
            return RequestStep::Start;
        }
        RequestStep::Wait {
            note: !self.waiting.contains(id),
        }
    }

    /// Counts the gate's answer for `database` in its gate wait (a shut
    /// gate's wait goes on, an open one's ends); gives back why it is
    /// shut, if it is.
    fn gate_seen<'a>(
        &mut self,
        database: &str,
        shut: Option<&'a str>,
        wall: DateTime<Utc>,
    ) -> Option<&'a str> {
        match shut {
            Some(reason) => self.gate_waits.shut(database, reason, wall),
            None => self.gate_waits.opened(database),
        }
        shut
    }

    /// The operator was told request `id` waits.
    pub fn noted(&mut self, id: &str) {
        self.waiting.insert(id.to_string());
    }

    /// Request `id` is gone (dropped as void, or cancelled).
    pub fn request_gone(&mut self, id: &str) {
        self.waiting.remove(id);
    }

    /// The action in `lane` ended at `now`: frees the lane and says what
    /// follows. `None` when nothing ran there.
    pub fn ended(&mut self, lane: &Lane, how: &Ended, now: Instant) -> Option<Followup> {
        let origin = self.lanes.take(lane)?;
        Some(self.follow(origin, how, now))
    }

    fn follow(&mut self, origin: Origin, how: &Ended, now: Instant) -> Followup {
        let entry = match how {
            Ended::NothingToDo => {
                if let Origin::Drift(k) = &origin {
                    self.retries.succeeded(k);
                }
                return Followup::Nothing;
            }
            Ended::LostLeadership => return Followup::Lost,
            Ended::Withdrawn(id) => {
                self.waiting.remove(id);
                return Followup::Withdrawn;
            }
            Ended::Interrupted | Ended::Unsettled | Ended::Aborted => {
                // The action may have been carried out and its intent left
                // pending (its outcome write failed): settle it before
                // anything else starts, so it is never re-run later over
                // newer decisions.
                self.phase = Phase::Resuming {
                    at: now + RETRY_AFTER,
                };
                return Followup::Resume {
                    interrupted: matches!(how, Ended::Interrupted),
                };
            }
            Ended::Journaled(entry) => {
                // A failover or switchover, done or not, may have moved a
                // primary (one that failed after its promotion did).
                if matches!(
                    entry.action,
                    ActionSpec::Failover { .. } | ActionSpec::Switchover { .. }
                ) {
                    self.primaries_stale = true;
                }
                entry
            }
        };
        let key = origin.backoff_key();
        if entry.status == Status::Done {
            if let Some(k) = key {
                self.retries.succeeded(k);
            }
            // Older attempts at the same thing are superseded.
            match entry.action.database() {
                None => self
                    .retries
                    .forget_where(|k| k.starts_with("weights/") || k == DRIFT),
                Some(db) => {
                    let failover = format!("failover/{db}/");
                    let unfence = format!("unfence:{db}");
                    self.retries
                        .forget_where(|k| k.starts_with(&failover) || k == unfence);
                }
            }
            return Followup::Done {
                engine: matches!(origin, Origin::Engine(_)),
            };
        }
        let Some(key) = key else {
            return Followup::Failed {
                retry_in: None,
                alarmed: false,
            };
        };
        let outcome = entry.outcome.as_deref().unwrap_or_default();
        let retryable = entry.retryable.unwrap_or(true);
        let wait = self.retries.failed(key, retryable, outcome, now);
        Followup::Failed {
            retry_in: Some(wait),
            alarmed: self.retries.alarms().iter().any(|a| a.key == key),
        }
    }

    /// How the resume ordered by [`Next::Resume`] went (`ok`: every
    /// pending intent finished); one that did not is tried again after
    /// [`RETRY_AFTER`].
    pub fn resumed(&mut self, ok: bool, now: Instant) {
        // A resumed failover or switchover may have moved a primary.
        self.primaries_stale |= ok;
        self.phase = if ok {
            Phase::Leading
        } else {
            Phase::Resuming {
                at: now + RETRY_AFTER,
            }
        };
    }
}

/// The engine's memory after `action` was carried out at `now`: the
/// weights it set, when a database last failed over.
pub fn apply_done(control: &mut ControlState, action: &ActionSpec, now: DateTime<Utc>) {
    match action {
        ActionSpec::SetWeights { .. } | ActionSpec::SetWeightsBatch { .. } => {
            for (record, weights) in action.weight_sets() {
                control.weights.insert(record.clone(), weights.clone());
            }
        }
        ActionSpec::Failover { database, .. } => {
            control.last_failover.insert(database.clone(), now);
        }
        ActionSpec::Switchover { .. }
        | ActionSpec::Unfence { .. }
        | ActionSpec::MoveWriter { .. } => {}
    }
}
