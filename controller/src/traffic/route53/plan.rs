//! Desired against actual: the Route 53 changes one apply needs, and what
//! a record holds as read back. Pure functions over the record sets that
//! `ListResourceRecordSets` returned for the name, so they are tested
//! without a server.
//!
//! Only record sets whose `SetIdentifier` is a configured region are ours:
//! others at the same name are neither read nor changed. A simple record
//! (no `SetIdentifier`) where weighted ones must go is refused with a
//! how-to-fix message rather than replaced, since another tool may own it
//! (the external-dns failure #1411, #3141).

use aws_sdk_route53::types::{Change, ChangeAction, ResourceRecord, ResourceRecordSet, RrType};

use crate::config::RecordType;
use crate::traffic::records::{WeightedRecord, WriterRecord, WriterTarget, canonical_value};
use crate::traffic::{RecordState, Target, TrafficError, Weights};

/// The Route 53 type of a record type.
pub fn rr_type(kind: RecordType) -> RrType {
    match kind {
        RecordType::A => RrType::A,
        RecordType::Aaaa => RrType::Aaaa,
        RecordType::Cname => RrType::Cname,
    }
}

fn kind_of(t: &RrType) -> Option<RecordType> {
    match t {
        RrType::A => Some(RecordType::A),
        RrType::Aaaa => Some(RecordType::Aaaa),
        RrType::Cname => Some(RecordType::Cname),
        _ => None,
    }
}

fn first_value(set: &ResourceRecordSet, kind: RecordType) -> Option<String> {
    set.resource_records()
        .first()
        .map(|r| canonical_value(kind, r.value()))
}

fn build_err(e: impl std::fmt::Display) -> TrafficError {
    TrafficError::Refused(format!("cannot build a Route 53 change: {e}"))
}

/// One record set as Route 53 takes it.
pub fn record_set(
    name: &str,
    kind: RecordType,
    ttl: u32,
    value: &str,
    weighted: Option<(&str, u32)>,
) -> Result<ResourceRecordSet, TrafficError> {
    let mut b = ResourceRecordSet::builder()
        .name(name)
        .r#type(rr_type(kind))
        .ttl(i64::from(ttl))
        .resource_records(
            ResourceRecord::builder()
                .value(value)
                .build()
                .map_err(build_err)?,
        );
    if let Some((id, weight)) = weighted {
        b = b.set_identifier(id).weight(i64::from(weight));
    }
    b.build().map_err(build_err)
}

fn change(action: ChangeAction, set: ResourceRecordSet) -> Result<Change, TrafficError> {
    Change::builder()
        .action(action)
        .resource_record_set(set)
        .build()
        .map_err(build_err)
}

fn conflicts(kind: RecordType, other: RecordType) -> bool {
    kind == other || kind == RecordType::Cname || other == RecordType::Cname
}

