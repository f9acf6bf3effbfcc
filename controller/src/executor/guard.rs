//! The leader's [`StepGuard`]: every external step of an intent asks it
//! first (is the lease certain to outlast the step?) and reports to it when
//! done (the step is appended to the intent's journal entry by a fenced
//! txn, which also proves etcd still names this node leader).

use std::sync::Mutex;
use std::time::Duration;

use switchyard_probes::replication::{ReplError, Step, StepGuard};

use super::journal::{ActionSpec, JournalEntry};
use super::step_window::{Permit, StepTiming, permit};
use crate::runtime::control::DatabaseState;
use crate::store::{Leadership, Store, StoreError};

/// Guards the steps of one journal entry for one leadership term.
pub struct LeaderGuard<'a> {
    leader: &'a Leadership,
    store: &'a Store,
    timing: StepTiming,
    entry: Mutex<JournalEntry>,
}

impl std::fmt::Debug for LeaderGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderGuard")
            .field("timing", &self.timing)
            .finish()
    }
}

impl<'a> LeaderGuard<'a> {
    /// A guard for `entry` (its `steps` are what earlier runs finished).
    pub fn new(
        leader: &'a Leadership,
        store: &'a Store,
        timing: StepTiming,
        entry: JournalEntry,
    ) -> Self {
        LeaderGuard {
            leader,
            store,
            timing,
            entry: Mutex::new(entry),
        }
    }

    /// The entry with every step recorded so far.
    pub fn entry(&self) -> JournalEntry {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JournalEntry> {
        self.entry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits (at most until the lease's margin) for the lease to have room
    /// for a step, and returns the budget the step must end within.
    /// `Err(NotLeader)` when it never will: this node steps down.
    pub async fn budget(&self, what: &str) -> Result<Duration, StoreError> {
        loop {
            match permit(
                &self.timing,
                self.leader.is_held(),
                self.leader.deadline(),
                switchyard_host::time::now(),
            ) {
                Permit::Start(b) => return Ok(b),
                Permit::WaitRenewal => {
                    tokio::select! {
                        _ = self.leader.renewed() => {}
                        _ = switchyard_host::time::sleep(Duration::from_millis(20)) => {}
                        _ = self.leader.lost() => {}
                    }
                }
                Permit::Refuse(why) => {
                    metrics::counter!("switchyard_steps_refused_total").increment(1);
                    tracing::warn!(step = what, "step not taken: {why}");
                    self.leader.step_down(why);
                    return Err(StoreError::NotLeader(format!("{what}: {why}")));
                }
            }
        }
    }
}

impl LeaderGuard<'_> {
    /// Before the statements of a lift (an `Unfence` intent's own step),
    /// bumps the recorded primary's epoch, durably. A lifted primary takes
    /// writes again as a promoted one does, so the lease that ended before
    /// the lift (whose holder fenced it, which the lift undoes) must no
    /// longer open the gate for its replacement: only a lease its region
    /// holds at the new epoch vouches for it. Bumped when the step begins,
    /// not with the outcome: a lift whose statement landed and whose run
    /// was cut short can end `Failed` on resume (the member out of reach)
    /// and leave it writable all the same; and not with the intent: a lift
    /// refused before it sends anything (the member unreachable) must
    /// leave the fence record it was about good for the gate
    /// (docs/SIMULATION.md, seeds 7581 and 24906).
    async fn lift_epoch(&self, step: &Step) -> Result<(), StoreError> {
        let Step::Unfence { member } = step else {
            return Ok(());
        };
        let database = match &self.lock().action {
            ActionSpec::Unfence {
                database,
                member: lifted,
            } if lifted == member => database.clone(),
            _ => return Ok(()),
        };
        let key = self.store.keys().database(&database);
        let Some(old) = self
            .store
            .get_json::<DatabaseState>(&key)
            .await?
            .filter(|o| o.primary == *member)
        else {
            return Ok(());
        };
        let state = DatabaseState {
            epoch: old.epoch + 1,
            ..old
        };
        self.store.fenced_put(self.leader, key, &state).await?;
        tracing::info!(%database, %member, epoch = state.epoch, "epoch bumped before a lift");
        Ok(())
    }
}

fn deposed(step: &Step, e: StoreError) -> ReplError {
    ReplError::Deposed {
        step: step.to_string(),
        detail: e.to_string(),
    }
}

#[async_trait::async_trait]
impl StepGuard for LeaderGuard<'_> {
    async fn begin(&self, step: &Step) -> Result<Duration, ReplError> {
        let budget = self
            .budget(&step.to_string())
            .await
            .map_err(|e| deposed(step, e))?;
        self.lift_epoch(step).await.map_err(|e| deposed(step, e))?;
        Ok(budget)
    }

    async fn done(&self, step: &Step) -> Result<(), ReplError> {
        // A read changes nothing a resumed run could skip: not journaled.
        if *step == Step::Observe {
            return Ok(());
        }
        let entry = {
            let mut e = self.lock();
            e.steps.push(step.clone());
            e.clone()
        };
        let key = self.store.keys().journal(&entry.id);
        if let Err(e) = self.store.fenced_put(self.leader, key, &entry).await {
            // Progress that cannot be recorded must not go on: the next
            // leader (maybe this node again) resumes from the journal.
            self.leader.step_down("cannot journal a finished step");
            return Err(deposed(step, e));
        }
        tracing::info!(id = %entry.id, %step, "step done");
        Ok(())
    }

    fn finished(&self) -> Vec<Step> {
        self.lock().steps.clone()
    }
}
