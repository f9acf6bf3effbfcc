//! The contract of [`TrafficBackend`], as one suite every backend runs
//! (the file backend, Route 53 through moto, the embedded server): a new
//! backend is done when [`run`] passes against it.
//!
//! The suite needs a fresh backend whose records are [`Subject::book`]'s.
//! It checks read-back, idempotence, the all-zero refusal and its `force`
//! override, atomicity of a refused change, unknown records and regions,
//! "left out is 0", scaling of weights above the backend's range, and a
//! writer record moved in the same change as weights.

use super::records::{RecordBook, WeightedRecord};
use super::{
    RecordChange, RecordState, TrafficBackend, TrafficChange, TrafficError, Weights, WriterChange,
};
use crate::config::{AnswerMode, RecordType};

/// Why a backend broke the contract.
#[derive(Debug, thiserror::Error)]
#[error("traffic backend conformance: {0}")]
pub struct Violation(pub String);

/// The records the suite works on, all in one zone.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The zone (trailing dot), e.g. `example.com.`.
    pub zone: String,
    /// Three regions.
    pub regions: [String; 3],
}

impl Subject {
    /// Regions `us-east`, `eu-west`, `ap-south` in `zone`.
    pub fn new(zone: &str) -> Self {
        Subject {
            zone: zone.to_string(),
            regions: ["us-east".into(), "eu-west".into(), "ap-south".into()],
        }
    }

    /// The weighted record checked most (`api.<zone>`).
    pub fn record(&self) -> String {
        format!("api.{}", self.zone)
    }

    /// A second weighted record (`web.<zone>`), for atomicity.
    pub fn other(&self) -> String {
        format!("web.{}", self.zone)
    }

    /// The writer record (`db.<zone>`): member `m1` is an IPv4 host in the
    /// first region, `m2` a host name in the second (so a move changes
    /// the record type, A → CNAME).
    pub fn writer(&self) -> String {
        format!("db.{}", self.zone)
    }

    /// The value the config publishes for region `i` of `api`.
    pub fn value(&self, i: usize) -> String {
        format!("192.0.2.{}", i + 1)
    }

    /// The records a backend under test must be built with.
    pub fn book(&self) -> RecordBook {
        let mut book = RecordBook::default();
        for (name, base) in [(self.record(), 1), (self.other(), 11)] {
            book.insert_weighted(WeightedRecord {
                name,
                kind: RecordType::A,
                ttl: 30,
                answer: AnswerMode::One,
                values: self
                    .regions
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (r.clone(), format!("192.0.2.{}", base + i)))
                    .collect(),
            });
        }
        book.insert_writer_members(
            &self.writer(),
            &[
                ("m1", &self.regions[0], "192.0.2.50:3306"),
                ("m2", &self.regions[1], "db2.example.net:3306"),
            ],
        );
        book
    }

    fn weights(&self, w: [u32; 3]) -> Weights {
        self.regions.iter().cloned().zip(w).collect()
    }
}

fn fail(what: impl Into<String>) -> Violation {
    Violation(what.into())
}

fn set(record: &str, weights: Weights) -> TrafficChange {
    TrafficChange::weights(vec![RecordChange {
        record: record.to_string(),
        weights,
    }])
}

async fn read(b: &dyn TrafficBackend, record: &str) -> Result<RecordState, Violation> {
    b.read(record)
        .await
        .map_err(|e| fail(format!("read {record}: {e}")))
}

async fn expect_weights(
    b: &dyn TrafficBackend,
    record: &str,
    want: &Weights,
    step: &str,
) -> Result<RecordState, Violation> {
    let got = read(b, record).await?;
    let stored = b.stored_weights(want);
    if !got.matches(&stored) {
        return Err(fail(format!(
            "{step}: {record} reads {:?}, expected {stored:?}",
            got.weights()
        )));
    }
    Ok(got)
}

async fn expect_refused(
    b: &dyn TrafficBackend,
    change: &TrafficChange,
    step: &str,
) -> Result<(), Violation> {
    match b.apply_change(change).await {
        Err(TrafficError::Refused(_)) => Ok(()),
        Err(e) => Err(fail(format!("{step}: refused as retryable: {e}"))),
        Ok(_) => Err(fail(format!("{step}: accepted, must be refused"))),
    }
}

async fn apply(
    b: &dyn TrafficBackend,
    change: &TrafficChange,
    step: &str,
) -> Result<usize, Violation> {
    b.apply_change(change)
        .await
        .map(|a| a.changed)
        .map_err(|e| fail(format!("{step}: {e}")))
}

