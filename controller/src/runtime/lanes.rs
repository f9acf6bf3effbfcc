//! Independent lanes for the leader's actions: all weight changes share
//! one traffic lane (a plan's changes go out as one batch), and each
//! database has a lane of its own. An action starts only when its lane is
//! free, and runs in a task of its own, so a long catch-up, a hung SQL
//! connection or a throttled Route 53 apply delays only its own lane: the
//! decision loop keeps ticking, evacuations and other databases' failovers
//! go ahead, and operator requests and pause are seen at the next tick.
//! (The loop still makes short bounded reads itself: the promotion gate's
//! and fence records' etcd reads, and the writer-record check, at most 1 s
//! per database every 30 s.)
//!
//! One action per lane at a time is also what keeps two actions off one
//! database (a failover and an unfence, say) whatever starts them.
//!
//! Pure bookkeeping: the leader loop owns the tasks.

use std::collections::BTreeMap;

use crate::executor::ActionSpec;

/// Where an action runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lane {
    /// Every weight change.
    Traffic,
    /// Everything done to one database (failover, switchover, unfence,
    /// its writer record).
    Database(String),
}

impl Lane {
    /// The lane `spec` runs in.
    pub fn of(spec: &ActionSpec) -> Lane {
        match spec.database() {
            Some(db) => Lane::Database(db.to_string()),
            None => Lane::Traffic,
        }
    }
}

impl std::fmt::Display for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lane::Traffic => f.write_str("traffic"),
            Lane::Database(db) => write!(f, "database {db}"),
        }
    }
}

/// What runs in each busy lane.
#[derive(Debug)]
pub struct Lanes<T> {
    busy: BTreeMap<Lane, T>,
}

impl<T> Default for Lanes<T> {
    fn default() -> Self {
        Lanes {
            busy: BTreeMap::new(),
        }
    }
}

impl<T> Lanes<T> {
    /// True when nothing runs in `lane`.
    pub fn is_free(&self, lane: &Lane) -> bool {
        !self.busy.contains_key(lane)
    }

    /// True when no lane is busy (a resume of the journal may start).
    pub fn is_idle(&self) -> bool {
        self.busy.is_empty()
    }

    /// Puts `running` in `lane`; gives it back if the lane is busy.
    pub fn occupy(&mut self, lane: Lane, running: T) -> Result<(), T> {
        if self.busy.contains_key(&lane) {
            return Err(running);
        }
        self.busy.insert(lane, running);
        Ok(())
    }

    /// What runs in `lane`, if anything.
    pub fn get(&self, lane: &Lane) -> Option<&T> {
        self.busy.get(lane)
    }

    /// Takes out `lane`'s work, freeing it.
    pub fn take(&mut self, lane: &Lane) -> Option<T> {
        self.busy.remove(lane)
    }

    /// How many lanes are busy.
    pub fn len(&self) -> usize {
        self.busy.len()
    }

    /// True when no lane is busy.
    pub fn is_empty(&self) -> bool {
        self.busy.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failover(db: &str) -> ActionSpec {
        ActionSpec::Failover {
            database: db.into(),
            from_member: "m0".into(),
            to_member: None,
            force: false,
            avoid_regions: Default::default(),
        }
    }

    #[test]
    fn each_database_has_its_lane_and_weights_share_one() {
        let table = [
            (
                ActionSpec::SetWeights {
                    record: "api".into(),
                    weights: Default::default(),
                },
                Lane::Traffic,
            ),
            (
                ActionSpec::SetWeightsBatch {
                    records: Default::default(),
                },
                Lane::Traffic,
            ),
            (failover("orders"), Lane::Database("orders".into())),
            (
                ActionSpec::Unfence {
                    database: "orders".into(),
                    member: "m0".into(),
                },
                Lane::Database("orders".into()),
            ),
            (
                ActionSpec::MoveWriter {
                    database: "users".into(),
                    member: "m0".into(),
                },
                Lane::Database("users".into()),
            ),
        ];
        for (spec, lane) in table {
            assert_eq!(Lane::of(&spec), lane, "{spec:?}");
        }
    }

    #[test]
    fn a_busy_lane_holds_back_only_its_own_work() {
        let mut lanes: Lanes<&str> = Lanes::default();
        assert!(lanes.is_idle());
        let orders = Lane::of(&failover("orders"));
        assert_eq!(lanes.occupy(orders.clone(), "slow catch-up"), Ok(()));
        // The same database waits; another database and traffic go ahead.
        assert_eq!(lanes.occupy(orders.clone(), "unfence"), Err("unfence"));
        assert!(lanes.is_free(&Lane::Database("users".into())));
        assert_eq!(lanes.occupy(Lane::Traffic, "evacuate"), Ok(()));
        assert_eq!(lanes.len(), 2);
        assert_eq!(lanes.take(&Lane::Traffic), Some("evacuate"));
        assert_eq!(lanes.take(&Lane::Traffic), None);
        assert!(lanes.is_free(&Lane::Traffic));
        assert!(!lanes.is_free(&orders));
        assert!(!lanes.is_idle());
    }
}
