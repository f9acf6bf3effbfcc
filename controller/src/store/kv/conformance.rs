//! The contract of [`Kv`], as one suite both implementations run: a real
//! etcd (`switchyard/tests/store_conformance.rs` starts one) and the
//! in-memory model. What the model gets wrong here, the simulator would
//! get wrong everywhere, so the suite pins down the behaviour the safety
//! argument uses, including etcd's corners: a delete of nothing does not
//! advance the revision, a value compare never holds for a missing key,
//! a transaction writes every key at one revision (a range delete's
//! keys too), a revoke deletes a lease's keys at one revision, a count is
//! of every key selected whatever the limit.
//!
//! [`run`] needs an empty `prefix` of its own; every key it writes lies
//! under it.

use std::time::Duration;

use super::{
    CmpOp, Compare, KeyValue, Kv, KvError, Op, OpResult, RangeQuery, Txn, WatchEvent, WatchStream,
};

/// Why an implementation broke the contract.
#[derive(Debug, thiserror::Error)]
#[error("key-value conformance: {0}")]
pub struct Violation(pub String);

impl From<KvError> for Violation {
    fn from(e: KvError) -> Self {
        Violation(format!("unexpected error: {e}"))
    }
}

macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(Violation(format!($($why)+)));
        }
    };
}

/// Longest wait for a watch event or a lease to expire: generous, for a
/// real etcd on a busy machine.
const PATIENCE: Duration = Duration::from_secs(15);

/// TTL of the suite's leases: above a real etcd's minimum.
const TTL: Duration = Duration::from_secs(2);

/// Runs every check against `kv`, under `prefix` (empty beforehand).
pub async fn run(kv: &dyn Kv, prefix: &str) -> Result<(), Violation> {
    revisions(kv, &format!("{prefix}rev/")).await?;
    ranges(kv, &format!("{prefix}range/")).await?;
    transactions(kv, &format!("{prefix}txn/")).await?;
    watches(kv, &format!("{prefix}watch/")).await?;
    leases(kv, &format!("{prefix}lease/")).await?;
    Ok(())
}

/// Key metadata and the store revision, write by write.
pub async fn revisions(kv: &dyn Kv, p: &str) -> Result<(), Violation> {
    let a = format!("{p}a");
    let r1 = kv.put(&a, b"1".to_vec(), None).await?;
    let got = kv.get(&a).await?;
    ensure!(
        got == Some(KeyValue {
            key: a.clone(),
            value: b"1".to_vec(),
            create_revision: r1,
            mod_revision: r1,
            version: 1,
            lease: 0,
        }),
        "a new key reads back with create = mod = its revision {r1}, version 1: got {got:?}"
    );
    let r2 = kv.put(&a, b"2".to_vec(), None).await?;
    ensure!(
        r2 == r1 + 1,
        "a put advances the revision by one: {r1} → {r2}"
    );
    let got = kv.get(&a).await?.ok_or(Violation("a vanished".into()))?;
    ensure!(
        got.create_revision == r1 && got.mod_revision == r2 && got.version == 2,
        "an overwrite keeps the create revision and counts the version: {got:?}"
    );
    let gone = kv.delete(&a).await?;
    ensure!(gone == 1, "a delete of a key removes one: {gone}");
    let none = kv.delete(&a).await?;
    ensure!(none == 0, "a delete of a missing key removes none: {none}");
    let r4 = kv.put(&a, b"3".to_vec(), None).await?;
    ensure!(
        r4 == r2 + 2,
        "the delete advanced the revision by one and the delete of nothing not at all: {r2} → {r4}"
    );
    let got = kv.get(&a).await?.ok_or(Violation("a vanished".into()))?;
    ensure!(
        got.create_revision == r4 && got.version == 1,
        "a key created again starts over (create {r4}, version 1): {got:?}"
    );
    ensure!(
        kv.get(&format!("{p}never")).await?.is_none(),
        "a key never written reads as none"
    );
    Ok(())
}