/// Runs the whole contract against `b`, which must be fresh and built
/// with `s.book()`.
pub async fn run(b: &dyn TrafficBackend, s: &Subject) -> Result<(), Violation> {
    let (api, web, db) = (s.record(), s.other(), s.writer());
    if !read(b, &api).await?.is_empty() || !read(b, &web).await?.is_empty() {
        return Err(fail("a fresh backend must read empty sets"));
    }

    // Three regions, read back with their values; the same again is a no-op.
    let w = s.weights([60, 30, 10]);
    if apply(b, &set(&api, w.clone()), "first apply").await? != 1 {
        return Err(fail("first apply must report one changed record"));
    }
    let got = expect_weights(b, &api, &w, "first apply").await?;
    for (i, region) in s.regions.iter().enumerate() {
        let value = got.0.get(region).and_then(|t| t.value.clone());
        if value.as_deref() != Some(s.value(i).as_str()) {
            return Err(fail(format!(
                "{region}: value {value:?}, want {}",
                s.value(i)
            )));
        }
    }
    if apply(b, &set(&api, w.clone()), "same apply").await? != 0 {
        return Err(fail("an identical apply must change nothing"));
    }

    // One region to 0.
    let shifted = s.weights([60, 30, 0]);
    apply(b, &set(&api, shifted.clone()), "shift to 0").await?;
    let got = expect_weights(b, &api, &shifted, "shift to 0").await?;
    if got.0.get(&s.regions[2]).map(|t| t.weight) != Some(0) {
        return Err(fail("a region at 0 must still be read, at weight 0"));
    }

    // All at 0: refused, retrying cannot help, nothing changed.
    expect_refused(b, &set(&api, s.weights([0, 0, 0])), "all zero").await?;
    expect_weights(b, &api, &shifted, "after the all-zero refusal").await?;

    // A refused change leaves every part of it undone.
    let mut both = set(&web, s.weights([5, 5, 5]));
    both.records.push(RecordChange {
        record: api.clone(),
        weights: s.weights([0, 0, 0]),
    });
    expect_refused(b, &both, "batch with a bad part").await?;
    if !read(b, &web).await?.is_empty() {
        return Err(fail("a refused batch must not apply its good part"));
    }

    // Unknown regions and records.
    let mut unknown_region = s.weights([1, 1, 1]);
    unknown_region.insert("nowhere".into(), 1);
    expect_refused(b, &set(&api, unknown_region), "unknown region").await?;
    expect_refused(
        b,
        &set(&format!("nope.{}", s.zone), s.weights([1, 1, 1])),
        "unknown record",
    )
    .await?;
    expect_weights(b, &api, &shifted, "after unknown names").await?;

    // A region left out goes to 0.
    let two: Weights = s.regions[..2].iter().map(|r| (r.clone(), 10)).collect();
    apply(b, &set(&api, two.clone()), "left out").await?;
    expect_weights(b, &api, &s.weights([10, 10, 0]), "left out is 0").await?;

    // Weights beyond the backend's range are scaled, shares kept.
    let big = s.weights([300, 100, 0]);
    apply(b, &set(&api, big.clone()), "weights above 255").await?;
    let got = expect_weights(b, &api, &big, "weights above 255").await?;
    let g = got.weights();
    let (a, c) = (
        g.get(&s.regions[0]).copied().unwrap_or(0),
        g.get(&s.regions[1]).copied().unwrap_or(0),
    );
    if c == 0 || a.abs_diff(3 * c) > 2 {
        return Err(fail(format!("300:100 stored as {a}:{c}, not 3:1")));
    }

    // Forced all-zero is the operator's to make.
    let mut forced = set(&api, s.weights([0, 0, 0]));
    forced.force = true;
    apply(b, &forced, "forced all zero").await?;
    expect_weights(b, &api, &s.weights([0, 0, 0]), "forced all zero").await?;

    // The writer record moves with the weights, in one change; a type
    // change (A → CNAME) and back; the same move again is a no-op.
    for (member, region, value) in [("m2", 1usize, "db2.example.net."), ("m1", 0, "192.0.2.50")] {
        let mut w = [0u32; 3];
        w[region] = 100;
        let change = TrafficChange {
            records: vec![RecordChange {
                record: api.clone(),
                weights: s.weights(w),
            }],
            writers: vec![WriterChange {
                record: db.clone(),
                member: member.into(),
            }],
            force: false,
        };
        if apply(b, &change, "writer move").await? != 2 {
            return Err(fail("a writer move with weights must change two records"));
        }
        expect_weights(b, &api, &s.weights(w), "writer move").await?;
        let got = read(b, &db).await?;
        let want = &s.regions[region];
        let t = got.0.get(want);
        if got.0.len() != 1 || t.and_then(|t| t.value.as_deref()) != Some(value) {
            return Err(fail(format!(
                "writer {db} reads {got:?}, want {want} → {value}"
            )));
        }
        if apply(b, &change, "same writer move").await? != 0 {
            return Err(fail("the same writer move again must change nothing"));
        }
    }
    let bad_member = TrafficChange {
        writers: vec![WriterChange {
            record: db.clone(),
            member: "m9".into(),
        }],
        ..TrafficChange::default()
    };
    expect_refused(b, &bad_member, "unknown member").await?;
    Ok(())
}
