//! The deterministic simulator (issue 15): three controllers
//! running their real control loops on the in-memory etcd, three simulated
//! MariaDB servers under the real adapter, the in-memory DNS provider, all
//! on one current-thread runtime with tokio's paused clock. Faults come
//! from a seeded schedule ([`schedule`]); after every change of who is
//! writable or reachable, every weight change, every fault and every probe
//! round, the invariants are checked:
//!
//! - never two writable members that the applications can reach (with
//!   the primary's dead-man switch on; `SIM_DEAD_MAN=off` shows what it
//!   prevents: a primary in a cut-off region whose controller is down);
//! - a database's primary or replication changed only by the controller
//!   that leads at that moment (promotion, repointing and lifting a fence
//!   are the leader's journaled steps; fences are anyone's);
//! - never every weight of a record at zero;
//! - a switchover loses nothing: the member it promotes has every
//!   transaction of the primary it replaces (the applications write on
//!   the seeds with operator requests);
//! - the weights converge: at the end, the DNS provider serves what the
//!   leader's desired weights in etcd say;
//! - a request whose withdrawal `switchyard cancel` confirmed is never
//!   carried out: at the end, no intent in the journal names it (on the
//!   seeds that withdraw requests, [`schedule::withdraws_requests`]);
//! - no step of an intent performed twice: at the end, no intent's step
//!   cursor (journal or history) holds a step again with nothing between
//!   that undid it;
//! - liveness: once every fault has healed, exactly one writable member
//!   within [`LIVENESS`] (nothing excused: a primary that restarted
//!   read-only is made writable again through its switch's evidence, which
//!   `SIM_DEAD_MAN=off` also takes away); a seed ends early once quiet
//!   ([`full_window`]).
//!
//! `SIM_SEEDS=<n>` runs seeds `0..n` (default: [`DEFAULT_SEEDS`] and the
//! seeds the docs cite, [`CITED_SEEDS`]);
//! `SIM_SEED=<s>` replays one seed and prints its trace. A failing seed
//! prints the command that replays it. Every host's clock runs at a rate
//! of its own within the safety argument's bound, ±1 %
//! ([`schedule::rates`]); `SIM_RHO_PPM=<n>` widens or narrows that bound,
//! to see what a bound the argument does not assume breaks.

mod schedule;
mod world;

use std::collections::BTreeSet;
use std::time::Duration;

use schedule::{FAULTS_END, Fault, Kind, schedule};
use switchyard_controller::cli::ops::Switch;
use switchyard_controller::runtime::peers::PING_INTERVAL;
use switchyard_core::step::{Step, blind_repeat};
use world::{PROBE_EVERY, World, member};

/// Seeds run when `SIM_SEEDS` is not set: the whole suite runs this many
/// (about 3 minutes on two cores; docs/BENCHMARKS.md).
const DEFAULT_SEEDS: u64 = 10_000;
/// Seeds docs/SIMULATION.md cites, each the find of a bug since fixed (or
/// of a fix reverted): run with the default seeds too, so CI replays them.
const CITED_SEEDS: [u64; 24] = [
    1, 4, 5, 9, 45, 108, 134, 170, 187, 291, 1245, 1721, 3245, 3633, 4681, 4885, 6085, 7960, 8032,
    9184, 9917, 11053, 24709, 24906,
];
/// How long after the last fault heals the run goes on: by its end the
/// recorded primary, and only it, must have been writable for [`STABLE`].
const LIVENESS: Duration = Duration::from_secs(80);
/// How long the end state must have held.
const STABLE: Duration = Duration::from_secs(10);
/// One seed in this many runs to the end of [`LIVENESS`] even when it is
/// quiet earlier ([`full_window`]).
const FULL_WINDOW_EVERY: u64 = 8;