/// Range reads: prefix, bounds, limit and order.
pub async fn ranges(kv: &dyn Kv, p: &str) -> Result<(), Violation> {
    for i in 1..=5 {
        kv.put(&format!("{p}{i}"), vec![i], None).await?;
    }
    // Under the prefix, sorting before the digits: a range from `{p}1`
    // leaves it out, a range of the whole prefix does not.
    let last = kv.put(&format!("{p}/before"), vec![0], None).await?;
    let keys =
        |r: &super::Range| -> Vec<String> { r.kvs.iter().map(|kv| kv.key.clone()).collect() };
    let digits: Vec<String> = (1..=5).map(|i| format!("{p}{i}")).collect();
    let all = kv
        .range(&RangeQuery {
            prefix: p.to_string(),
            from: Some(format!("{p}1")),
            ..RangeQuery::default()
        })
        .await?;
    ensure!(
        keys(&all) == digits,
        "a range from a key gives the keys at or after it in order: {:?}",
        keys(&all)
    );
    ensure!(
        all.revision >= last && !all.more,
        "a range read reports the store revision ({} ≥ {last}) and no more keys",
        all.revision
    );
    let everything = kv.range(&RangeQuery::prefix(p)).await?;
    ensure!(
        everything.kvs.len() == 6 && everything.count == 6,
        "a prefix range gives every key under it, and counts them: {:?} (count {})",
        keys(&everything),
        everything.count
    );
    let counted = kv
        .range(&RangeQuery {
            prefix: p.to_string(),
            limit: 1,
            keys_only: true,
            ..RangeQuery::default()
        })
        .await?;
    ensure!(
        counted.count == 6 && counted.more,
        "the count is of every key selected, the limit aside: {}",
        counted.count
    );
    ensure!(
        matches!(counted.kvs.as_slice(), [first] if first.key == format!("{p}/before")
            && first.value.is_empty() && first.mod_revision == last && first.version == 1),
        "a keys-only read gives keys and their metadata, no values: {:?}",
        counted.kvs
    );
    let first_two = kv
        .range(&RangeQuery {
            prefix: p.to_string(),
            from: Some(format!("{p}1")),
            limit: 2,
            ..RangeQuery::default()
        })
        .await?;
    ensure!(
        keys(&first_two) == digits[..2] && first_two.more && first_two.count == 5,
        "a limit gives the first keys and says more lie beyond: {:?} more={}",
        keys(&first_two),
        first_two.more
    );
    let last_two = kv
        .range(&RangeQuery {
            prefix: p.to_string(),
            from: Some(format!("{p}1")),
            limit: 2,
            descending: true,
            ..RangeQuery::default()
        })
        .await?;
    ensure!(
        keys(&last_two) == [digits[4].clone(), digits[3].clone()] && last_two.more,
        "descending gives the last keys first: {:?}",
        keys(&last_two)
    );
    let middle = kv
        .range(&RangeQuery {
            prefix: p.to_string(),
            from: Some(format!("{p}2")),
            to: Some(format!("{p}4")),
            ..RangeQuery::default()
        })
        .await?;
    ensure!(
        keys(&middle) == digits[1..3],
        "from is inclusive and to exclusive: {:?}",
        keys(&middle)
    );
    let empty = kv.range(&RangeQuery::prefix(format!("{p}none/"))).await?;
    ensure!(
        empty.kvs.is_empty() && !empty.more,
        "an empty prefix range is empty: {:?}",
        keys(&empty)
    );
    Ok(())
}

