//! Engine tests: one file per concern, sharing the small world builder below.

mod database;
mod health;
mod pause;
mod props;
mod region;
mod settle;
mod traffic;
mod verdict;
mod witness;

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use super::*;

/// A fixed instant so tests never read the clock.
pub(super) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
        .single()
        .expect("valid fixed date")
}

/// `t0` plus `s` seconds.
pub(super) fn at(s: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(s)
}

/// A topology, a health book, a control state and a policy, with helpers to
/// make probes agree and to apply a decision the way the leader would.
#[derive(Clone)]
pub(super) struct World {
    pub topo: Topology,
    pub book: HealthBook,
    pub control: ControlState,
    pub policy: Policy,
}

impl World {
    /// Regions `(name, weight, priority)`; every record has an endpoint
    /// `svc:<record>@<region>` in every region at the region's weight; the
    /// current weights are the base weights.
    pub fn new(regions: &[(&str, u32, u32)], records: &[&str]) -> Self {
        let mut topo = Topology::default();
        for (name, weight, priority) in regions {
            topo.regions.insert(
                (*name).to_owned(),
                Region {
                    weight: *weight,
                    priority: *priority,
                },
            );
        }
        for record in records {
            let endpoints = regions
                .iter()
                .map(|(r, w, _)| {
                    (
                        (*r).to_owned(),
                        Endpoint {
                            target: TargetId::service(record, r),
                            weight: *w,
                        },
                    )
                })
                .collect();
            topo.records
                .insert((*record).to_owned(), Record { endpoints });
        }
        let mut w = Self {
            topo,
            book: HealthBook::new(),
            control: ControlState::default(),
            policy: Policy::default(),
        };
        w.control.weights = w.base_weights();
        w
    }

    /// Three regions a, b, c (weight 100, priorities 1, 2, 3) and one record.
    pub fn abc() -> Self {
        Self::new(&[("a", 100, 1), ("b", 100, 2), ("c", 100, 3)], &["api"])
    }

    /// Adds database `name` with `(member, region)` members and `primary`.
    pub fn with_db(mut self, name: &str, members: &[(&str, &str)], primary: &str) -> Self {
        let members = members
            .iter()
            .map(|(m, r)| {
                (
                    (*m).to_owned(),
                    Member {
                        region: (*r).to_owned(),
                        target: TargetId::db_member(name, m),
                    },
                )
            })
            .collect();
        self.topo.databases.insert(
            name.to_owned(),
            Database {
                members,
                primary: primary.to_owned(),
            },
        );
        self
    }

    pub fn base_weights(&self) -> BTreeMap<String, DesiredWeights> {
        self.topo
            .records
            .iter()
            .map(|(n, r)| {
                (
                    n.clone(),
                    r.endpoints
                        .iter()
                        .map(|(reg, e)| (reg.clone(), e.weight))
                        .collect(),
                )
            })
            .collect()
    }

    /// Adds witness `name`: a vantage that hosts nothing.
    pub fn with_witness(mut self, name: &str) -> Self {
        self.topo.witnesses.insert(name.to_owned());
        self
    }

    /// Every region and witness, in that order.
    pub fn vantages(&self) -> Vec<String> {
        self.topo.vantages().map(str::to_owned).collect()
    }

    /// Every vantage in `vantages` reports `target` `ok` exactly `times`
    /// times at `t` (fewer than `fall` failures: failing, not yet Down).
    pub fn report(
        &mut self,
        target: &str,
        vantages: &[&str],
        ok: bool,
        times: u32,
        t: DateTime<Utc>,
    ) {
        for v in vantages {
            let obs = Observation {
                target: TargetId::from(target),
                vantage: (*v).to_owned(),
                ok,
                observed_at: t,
            };
            for _ in 0..times {
                self.book.record(&obs, &self.policy);
            }
        }
    }

    /// Every vantage in `vantages` reports `target` `ok` enough times at `t`
    /// to settle its status.
    pub fn see(&mut self, target: &str, vantages: &[&str], ok: bool, t: DateTime<Utc>) {
        let n = self.policy.rise.max(self.policy.fall).max(1);
        for v in vantages {
            let obs = Observation {
                target: TargetId::from(target),
                vantage: (*v).to_owned(),
                ok,
                observed_at: t,
            };
            for _ in 0..n {
                self.book.record(&obs, &self.policy);
            }
        }
    }

    /// Every vantage sees every target of the topology up at `t`.
    pub fn all_up(&mut self, t: DateTime<Utc>) {
        let vantages = self.vantages();
        let vs: Vec<&str> = vantages.iter().map(String::as_str).collect();
        for target in self.targets() {
            self.see(&target, &vs, true, t);
        }
    }

    /// Every vantage sees every service endpoint of `region` down at `t`
    /// (and everything else up).
    pub fn region_down(&mut self, region: &str, t: DateTime<Utc>) {
        self.all_up(t);
        let vantages = self.vantages();
        let vs: Vec<&str> = vantages.iter().map(String::as_str).collect();
        let targets: Vec<String> = self
            .topo
            .records
            .values()
            .filter_map(|r| r.endpoints.get(region))
            .map(|e| e.target.to_string())
            .collect();
        for target in targets {
            self.see(&target, &vs, false, t);
        }
    }

    pub fn targets(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .topo
            .records
            .values()
            .flat_map(|r| r.endpoints.values().map(|e| e.target.to_string()))
            .collect();
        for d in self.topo.databases.values() {
            out.extend(d.members.values().map(|m| m.target.to_string()));
        }
        out
    }

    pub fn decide(&self, t: DateTime<Utc>) -> Decision {
        decide(&self.topo, &self.book, &self.control, &self.policy, t)
    }

    /// Decides at `t` and applies the outcome as a leader would: region
    /// states and weights are remembered, failovers recorded.
    pub fn step(&mut self, t: DateTime<Utc>) -> Decision {
        let d = self.decide(t);
        self.control.regions = d.regions.clone();
        for a in &d.plan.actions {
            match a {
                Action::SetWeights {
                    record, weights, ..
                } => {
                    self.control.weights.insert(record.clone(), weights.clone());
                }
                Action::Failover { database, .. } => {
                    self.control.last_failover.insert(database.clone(), t);
                }
            }
        }
        d
    }

    pub fn weights(&self, record: &str) -> Vec<u32> {
        self.control
            .weights
            .get(record)
            .map(|w| w.values().copied().collect())
            .unwrap_or_default()
    }
}

/// The weights of the first SetWeights for `record` in `d`, in region order.
pub(super) fn planned(d: &Decision, record: &str) -> Option<Vec<u32>> {
    d.plan.actions.iter().find_map(|a| match a {
        Action::SetWeights {
            record: r, weights, ..
        } if r == record => Some(weights.values().copied().collect()),
        _ => None,
    })
}

pub(super) fn status(d: &Decision, region: &str) -> RegionStatus {
    d.regions
        .get(region)
        .map(|s| s.status)
        .expect("region in decision")
}

pub(super) fn alarms(d: &Decision, kind: AlarmKind) -> Vec<&Alarm> {
    d.alarms.iter().filter(|a| a.kind == kind).collect()
}