/// A step some intent performed twice, if any: the journal and the history
/// keep each intent's step cursor, and a resumed run continues from it
/// instead of performing a step again ([`blind_repeat`]: reads, waits and
/// a redo after an undo may recur).
async fn doubled_step(world: &World) -> Option<String> {
    use switchyard_controller::store::kv::{Kv, RangeQuery};
    let r = world.kv.range(&RangeQuery::prefix("")).await.ok()?;
    for kv in r.kvs {
        if !(kv.key.contains("/journal/") || kv.key.contains("/history/")) {
            continue;
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&kv.value) else {
            continue;
        };
        let steps: Vec<Step> = serde_json::from_value(v["steps"].clone()).unwrap_or_default();
        if let Some(s) = blind_repeat(&steps) {
            return Some(format!(
                "{} performed the step {s} again with nothing between that undid it: {}",
                kv.key,
                steps
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    None
}

/// The id of a forced failover that failed and left the primary it was
/// to replace fenced (still the recorded primary, not writable), if any,
/// from the journal (finished intents stay there until compaction). One
/// still pending, or that failed before fencing anything, is not one.
async fn forced_failover_failed(world: &World) -> Option<String> {
    use switchyard_controller::executor::{ActionSpec, JournalEntry, Status};
    use switchyard_controller::store::kv::{Kv, RangeQuery};
    let r = world.kv.range(&RangeQuery::prefix("")).await.ok()?;
    let recorded = world.recorded_primary().await?;
    r.kvs
        .iter()
        .filter(|kv| kv.key.contains("/journal/"))
        .filter_map(|kv| serde_json::from_slice::<JournalEntry>(&kv.value).ok())
        .find(|e| {
            e.status == Status::Failed
                && matches!(
                    &e.action,
                    ActionSpec::Failover { force: true, from_member, .. }
                        if *from_member == recorded
                            && !world.net.writable(&member(from_member.trim_start_matches("m-")))
                )
        })
        .map(|e| e.id)
}

/// Whether seed `seed` runs its whole liveness window: one seed in
/// [`FULL_WINDOW_EVERY`] watches the steady state to the end (a timer that
/// moves something long after the faults healed); the others end once
/// [`quiet`] (which more than halves a seed's cost: docs/SIMULATION.md).
fn full_window(seed: u64) -> bool {
    seed.is_multiple_of(FULL_WINDOW_EVERY)
}

/// A record whose served weights are not what the leader wants, if any
/// (a record whose desired weights etcd lacks is one the leader never
/// changed: it adopts what is served).
async fn weights_off(world: &World) -> Option<String> {
    for (record, served) in world.weights() {
        if let Some(desired) = world.desired_weights(&record).await
            && desired != served
        {
            return Some(format!("{record} served {served:?}, desired {desired:?}"));
        }
    }
    None
}

/// Whether nothing is left to happen: what the DNS provider serves is what
/// the leader wants, and no intent is pending in the journal.
async fn quiet(world: &World) -> bool {
    use switchyard_controller::store::kv::{Kv, RangeQuery};
    if weights_off(world).await.is_some() {
        return false;
    }
    let Ok(r) = world.kv.range(&RangeQuery::prefix("")).await else {
        return false;
    };
    !r.kvs.iter().any(|kv| {
        kv.key.contains("/journal/")
            && serde_json::from_slice::<serde_json::Value>(&kv.value)
                .map_or(true, |v| v["status"] == "pending")
    })
}

/// One line of a run's trace.
fn note(trace: &mut Vec<String>, at: Duration, what: impl std::fmt::Display) {
    trace.push(format!("{:>9.3}s {what}", at.as_secs_f64()));
}

/// What happened when: a fault starting or healing, an operator
/// withdrawing a request.
#[derive(Debug)]
enum Event {
    Start(Fault),
    Heal(Fault, Option<String>),
    /// An armed pause in the middle of a step that no step met in time.
    Disarm,
    /// An armed pause right after sending that no statement met in time.
    DisarmInFlight,
    /// The operator withdraws the request of this id.
    Withdraw(String),
}

/// Runs seed `seed` until it is quiet (see [`full_window`]) or its
/// liveness window ends.
async fn run(seed: u64) -> Outcome {
    let mut trace = Vec::new();
    // The primary starts in any region, so the leader (ctl-a) is in
    // another region for two seeds in three.
    let primary = world::REGIONS[(seed % 3) as usize];
    let mut world = World::start(primary, seed).await;
    note(
        &mut trace,
        Duration::ZERO,
        format!("primary {}", member(primary)),
    );
    let rates = schedule::rates(seed);
    if rates != schedule::Rates::default() {
        note(
            &mut trace,
            Duration::ZERO,
            format!(
                "clock rates (ppm): etcd {}, controllers {:?}, members {:?}",
                rates.etcd, rates.controllers, rates.members
            ),
        );
    }
    let start = tokio::time::Instant::now();
    let mut pending: Vec<(Duration, Event)> = Vec::new();
    for f in schedule(seed) {
        pending.push((f.at, Event::Start(f)));
    }
    let end = FAULTS_END + LIVENESS;
    let mut db_changes = world.net.changes();
    let mut dns_changes = world.dns.changes();
    let mut next_probe = Duration::ZERO;
    let mut next_ping = Duration::ZERO;
    let mut breach = None;
    // Operator requests written so far.
    let mut requests = 0;
    // Since when exactly the recorded primary is writable (and nothing
    // else), once every fault has healed.
    let mut settled: Option<Duration> = None;
    // Old primaries a forced failover replaced, as last noted.
    let mut excused_seen = BTreeSet::new();
    while breach.is_none() {
        let now = start.elapsed();
        if now >= end {
            break;
        }
        let probed = now >= next_probe;
        if probed {
            world.probe_round();
            next_probe = now + PROBE_EVERY;
        }
        if world.pings_lost() && now >= next_ping {
            world.ping_round();
            next_ping = now + PING_INTERVAL;
        }
        // A lagging controller's view catching up.
        world.publish_peers();
        pending.sort_by_key(|(at, _)| *at);
        while pending.first().is_some_and(|(at, _)| *at <= now) {
            let (_, event) = pending.remove(0);
            match event {
                Event::Start(f) => {
                    if let Some(id) = operator_begins(&mut world, &f.kind).await {
                        if let Some(after) = schedule::withdrawal(seed, requests) {
                            pending.push((now + after, Event::Withdraw(id)));
                        }
                        requests += 1;
                    }
                    let crashed = begin(&mut world, &f);
                    note(
                        &mut trace,
                        now,
                        format!(
                            "start {:?} (for {:?}){}",
                            f.kind,
                            f.lasts,
                            crashed
                                .as_ref()
                                .map(|m| format!(": {m}"))
                                .unwrap_or_default()
                        ),
                    );
                    if f.kind == Kind::PauseMidStep {
                        pending.push((FAULTS_END.saturating_sub(f.lasts), Event::Disarm));
                    } else if let Kind::PauseInFlight(_) = f.kind {
                        let end = FAULTS_END.saturating_sub(f.lasts);
                        pending.push((end, Event::DisarmInFlight));
                    } else {
                        pending.push((f.at + f.lasts, Event::Heal(f, crashed)));
                    }
                }
                Event::Disarm => world.arm_mid_step(None),
                Event::DisarmInFlight => world.arm_in_flight(None),
                Event::Withdraw(id) => world.withdraw(&id).await,
                Event::Heal(f, crashed) => {
                    heal(&mut world, &f, crashed.as_deref());
                    if let Some(which) = switch_off(&f.kind) {
                        world.operator_switch(which, false).await;
                    }
                    note(&mut trace, now, format!("heal {:?}", f.kind));
                }
            }
        }
        for line in world.take_notes() {
            note(&mut trace, now, line);
        }
        for p in world.take_mid_step_pauses() {
            let region = world::REGIONS
                .into_iter()
                .find(|r| world::controller(r) == p.controller)
                .expect("a controller of the simulation");
            world.set_paused(region, true);
            note(
                &mut trace,
                p.at,
                format!(
                    "pause {} after {} (for {:?})",
                    p.controller, p.after, p.lasts
                ),
            );
            let healed = Fault {
                at: p.at,
                lasts: p.lasts,
                kind: Kind::PauseController(region),
            };
            pending.push((p.at + p.lasts, Event::Heal(healed, None)));
        }
        if let Some(at) = std::env::var("SIM_DUMP_AT")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            && now.as_secs_f64() >= at
            && now.as_secs_f64() < at + PROBE_EVERY.as_secs_f64()
        {
            use switchyard_controller::store::kv::{Kv, RangeQuery};
            if let Ok(r) = world.kv.range(&RangeQuery::prefix("")).await {
                for kv in r.kvs {
                    note(
                        &mut trace,
                        now,
                        format!(
                            "etcd {} = {} (lease {:?})",
                            kv.key,
                            String::from_utf8_lossy(&kv.value),
                            kv.lease
                        ),
                    );
                }
            }
        }
        let excused = world.excused().await;
        for m in excused.difference(&excused_seen) {
            note(
                &mut trace,
                now,
                format!("{m} replaced by a forced failover: its writes excused"),
            );
        }
        excused_seen.clone_from(&excused);
        let writable: BTreeSet<String> = world
            .writable_by_clients()
            .into_iter()
            .filter(|m| !excused.contains(m))
            .collect();
        if writable.len() > 1 {
            breach = Some(format!(
                "two writable members reachable by clients: {writable:?}"
            ));
        }
        if let Some((to, from, missing)) = world.switchover_losses().first() {
            breach = Some(format!(
                "a switchover promoted {to} without {} transaction(s) of {from}: {missing:?}",
                missing.len()
            ));
        }
        if let Some(first) = world.deposed_steps().first() {
            breach = Some(format!("a step taken by a controller not leading: {first}"));
        }
        for (record, weights) in world.weights() {
            if !weights.is_empty() && weights.values().all(|w| *w == 0) {
                breach = Some(format!("every weight of {record} at zero: {weights:?}"));
            }
        }
        if now >= FAULTS_END && pending.is_empty() {
            let good = writable.len() == 1 && {
                let recorded = world.recorded_primary().await;
                recorded.is_some_and(|m| writable.contains(&member(m.trim_start_matches("m-"))))
            };
            match (good, settled) {
                (true, None) => {
                    settled = Some(now);
                    note(&mut trace, now, format!("settled: {writable:?} writable"));
                }
                (false, Some(_)) => {
                    settled = None;
                    note(&mut trace, now, format!("unsettled: {writable:?} writable"));
                }
                _ => {}
            }
        }
        // Settled, converged and quiet: the rest of the window would only
        // watch a steady state, which the full-window seeds watch.
        if probed
            && !full_window(seed)
            && settled.is_some_and(|since| now.saturating_sub(since) >= STABLE)
            && quiet(&world).await
        {
            note(
                &mut trace,
                now,
                "quiet: settled, converged, no intent pending",
            );
            break;
        }
        // Until the next change, fault, probe round, ping round (while
        // pings are lost) or lagging view.
        let next = pending
            .iter()
            .map(|(at, _)| *at)
            .chain([next_probe, end])
            .chain(world.pings_lost().then_some(next_ping.max(now)))
            .chain(
                world
                    .peers_due()
                    .map(|t| t.saturating_duration_since(start)),
            )
            .min()
            .unwrap_or(end);
        tokio::select! {
            _ = db_changes.changed() => {}
            _ = dns_changes.changed() => {}
            _ = tokio::time::sleep_until(start + next) => {}
        }
    }
    let now = start.elapsed();
    let stable = settled.is_some_and(|since| now.saturating_sub(since) >= STABLE);
    let failed_forcing = if breach.is_none() && !stable {
        forced_failover_failed(&world).await
    } else {
        None
    };
    if let Some(id) = &failed_forcing {
        // The operator forced a failover (against the runbook, perhaps,
        // at a random moment) and it failed: whatever it left — its old
        // primary fenced with nobody promoted — is theirs to resolve.
        note(
            &mut trace,
            now,
            format!("liveness not checked: the forced failover {id} failed"),
        );
    } else if breach.is_none() && !stable {
        let recorded = world.recorded_primary().await;
        breach = Some(format!(
            "liveness: {:?} after every fault healed, writable: {:?} (since {settled:?}), recorded \
             primary {recorded:?}",
            now.saturating_sub(FAULTS_END),
            world.writable_by_clients()
        ));
    }
    if breach.is_none() {
        // The weights converge: what the DNS provider serves is what the
        // leader wants, once every fault has long healed.
        if let Some(off) = weights_off(&world).await {
            breach = Some(format!(
                "weights: {off}, {:?} after every fault healed",
                now.saturating_sub(FAULTS_END)
            ));
        }
    }
    if breach.is_none() {
        breach = doubled_step(&world).await;
    }
    if breach.is_none() {
        breach = world.withdrawn_carried_out().await;
    }
    if let Some(b) = &breach {
        note(&mut trace, now, format!("BREACH {b}"));
    }
    world.stop().await;
    Outcome {
        trace,
        breach,
        unchecked_liveness: failed_forcing.is_some(),
    }
}

/// How one seed ended.
struct Outcome {
    /// What happened, one line per event.
    trace: Vec<String>,
    /// The first invariant broken.
    breach: Option<String>,
    /// Liveness was not checked: a forced failover failed.
    unchecked_liveness: bool,
}

/// What an operator does when `kind` starts, if it is an operator's act:
/// a request to the leader (its id returned), or a switch (these are
/// async, so the run does them, not [`begin`]).
async fn operator_begins(world: &mut World, kind: &Kind) -> Option<String> {
    match *kind {
        Kind::Switchover(to) => return Some(world.request_switchover(to).await),
        Kind::ManualFailover(to) => return Some(world.request_failover(to, false).await),
        Kind::ForcedFailover(to) => return Some(world.request_failover(to, true).await),
        Kind::Drain(r) => world.operator_switch(Switch::Drain(r.into()), true).await,
        Kind::PauseAutomation => world.operator_switch(Switch::Pause, true).await,
        Kind::ApproveFailback(r) => {
            world
                .operator_switch(Switch::Failback(r.into()), true)
                .await
        }
        _ => {}
    }
    None
}

/// The operator's switch that undoes `kind` when it heals, if any.
fn switch_off(kind: &Kind) -> Option<Switch> {
    match *kind {
        Kind::Drain(r) => Some(Switch::Undrain(r.to_string())),
        Kind::PauseAutomation => Some(Switch::Resume),
        _ => None,
    }
}

/// Starts `f`; for a crash, the member it crashed.
fn begin(world: &mut World, f: &Fault) -> Option<String> {
    match f.kind {
        Kind::CrashPrimary => {
            let victim = world::REGIONS
                .iter()
                .map(|r| member(r))
                .find(|m| world.net.writable(m))?;
            world.net.crash(&victim);
            return Some(victim);
        }
        Kind::PauseMidStep => world.arm_mid_step(Some(f.lasts)),
        Kind::PauseInFlight(late) => world.arm_in_flight(Some((f.lasts, late))),
        Kind::DnsEdit(r, w) => world.edit_weight(r, w),
        _ => switch(world, &f.kind, true),
    }
    None
}

/// Heals `f` (restarts what it crashed).
fn heal(world: &mut World, f: &Fault, crashed: Option<&str>) {
    match (&f.kind, crashed) {
        (Kind::CrashPrimary, Some(m)) => world.net.restart(m),
        (kind, _) => switch(world, kind, false),
    }
}

/// Turns a fault that lasts on (`on`) or off. The one-off faults (a
/// crashed primary, a hand edit, the armed pauses, which disarm
/// themselves) and the operator's switches and requests (applied by the
/// run, as they are async) have nothing to turn.
fn switch(world: &mut World, kind: &Kind, on: bool) {
    let others = |r: &'static str| world::REGIONS.into_iter().filter(move |o| *o != r);
    match *kind {
        Kind::Cut(a, b) => world.set_cut(a, b, on),
        Kind::Isolate(r) => others(r).for_each(|o| world.set_cut(r, o, on)),
        Kind::EtcdCut(r) => world.set_etcd_cut(r, on),
        Kind::Sever(r) => {
            others(r).for_each(|o| world.set_cut(r, o, on));
            world.set_etcd_cut(r, on);
        }
        Kind::ServiceDown(r) => world.set_service_down(r, on),
        Kind::CrashController(r) => world.set_controller_down(r, on),
        Kind::PauseController(r) => world.set_paused(r, on),
        Kind::EtcdDown => world::REGIONS
            .into_iter()
            .for_each(|r| world.set_etcd_cut(r, on)),
        Kind::SlowSql(r, d) => world.set_slow_sql(r, d, on),
        Kind::ProbeLoss(r, p) => world.set_probe_loss(r, p, on),
        Kind::ProbeDelay(r, d) => world.set_probe_delay(r, d, on),
        Kind::PeerLag(r, d) => world.set_peer_lag(r, d, on),
        Kind::PeerLoss(r, p) => world.set_peer_loss(r, p, on),
        Kind::DnsOutage => world.set_dns_outage(on),
        Kind::Lag(r, d) => world.set_lag(r, d, on),
        Kind::ClockDrift(r, ppm) => world.set_clock_drift(r, ppm, on),
        Kind::CrashPrimary
        | Kind::PauseMidStep
        | Kind::PauseInFlight(_)
        | Kind::DnsEdit(..)
        | Kind::Switchover(_)
        | Kind::Drain(_)
        | Kind::PauseAutomation
        | Kind::ApproveFailback(_)
        | Kind::ManualFailover(_)
        | Kind::ForcedFailover(_) => {}
    }
}

/// Log lines stamped with the simulation's time (seconds since the
/// runtime started), so a trace and the controllers' logs line up.
struct SimTime;

static STARTED: std::sync::Mutex<Option<tokio::time::Instant>> = std::sync::Mutex::new(None);

impl tracing_subscriber::fmt::time::FormatTime for SimTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        let started = *STARTED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match (started, tokio::runtime::Handle::try_current()) {
            (Some(s), Ok(_)) => write!(w, "{:>9.3}s", s.elapsed().as_secs_f64()),
            _ => write!(w, "        -"),
        }
    }
}

/// How long one seed may run in real time before the run is stopped as
/// stuck: seeds take milliseconds to a few seconds.
const STUCK_AFTER: Duration = Duration::from_secs(60);

/// Counts a worker as finished however it ends (a panic included), so the
/// watchdog stops.
struct Finished<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// One seed on a runtime of its own, with the paused clock.
fn run_seed(seed: u64) -> Outcome {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime")
        .block_on(async {
            *STARTED
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(tokio::time::Instant::now());
            run(seed).await
        })
}

/// `SIM_RHO_PPM=<n> ` when the clock rates' bound was set for the run, so
/// a replay draws the same rates.
fn rho_prefix() -> String {
    std::env::var("SIM_RHO_PPM")
        .map(|v| format!("SIM_RHO_PPM={v} "))
        .unwrap_or_default()
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn the_invariants_hold_on_every_seed() {
    if let Some(seed) = env_u64("SIM_SEED") {
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_timer(SimTime)
                .with_test_writer()
                .try_init();
        }
        let o = run_seed(seed);
        println!("seed {seed}:\n{}", o.trace.join("\n"));
        assert!(o.breach.is_none(), "seed {seed}: {:?}", o.breach);
        return;
    }
    let seeds = env_u64("SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
    if std::env::var_os("SIM_LIST").is_some() {
        for seed in 0..seeds {
            println!("seed {seed}: {:?}", schedule(seed));
        }
        return;
    }
    let first = env_u64("SIM_FIRST_SEED").unwrap_or(0);
    let mut list: Vec<u64> = (first..first + seeds).collect();
    if std::env::var_os("SIM_SEEDS").is_none() {
        let cited: Vec<u64> = CITED_SEEDS
            .into_iter()
            .filter(|s| !list.contains(s))
            .collect();
        list.extend(cited);
    }
    let began = std::time::Instant::now();
    // Seeds on every core: each worker takes the next seed and runs it on
    // a runtime of its own; the first breach stops them all.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed: std::sync::Mutex<Option<(u64, String)>> = std::sync::Mutex::new(None);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Each worker's seed and when it began, for the watchdog.
    let running: std::sync::Mutex<Vec<Option<(u64, std::time::Instant)>>> =
        std::sync::Mutex::new(vec![None; workers]);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let unchecked = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        // A seed whose simulated clock stopped (a task that never yields
        // keeps the paused clock from moving) would run until the suite's
        // timeout ends the test with no word of which seed: name it and
        // stop the run instead. Its thread cannot be unwound, so the
        // process exits.
        scope.spawn(|| {
            while done.load(std::sync::atomic::Ordering::SeqCst) < workers {
                std::thread::sleep(Duration::from_millis(200));
                let stuck = running
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .iter()
                    .flatten()
                    .find(|(_, since)| since.elapsed() >= STUCK_AFTER)
                    .map(|(seed, _)| *seed);
                if let Some(seed) = stuck {
                    eprintln!(
                        "seed {seed} has run for {STUCK_AFTER:?} of real time: its simulated \
                         clock is stuck (a task that never yields)\nreplay: {}SIM_SEED={seed} \
                         cargo nextest run -p switchyard --test sim --no-capture",
                        rho_prefix()
                    );
                    std::process::exit(101);
                }
            }
        });
        for w in 0..workers {
            let running = &running;
            let done = &done;
            let next = &next;
            let failed = &failed;
            let list = &list;
            let unchecked = &unchecked;
            scope.spawn(move || {
                let _finished = Finished(done);
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let stop = failed
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .is_some();
                    let Some(&seed) = list.get(i) else { return };
                    if stop {
                        return;
                    }
                    running
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)[w] =
                        Some((seed, std::time::Instant::now()));
                    let o = run_seed(seed);
                    running
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)[w] = None;
                    if o.unchecked_liveness {
                        unchecked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    if let Some(b) = o.breach {
                        let mut f = failed
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        if f.as_ref().is_none_or(|(s, _)| seed < *s) {
                            *f = Some((seed, format!("{b}\n{}", o.trace.join("\n"))));
                        }
                    }
                }
            });
        }
    });
    if let Some((seed, what)) = failed
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        panic!(
            "seed {seed} broke an invariant: {what}\nreplay: {}SIM_SEED={seed} cargo nextest run \
             -p switchyard --test sim --no-capture",
            rho_prefix()
        );
    }
    println!(
        "{} seeds in {:.1}s on {workers} threads: every invariant held ({} where a forced \
         failover failed, whose liveness is the operator's)",
        list.len(),
        began.elapsed().as_secs_f64(),
        unchecked.into_inner()
    );
}