/// Transactions: compares, branches, one revision per transaction.
pub async fn transactions(kv: &dyn Kv, p: &str) -> Result<(), Violation> {
    let (leader, x, y) = (format!("{p}leader"), format!("{p}x"), format!("{p}y"));
    let token = kv.put(&leader, b"me".to_vec(), None).await?;
    let before = kv.put(&x, b"0".to_vec(), None).await?;

    // The fence: holds while the leader key is the one we created.
    let fenced = kv
        .txn(
            Txn::when([Compare::create_revision(&leader, CmpOp::Equal, token)])
                .and_then([Op::put(&x, b"1".to_vec()), Op::put(&y, b"1".to_vec())]),
        )
        .await?;
    ensure!(
        fenced.succeeded && fenced.revision == before + 1,
        "a txn that holds writes all its keys at one new revision: {fenced:?} after {before}"
    );
    ensure!(
        fenced.results == [OpResult::Put, OpResult::Put],
        "one result per op: {:?}",
        fenced.results
    );
    for k in [&x, &y] {
        let got = kv.get(k).await?.ok_or(Violation(format!("{k} missing")))?;
        ensure!(
            got.mod_revision == fenced.revision,
            "every key of a txn carries its revision: {got:?}"
        );
    }

    // A new leader key: the old token no longer fences.
    kv.delete(&leader).await?;
    kv.put(&leader, b"other".to_vec(), None).await?;
    let stale = kv
        .txn(
            Txn::when([Compare::create_revision(&leader, CmpOp::Equal, token)])
                .and_then([Op::put(&x, b"stale".to_vec())])
                .or_else([Op::get(&leader)]),
        )
        .await?;
    let Some(OpResult::Got(Some(now))) = stale.results.first() else {
        return Err(Violation(format!(
            "a refused txn runs its else branch: {stale:?}"
        )));
    };
    ensure!(
        !stale.succeeded && now.value == b"other",
        "a stale fence is refused and its else branch reads the new leader: {stale:?}"
    );
    ensure!(
        kv.get(&x).await?.map(|kv| kv.value) == Some(b"1".to_vec()),
        "a refused txn writes nothing"
    );
    let quiet = kv
        .txn(Txn::when([Compare::version(&x, CmpOp::Equal, 99)]).and_then([Op::delete(&x)]))
        .await?;
    ensure!(
        !quiet.succeeded && quiet.revision == stale.revision && quiet.results.is_empty(),
        "a txn that writes nothing leaves the revision alone: {quiet:?} after {stale:?}"
    );

    // Missing keys compare as zeros, but never by value.
    let missing = format!("{p}missing");
    let absent = kv
        .txn(Txn::when([
            Compare::version(&missing, CmpOp::Equal, 0),
            Compare::create_revision(&missing, CmpOp::Equal, 0),
            Compare::mod_revision(&missing, CmpOp::Less, 1),
        ]))
        .await?;
    ensure!(
        absent.succeeded,
        "a missing key has version, create and mod revision 0"
    );
    for op in [CmpOp::Equal, CmpOp::NotEqual, CmpOp::Greater, CmpOp::Less] {
        let by_value = kv
            .txn(Txn::when([Compare::value(&missing, op, b"".to_vec())]))
            .await?;
        ensure!(
            !by_value.succeeded,
            "a value compare ({op:?}) never holds for a missing key"
        );
    }
    let values = kv
        .txn(Txn::when([
            Compare::value(&x, CmpOp::Equal, b"1".to_vec()),
            Compare::value(&x, CmpOp::Greater, b"0".to_vec()),
            Compare::value(&x, CmpOp::Less, b"2".to_vec()),
            Compare::version(&x, CmpOp::Greater, 1),
            Compare::mod_revision(&x, CmpOp::Equal, fenced.revision),
        ]))
        .await?;
    ensure!(values.succeeded, "compares of an existing key: {values:?}");

    // A write that names a missing lease fails whole.
    let orphan = kv
        .txn(Txn::default().and_then([
            Op::put(format!("{p}z"), b"1".to_vec()),
            Op::Put {
                key: format!("{p}w"),
                value: b"1".to_vec(),
                lease: Some(0x0BAD_1EA5E),
            },
        ]))
        .await;
    ensure!(
        matches!(orphan, Err(KvError::LeaseNotFound(_))),
        "a txn naming a missing lease is refused: {orphan:?}"
    );
    ensure!(
        kv.get(&format!("{p}z")).await?.is_none(),
        "a refused txn writes none of its keys"
    );
    let twice = kv
        .txn(Txn::default().and_then([Op::put(&y, b"a".to_vec()), Op::put(&y, b"b".to_vec())]))
        .await;
    ensure!(
        matches!(twice, Err(KvError::Refused(_))),
        "a txn writing one key twice is refused: {twice:?}"
    );
    range_deletes(kv, &format!("{p}range/")).await
}