/// The weighted sets of `rec` as Route 53 holds them: region → target.
pub fn read_weighted(rec: &WeightedRecord, sets: &[ResourceRecordSet]) -> RecordState {
    RecordState(
        sets.iter()
            .filter(|s| kind_of(s.r#type()) == Some(rec.kind))
            .filter_map(|s| {
                let region = s.set_identifier()?;
                rec.values.contains_key(region).then(|| {
                    (
                        region.to_string(),
                        Target {
                            value: first_value(s, rec.kind),
                            weight: s.weight().and_then(|w| u32::try_from(w).ok()).unwrap_or(0),
                        },
                    )
                })
            })
            .collect(),
    )
}

/// The writer record as Route 53 holds it: the member's region → its value
/// (region `""` when the value is no configured member's).
pub fn read_writer(rec: &WriterRecord, sets: &[ResourceRecordSet]) -> RecordState {
    RecordState(
        sets.iter()
            .filter(|s| s.set_identifier().is_none())
            .filter_map(|s| {
                let kind = kind_of(s.r#type())?;
                let value = first_value(s, kind)?;
                let region = rec
                    .member_for(kind, &value)
                    .map(|(_, t)| t.region.clone())
                    .unwrap_or_default();
                Some((
                    region,
                    Target {
                        value: Some(value),
                        weight: 1,
                    },
                ))
            })
            .collect(),
    )
}

/// UPSERTs that make `rec` hold `weights` (already fitted to 0–255): one
/// per region whose value, weight or TTL differs. A region Route 53 holds
/// but `weights` leaves out goes to 0.
pub fn weighted_changes(
    zone: &str,
    rec: &WeightedRecord,
    weights: &Weights,
    sets: &[ResourceRecordSet],
) -> Result<Vec<Change>, TrafficError> {
    for s in sets {
        let Some(other) = kind_of(s.r#type()) else {
            continue;
        };
        if !conflicts(rec.kind, other) {
            continue;
        }
        match s.set_identifier() {
            None => {
                let value = first_value(s, other).unwrap_or_default();
                return Err(TrafficError::Refused(format!(
                    "{name} {t} in hosted zone {zone} is a simple record ({value}); Route 53 cannot \
                     hold simple and weighted records of one name, and Switchyard does not delete \
                     records it did not create. To hand the name to Switchyard, delete it \
                     (aws route53 change-resource-record-sets --hosted-zone-id {zone} with a DELETE \
                     of exactly that record set), then apply again: the weighted records are \
                     created in one batch",
                    name = rec.name,
                    t = other.as_str(),
                )));
            }
            Some(id) if other != rec.kind => {
                return Err(TrafficError::Refused(format!(
                    "{name} has weighted {t} records (SetIdentifier {id}) where the config says \
                     {want}: delete them, or set the service's type to {t}",
                    name = rec.name,
                    t = other.as_str(),
                    want = rec.kind.as_str(),
                )));
            }
            Some(id) if rec.values.contains_key(id) && s.weight().is_none() => {
                return Err(TrafficError::Refused(format!(
                    "{name} {t} SetIdentifier {id} uses another routing policy than weighted: \
                     delete it so Switchyard can create the weighted record",
                    name = rec.name,
                    t = other.as_str(),
                )));
            }
            Some(_) => {}
        }
    }
    let actual = read_weighted(rec, sets);
    let ttls: std::collections::BTreeMap<&str, Option<i64>> = sets
        .iter()
        .filter(|s| kind_of(s.r#type()) == Some(rec.kind))
        .filter_map(|s| Some((s.set_identifier()?, s.ttl())))
        .collect();
    let mut desired = weights.clone();
    for region in actual.0.keys() {
        desired.entry(region.clone()).or_insert(0);
    }
    let mut out = Vec::new();
    for (region, weight) in &desired {
        let Some(value) = rec.values.get(region) else {
            continue;
        };
        let same = actual.0.get(region).is_some_and(|t| {
            t.weight == *weight
                && t.value.as_deref() == Some(value.as_str())
                && ttls.get(region.as_str()).copied().flatten() == Some(i64::from(rec.ttl))
        });
        if !same {
            out.push(change(
                ChangeAction::Upsert,
                record_set(&rec.name, rec.kind, rec.ttl, value, Some((region, *weight)))?,
            )?);
        }
    }
    Ok(out)
}

/// The changes that point writer record `rec` at `target`: none when it
/// already does, an UPSERT when only the value or TTL differs, a DELETE of
/// the old set and a CREATE when the record type changes (e.g. A → CNAME).
pub fn writer_changes(
    zone: &str,
    rec: &WriterRecord,
    target: &WriterTarget,
    sets: &[ResourceRecordSet],
) -> Result<Vec<Change>, TrafficError> {
    let mut out = Vec::new();
    let mut upsert = true;
    let mut create = false;
    for s in sets {
        let Some(kind) = kind_of(s.r#type()) else {
            continue;
        };
        if let Some(id) = s.set_identifier() {
            return Err(TrafficError::Refused(format!(
                "writer record {} in hosted zone {zone} has a weighted {} record (SetIdentifier \
                 {id}); a writer record is one simple record: delete the weighted ones",
                rec.name,
                kind.as_str()
            )));
        }
        if kind == target.kind {
            let same = first_value(s, kind).as_deref() == Some(target.value.as_str())
                && s.resource_records().len() == 1
                && s.ttl() == Some(i64::from(rec.ttl));
            upsert = !same;
        } else {
            out.push(change(ChangeAction::Delete, s.clone())?);
            create = true;
        }
    }
    if create || upsert {
        let action = if create
            && !sets
                .iter()
                .any(|s| kind_of(s.r#type()) == Some(target.kind))
        {
            ChangeAction::Create
        } else {
            ChangeAction::Upsert
        };
        out.push(change(
            action,
            record_set(&rec.name, target.kind, rec.ttl, &target.value, None)?,
        )?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AnswerMode;

    fn rec() -> WeightedRecord {
        WeightedRecord {
            name: "api.example.com.".into(),
            kind: RecordType::A,
            ttl: 30,
            answer: AnswerMode::One,
            values: [
                ("a".to_string(), "192.0.2.1".to_string()),
                ("b".to_string(), "192.0.2.2".to_string()),
            ]
            .into(),
        }
    }

    fn set(id: Option<&str>, value: &str, weight: Option<u32>) -> ResourceRecordSet {
        let mut s = record_set("api.example.com.", RecordType::A, 30, value, None).expect("set");
        if let Some(id) = id {
            s = ResourceRecordSet::builder()
                .name(s.name())
                .r#type(RrType::A)
                .ttl(30)
                .set_identifier(id)
                .set_weight(weight.map(i64::from))
                .resource_records(ResourceRecord::builder().value(value).build().expect("rr"))
                .build()
                .expect("set");
        }
        s
    }

    fn w(pairs: &[(&str, u32)]) -> Weights {
        pairs.iter().map(|(r, w)| (r.to_string(), *w)).collect()
    }

    #[test]
    fn only_differences_are_sent() {
        let sets = vec![
            set(Some("a"), "192.0.2.1", Some(10)),
            set(Some("b"), "192.0.2.2", Some(5)),
        ];
        let c = weighted_changes("Z", &rec(), &w(&[("a", 10), ("b", 5)]), &sets).expect("plan");
        assert!(c.is_empty());
        let c = weighted_changes("Z", &rec(), &w(&[("a", 10), ("b", 0)]), &sets).expect("plan");
        assert_eq!(c.len(), 1);
        // A region left out goes to 0.
        let c = weighted_changes("Z", &rec(), &w(&[("a", 10)]), &sets).expect("plan");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].resource_record_set().and_then(|s| s.weight()), Some(0));
    }

    #[test]
    fn a_simple_record_is_refused_with_a_fix() {
        let sets = vec![set(None, "192.0.2.9", None)];
        let err = weighted_changes("Z", &rec(), &w(&[("a", 1)]), &sets).expect_err("refused");
        assert!(!err.retryable());
        assert!(err.to_string().contains("delete it"), "{err}");
    }

    #[test]
    fn writer_type_change_deletes_and_creates() {
        let mut book = crate::traffic::records::RecordBook::default();
        book.insert_writer_members(
            "db.example.com.",
            &[
                ("m1", "a", "192.0.2.1:3306"),
                ("m2", "b", "db2.example.net:3306"),
            ],
        );
        let Ok(rec) = book.writer("db.example.com.") else {
            panic!("writer record missing");
        };
        let old = record_set("db.example.com.", RecordType::A, 10, "192.0.2.1", None).expect("set");
        let Some(m2) = rec.members.get("m2") else {
            panic!("member missing");
        };
        let c = writer_changes("Z", rec, m2, std::slice::from_ref(&old)).expect("plan");
        let actions: Vec<_> = c.iter().map(|c| c.action().clone()).collect();
        assert_eq!(actions, vec![ChangeAction::Delete, ChangeAction::Create]);
        let Some(m1) = rec.members.get("m1") else {
            panic!("member missing");
        };
        assert!(
            writer_changes("Z", rec, m1, &[old])
                .expect("plan")
                .is_empty()
        );
    }
}