/// A range delete in a transaction: every key in `[from, to)`, at one
/// revision, seen by a watch; a put inside the range in the same
/// transaction is refused.
async fn range_deletes(kv: &dyn Kv, p: &str) -> Result<(), Violation> {
    let mut last = 0;
    for k in ["a", "b", "c", "d"] {
        last = kv.put(&format!("{p}{k}"), b"1".to_vec(), None).await?;
    }
    // From the next revision: a follower that has not yet applied the
    // last put would otherwise deliver it first.
    let mut watch = kv.watch(p, Some(last + 1)).await?;
    let (b, c) = (format!("{p}b"), format!("{p}c"));
    let trimmed = kv
        .txn(Txn::default().and_then([Op::delete_range(&b, format!("{p}d"))]))
        .await?;
    ensure!(
        trimmed.succeeded && trimmed.results == [OpResult::Deleted(2)],
        "a range delete removes the keys from `from` up to `to`: {trimmed:?}"
    );
    let left: Vec<String> = kv
        .range(&RangeQuery::prefix(p))
        .await?
        .kvs
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    ensure!(
        left == [format!("{p}a"), format!("{p}d")],
        "`from` is inclusive, `to` exclusive: left {left:?}"
    );
    for k in [&b, &c] {
        let e = next(&mut watch, "range delete").await?;
        ensure!(
            matches!(&e, WatchEvent::Delete { key, mod_revision } if key == k && *mod_revision == trimmed.revision),
            "a range delete deletes each key at the txn's revision, in key order: {e:?} (want {k})"
        );
    }
    let nothing = kv
        .txn(Txn::default().and_then([Op::delete_range(format!("{p}x"), format!("{p}z"))]))
        .await?;
    ensure!(
        nothing.results == [OpResult::Deleted(0)] && nothing.revision == trimmed.revision,
        "a range delete of nothing leaves the revision alone: {nothing:?}"
    );
    let clash = kv
        .txn(Txn::default().and_then([
            Op::delete_range(format!("{p}a"), format!("{p}z")),
            Op::put(format!("{p}a"), b"2".to_vec()),
        ]))
        .await;
    ensure!(
        matches!(clash, Err(KvError::Refused(_))),
        "a put inside a range the same txn deletes is refused: {clash:?}"
    );
    Ok(())
}

/// Waits for the next event of `stream`.
async fn next(stream: &mut WatchStream, what: &str) -> Result<WatchEvent, Violation> {
    match tokio::time::timeout(PATIENCE, stream.recv()).await {
        Ok(Some(Ok(e))) => Ok(e),
        Ok(Some(Err(e))) => Err(Violation(format!("{what}: the watch failed: {e}"))),
        Ok(None) => Err(Violation(format!("{what}: the watch ended"))),
        Err(_) => Err(Violation(format!("{what}: no event within {PATIENCE:?}"))),
    }
}

/// Watches: every change under the prefix, in order, live and replayed.
pub async fn watches(kv: &dyn Kv, p: &str) -> Result<(), Violation> {
    let under = format!("{p}in/");
    let mut live = kv.watch(&under, None).await?;
    let a = format!("{under}a");
    let r1 = kv.put(&a, b"1".to_vec(), None).await?;
    kv.put(&format!("{p}out"), b"x".to_vec(), None).await?;
    let r2 = kv.put(&a, b"2".to_vec(), None).await?;
    kv.delete(&a).await?;
    let e1 = next(&mut live, "first put").await?;
    ensure!(
        matches!(&e1, WatchEvent::Put(kv) if kv.key == a && kv.value == b"1" && kv.mod_revision == r1 && kv.version == 1),
        "the first event is the first put: {e1:?}"
    );
    let e2 = next(&mut live, "second put").await?;
    ensure!(
        matches!(&e2, WatchEvent::Put(kv) if kv.mod_revision == r2 && kv.version == 2 && kv.create_revision == r1),
        "the key outside the prefix is skipped, the second put follows: {e2:?}"
    );
    let e3 = next(&mut live, "delete").await?;
    ensure!(
        matches!(&e3, WatchEvent::Delete { key, mod_revision } if *key == a && *mod_revision == r2 + 1),
        "the delete follows, at the next revision: {e3:?}"
    );

    // From a past revision: the same changes again, from r2 on.
    let mut replay = kv.watch(&under, Some(r2)).await?;
    let again = next(&mut replay, "replayed put").await?;
    ensure!(
        again == e2,
        "a watch from a revision replays from it: {again:?}"
    );
    let again = next(&mut replay, "replayed delete").await?;
    ensure!(again == e3, "then what followed: {again:?}");
    let r5 = kv.put(&a, b"5".to_vec(), None).await?;
    let then = next(&mut replay, "live after replay").await?;
    ensure!(
        then.revision() == r5,
        "and then live changes: {then:?} (want revision {r5})"
    );
    let then = next(&mut live, "live after replay").await?;
    ensure!(
        then.revision() == r5,
        "the first watch goes on too: {then:?}"
    );
    Ok(())
}

/// Leases: attachment, keep-alive, revoke, expiry.
pub async fn leases(kv: &dyn Kv, p: &str) -> Result<(), Violation> {
    let (held, also, freed) = (format!("{p}held"), format!("{p}held2"), format!("{p}freed"));
    let granted = kv.grant(TTL).await?;
    ensure!(
        granted.ttl == TTL,
        "a grant says the TTL granted: {granted:?}"
    );
    let lease = granted.id;
    kv.put(&held, b"1".to_vec(), Some(lease)).await?;
    kv.put(&also, b"1".to_vec(), Some(lease)).await?;
    kv.put(&freed, b"1".to_vec(), Some(lease)).await?;
    // Put again without a lease: the key leaves the lease.
    kv.put(&freed, b"2".to_vec(), None).await?;
    let got = kv
        .get(&held)
        .await?
        .ok_or(Violation("held missing".into()))?;
    ensure!(got.lease == lease, "a key carries its lease: {got:?}");
    let ttl = kv.keep_alive(lease).await?;
    ensure!(
        ttl == TTL,
        "a keep-alive renews for the TTL granted: {ttl:?}"
    );
    let left = kv.time_to_live(lease).await?;
    ensure!(
        left <= TTL && left + Duration::from_secs(1) >= TTL,
        "a lease just renewed has its TTL left, in whole seconds rounded down: {left:?}"
    );
    let bogus = kv
        .put(&format!("{p}bogus"), b"1".to_vec(), Some(0x0BAD_1EA5E))
        .await;
    ensure!(
        matches!(bogus, Err(KvError::LeaseNotFound(_))),
        "a put naming a missing lease is refused: {bogus:?}"
    );

    let before = kv.range(&RangeQuery::prefix(p)).await?.revision;
    let mut watch = kv.watch(p, Some(before + 1)).await?;
    kv.revoke(lease).await?;
    ensure!(
        kv.get(&held).await?.is_none() && kv.get(&also).await?.is_none(),
        "a revoke deletes the lease's keys"
    );
    ensure!(
        kv.get(&freed).await?.is_some(),
        "a key put again without the lease survives its revoke"
    );
    for k in [&held, &also] {
        let e = next(&mut watch, "revoke").await?;
        ensure!(
            matches!(&e, WatchEvent::Delete { key, mod_revision } if key == k && *mod_revision == before + 1),
            "a revoke deletes every key of the lease at one revision, the next, and a watch \
             sees each: {e:?} (want {k} at {})",
            before + 1
        );
    }
    let again = kv.keep_alive(lease).await;
    ensure!(
        matches!(again, Err(KvError::LeaseNotFound(_))),
        "a revoked lease cannot be kept alive: {again:?}"
    );
    let again = kv.revoke(lease).await;
    ensure!(
        matches!(again, Err(KvError::LeaseNotFound(_))),
        "a revoked lease cannot be revoked again: {again:?}"
    );
    let again = kv.time_to_live(lease).await;
    ensure!(
        matches!(again, Err(KvError::LeaseNotFound(_))),
        "a revoked lease has no time left: {again:?}"
    );

    // Kept alive past its TTL through one stream: the key stays.
    let kept = kv.grant(TTL).await?.id;
    let staying = format!("{p}staying");
    kv.put(&staying, b"1".to_vec(), Some(kept)).await?;
    let mut renewals = kv.keep_alive_stream(kept).await?;
    for _ in 0..3 {
        tokio::time::sleep(TTL / 2).await;
        let ttl = renewals.renew().await?;
        ensure!(ttl == TTL, "each renewal says the TTL: {ttl:?}");
    }
    ensure!(
        kv.get(&staying).await?.is_some(),
        "a lease kept alive outlives its TTL (1.5 TTL here), and so does its key"
    );
    kv.revoke(kept).await?;
    let after = renewals.renew().await;
    ensure!(
        matches!(after, Err(KvError::LeaseNotFound(_))),
        "a keep-alive stream of a revoked lease says it is gone: {after:?}"
    );
    let reopened = kv.keep_alive_stream(kept).await.map(|_| ());
    ensure!(
        matches!(reopened, Err(KvError::LeaseNotFound(_))),
        "a keep-alive stream of a revoked lease cannot be opened: {reopened:?}"
    );
    let e = next(&mut watch, "revoke of the kept lease").await?;
    ensure!(
        matches!(&e, WatchEvent::Put(kv) if kv.key == staying),
        "the kept lease's put: {e:?}"
    );
    let e = next(&mut watch, "revoke of the kept lease").await?;
    ensure!(
        matches!(&e, WatchEvent::Delete { key, .. } if *key == staying),
        "the kept lease's revoke: {e:?}"
    );

    // Not kept alive: its key goes by itself, and a watch sees it go.
    // Taken before the grant: the lease's clock starts no earlier.
    let granted_at = tokio::time::Instant::now();
    let short = kv.grant(TTL).await?.id;
    let expiring = format!("{p}expiring");
    kv.put(&expiring, b"1".to_vec(), Some(short)).await?;
    ensure!(
        kv.get(&expiring).await?.is_some(),
        "a leased key stands while its lease does"
    );
    let e = next(&mut watch, "expiry").await?;
    let waited = granted_at.elapsed();
    ensure!(
        matches!(&e, WatchEvent::Put(kv) if kv.key == expiring),
        "the leased put comes first: {e:?}"
    );
    let e = next(&mut watch, "expiry").await?;
    let waited = granted_at.elapsed().max(waited);
    ensure!(
        matches!(&e, WatchEvent::Delete { key, .. } if *key == expiring),
        "an expired lease deletes its key: {e:?}"
    );
    ensure!(
        waited >= TTL - Duration::from_millis(100),
        "a lease does not expire before its TTL: gone after {waited:?}"
    );
    ensure!(kv.get(&expiring).await?.is_none(), "the key is gone");
    let late = kv.keep_alive(short).await;
    ensure!(
        matches!(late, Err(KvError::LeaseNotFound(_))),
        "an expired lease cannot be kept alive: {late:?}"
    );
    let late = kv.time_to_live(short).await;
    ensure!(
        matches!(late, Err(KvError::LeaseNotFound(_))),
        "an expired lease has no time left: {late:?}"
    );
    Ok(())
}
