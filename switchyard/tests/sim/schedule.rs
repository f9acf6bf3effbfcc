//! A seeded fault schedule: which faults, where, when and for how long.
//! The same seed gives the same schedule on every machine (the generator
//! is `StdRng` of the locked `rand`), so a failing seed is replayed with
//! `SIM_SEED=<seed>`.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::world::REGIONS;

/// The seeds docs/SIMULATION.md cited when host clocks, operator switches
/// and manual failovers joined the schedule: those classes leave them
/// alone, so each still replays its finding as found. Frozen: a seed
/// cited later keeps the faults it was found with.
const CITED_BEFORE_CLOCKS: [u64; 15] = [
    1, 4, 5, 9, 108, 134, 170, 187, 291, 1721, 3633, 4681, 4885, 7960, 8032,
];

/// The seeds docs/SIMULATION.md cited before withdrawals of requests and
/// the aim at a new leader's quiet period existed: neither class comes on
/// them, so each replays its finding as found. Frozen: a seed cited later
/// was found with these classes and keeps them.
const CITED_BEFORE_WITHDRAWALS: [u64; 16] = [
    1, 4, 5, 9, 108, 134, 170, 187, 291, 1721, 3245, 3633, 4681, 4885, 7960, 8032,
];

/// One fault, started at `at` and healed `lasts` later (a crash is
/// healed by a restart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// When it starts, from the simulation's start.
    pub at: Duration,
    /// How long until it heals.
    pub lasts: Duration,
    /// What it is.
    pub kind: Kind,
}

/// The faults the simulator injects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// The member that is writable at `at` crashes (restarted when the
    /// fault heals).
    CrashPrimary,
    /// Two regions lose each other: controllers, probes, applications,
    /// members.
    Cut(&'static str, &'static str),
    /// A region loses both others.
    Isolate(&'static str),
    /// A region's controller loses etcd.
    EtcdCut(&'static str),
    /// A region loses both others and etcd: a region outage as the rest
    /// sees it, with everything inside still running.
    Sever(&'static str),
    /// A region's service endpoint fails its checks.
    ServiceDown(&'static str),
    /// A region's controller process dies (no resignation: its leases
    /// run out) and starts again, with its state directory, when the
    /// fault heals.
    CrashController(&'static str),
    /// A region's controller process stops (`SIGSTOP`: none of its tasks
    /// runs, its timers do not fire, its leases run out) and goes on where
    /// it stood when the fault heals.
    PauseController(&'static str),
    /// Whichever controller next sends a leader's statement (a promotion,
    /// a repointing, a lift) at or after `at` stops right after the server
    /// ran it, for `lasts`: a leader paused in the middle of a step. Not
    /// armed past [`FAULTS_END`]` - lasts`.
    PauseMidStep,
    /// Whichever controller next sends a leader's statement at or after
    /// `at` stops right after sending it, for `lasts`, and the statement
    /// reaches its server this late (a packet held in the network): the
    /// two things a client-side timeout cannot bound (docs/SAFETY.md),
    /// which the quiet period a new leader keeps is for. `lasts` is longer
    /// than the hold, so the sender's session cannot close before it
    /// lands. Not armed past [`FAULTS_END`]` - lasts`.
    PauseInFlight(Duration),
    /// Every controller loses etcd: an outage of the whole cluster.
    EtcdDown,
    /// A region's member answers every statement this late.
    SlowSql(&'static str, Duration),
    /// A region's probe reports are lost on their way to each controller,
    /// each with this chance in a hundred.
    ProbeLoss(&'static str, u32),
    /// A region's probe reports reach the controllers this late.
    ProbeDelay(&'static str, Duration),
    /// A region's controller sees its peers this late: their pings'
    /// answers are delayed (within the ping timeout, plus the one miss
    /// its ping loop forgives: at most [`super::world::PEER_LAG_MAX`]).
    PeerLag(&'static str, Duration),
    /// Each of a region's controller's pings is lost with this chance in
    /// a hundred: a peer whose last two were lost drops out of its view
    /// until one is answered.
    PeerLoss(&'static str, u32),
    /// The DNS provider fails every call.
    DnsOutage,
    /// Somebody sets a region's weight by hand at the provider (never to
    /// zero): drift the leader must find and undo.
    DnsEdit(&'static str, u32),
    /// An operator asks for a switchover to a region's member (`switchyard
    /// switchover`), naming the primary recorded at that moment.
    Switchover(&'static str),
    /// A region's member applies what it receives this late (replication
    /// lag).
    Lag(&'static str, Duration),
    /// A region's host clock (its controller's and its probe's wall
    /// time) gains (or, negative, loses) this many microseconds a second,
    /// and is stepped back to true time when the fault heals.
    ClockDrift(&'static str, i64),
    /// An operator drains a region (`switchyard drain`) and undrains it
    /// when the fault heals.
    Drain(&'static str),
    /// An operator pauses automation (`switchyard pause`) and resumes it
    /// when the fault heals.
    PauseAutomation,
    /// An operator approves a region's failback (`switchyard failback`).
    ApproveFailback(&'static str),
    /// An operator asks for a failover of the database, not forced, to a
    /// region's member or (`None`) to the member candidate selection
    /// picks (`switchyard failover [--to]`), naming the primary recorded
    /// at that moment.
    ManualFailover(Option<&'static str>),
    /// An operator forces a failover (`switchyard failover --force
    /// [--to]`) to a region's member or to the one candidate selection
    /// picks, naming the primary recorded at that moment. The gate's
    /// evidence is skipped on the operator's word: an old primary the
    /// leader could not fence and that stays writable beside its
    /// replacement is the operator's choice, excused by the checks
    /// (docs/SIMULATION.md).
    ForcedFailover(Option<&'static str>),
}

/// When every fault has healed, at the latest.
pub const FAULTS_END: Duration = Duration::from_secs(45);

/// A fault's start, 5 s to 40 s in, and how long it lasts, 0.5 s to
/// what is left until [`FAULTS_END`] (drawn in that order).
fn window(rng: &mut StdRng) -> (Duration, Duration) {
    let at = Duration::from_millis(rng.random_range(5_000..40_000));
    let most = FAULTS_END.saturating_sub(at).as_millis() as u64;
    let lasts = Duration::from_millis(rng.random_range(500..=most.max(501)));
    (at, lasts)
}

/// One or two faults from `draw`, on a stream of their own (`seed ^
/// salt`), for a seed of a class (`member`); none otherwise.
fn one_or_two(
    seed: u64,
    member: bool,
    salt: u64,
    mut draw: impl FnMut(&mut StdRng) -> Vec<Fault>,
) -> Vec<Fault> {
    if !member {
        return Vec::new();
    }
    let mut rng = StdRng::seed_from_u64(seed ^ salt);
    (0..rng.random_range(1..=2))
        .flat_map(|_| draw(&mut rng))
        .collect()
}

/// The schedule of `seed`: one to four faults in the first 40 s, and one
/// or two of the class its residue mod 4 picks (crashes, pauses, slow or
/// failing parts, operator requests), each healed by [`FAULTS_END`].
pub fn schedule(seed: u64) -> Vec<Fault> {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = rng.random_range(1..=4);
    let mut faults: Vec<Fault> = (0..n)
        .map(|_| {
            let (at, lasts) = window(&mut rng);
            let region = |rng: &mut StdRng| REGIONS[rng.random_range(0..REGIONS.len())];
            let kind = match rng.random_range(0..6) {
                0 => Kind::CrashPrimary,
                1 => {
                    let a = region(&mut rng);
                    let b = loop {
                        let b = region(&mut rng);
                        if b != a {
                            break b;
                        }
                    };
                    Kind::Cut(a, b)
                }
                2 => Kind::Isolate(region(&mut rng)),
                3 => Kind::EtcdCut(region(&mut rng)),
                4 => Kind::Sever(region(&mut rng)),
                _ => Kind::ServiceDown(region(&mut rng)),
            };
            Fault { at, lasts, kind }
        })
        .collect();
    faults.extend(controller_crashes(seed));
    faults.extend(controller_pauses(seed));
    faults.extend(slow_parts(seed));
    faults.extend(operator_requests(seed));
    faults.extend(operator_switches(seed));
    faults.extend(clock_drifts(seed));
    faults.extend(takeover_aims(seed));
    faults.extend(forced_failovers(seed));
    faults.extend(peer_links(seed));
    faults.sort_by_key(|f| f.at);
    faults
}

/// Seeds that also crash controllers: one in four. The crashes come from
/// a random stream of their own, so the other faults of every seed — and
/// the seeds docs/SIMULATION.md cites — are what they were before this
/// fault existed.
pub fn crashes_controllers(seed: u64) -> bool {
    seed % 4 == 3
}

/// One or two controller crashes for such a seed, each restarted within
/// [`FAULTS_END`].
fn controller_crashes(seed: u64) -> Vec<Fault> {
    one_or_two(
        seed,
        crashes_controllers(seed),
        0xC0_11_C7_A5_4E_D0_0D,
        |rng| {
            let (at, lasts) = window(rng);
            let region = REGIONS[rng.random_range(0..REGIONS.len())];
            vec![Fault {
                at,
                lasts,
                kind: Kind::CrashController(region),
            }]
        },
    )
}

/// Seeds that also pause controllers: one in four, from a stream of their
/// own (as [`crashes_controllers`]); none of the seeds docs/SIMULATION.md
/// cites from before pauses existed is among them.
pub fn pauses_controllers(seed: u64) -> bool {
    seed % 4 == 2
}

/// One or two pauses for such a seed, from half a second to past the
/// election lease, the quiet period and the primary lease (3 s, 4.5 s and
/// 6 s here), each a scheduled pause of one controller or a pause in the
/// middle of a leader's step.
fn controller_pauses(seed: u64) -> Vec<Fault> {
    one_or_two(
        seed,
        pauses_controllers(seed),
        0x051C_570B_ED0F_F1CE,
        |rng| {
            let lasts = Duration::from_millis(rng.random_range(500..=15_000));
            let latest = FAULTS_END.saturating_sub(lasts).as_millis() as u64;
            let at = Duration::from_millis(rng.random_range(5_000..latest.max(5_001)));
            let kind = if rng.random_bool(0.5) {
                Kind::PauseMidStep
            } else {
                Kind::PauseController(REGIONS[rng.random_range(0..REGIONS.len())])
            };
            vec![Fault { at, lasts, kind }]
        },
    )
}

/// Seeds that also get an etcd outage, slow SQL, lost and late probe
/// reports, a DNS provider outage or a weight edited by hand: one in
/// four (`seed % 4 == 0`), from a stream of their own, but for the two such seeds docs/SIMULATION.md cited before these
/// faults existed (4 and 7960), which keep their schedules.
pub fn slows_parts(seed: u64) -> bool {
    seed.is_multiple_of(4) && ![4, 7960].contains(&seed)
}

/// One or two such faults, each healed by [`FAULTS_END`].
fn slow_parts(seed: u64) -> Vec<Fault> {
    one_or_two(seed, slows_parts(seed), 0x0510_3D0A_7E57_0B1E, |rng| {
        let (at, lasts) = window(rng);
        let region = REGIONS[rng.random_range(0..REGIONS.len())];
        let kind = match rng.random_range(0..6) {
            0 => Kind::EtcdDown,
            4 => Kind::DnsOutage,
            5 => Kind::DnsEdit(region, rng.random_range(1..=200)),
            1 => Kind::SlowSql(region, Duration::from_millis(rng.random_range(20..=3_000))),
            2 => Kind::ProbeLoss(region, rng.random_range(10..=100)),
            _ => Kind::ProbeDelay(
                region,
                Duration::from_millis(rng.random_range(100..=10_000)),
            ),
        };
        vec![Fault { at, lasts, kind }]
    })
}

/// Seeds with operator requests (and the applications writing, so a
/// switchover has something to lose): one in four (`seed % 4 == 1`), from
/// a stream of their own, but for the four such seeds docs/SIMULATION.md
/// cited before requests existed (1, 5, 1721, 4885).
pub fn requests_switchovers(seed: u64) -> bool {
    seed % 4 == 1 && ![1, 5, 1721, 4885].contains(&seed)
}

/// Seeds aimed at a new leader's quiet period: the other half of those
/// with requests (`seed % 8 == 5`), but for the seeds the docs cited
/// before this class existed.
pub fn aims_at_takeover(seed: u64) -> bool {
    requests_switchovers(seed) && seed % 8 == 5 && !CITED_BEFORE_WITHDRAWALS.contains(&seed)
}

/// For such a seed, around its first switchover (from a stream of its
/// own): the target lags 0.5–2.5 s from a second before it, which
/// stretches the switchover's two catch-ups; within them one member (the
/// target, or a region's drawn at random) stalls for 50 ms–2 s, and every
/// statement sent to it meanwhile lands 2–5 s late; and region a (the
/// leader's, unless faults moved it) is cut from etcd around the stall,
/// for 4–10 s. A deposed leader's statement is then in flight, and lands
/// after its lease ended, past what its step guard allowed for; the quiet
/// period a new leader keeps must outwait it. Seed 6085 keeps the shape
/// it was found with ([`takeover_aims_as_first_drawn`]).
fn takeover_aims(seed: u64) -> Vec<Fault> {
    if !aims_at_takeover(seed) {
        return Vec::new();
    }
    let Some((at, to)) = first_switchover(seed) else {
        return Vec::new();
    };
    if seed == 6085 {
        return takeover_aims_as_first_drawn(seed, at, to);
    }
    let ms = Duration::from_millis;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x57A1_1ED0_5E4D_7E2D);
    let lag = rng.random_range(500..=2_500);
    let stalled = if rng.random_bool(0.5) {
        to
    } else {
        REGIONS[rng.random_range(0..REGIONS.len())]
    };
    let stall_at = at + ms(rng.random_range(0..=2 * lag));
    // Healed by FAULTS_END, like every fault.
    let stall_for = ms(rng.random_range(50..=2_000)).min(FAULTS_END.saturating_sub(stall_at));
    let late = ms(rng.random_range(2_000..=5_000));
    let cut_at = (stall_at + ms(rng.random_range(0..=2_500))).saturating_sub(ms(1_500));
    // Healed by FAULTS_END, like every fault.
    let cut_for =
        ms(rng.random_range(4_000..=10_000)).min(FAULTS_END.saturating_sub(cut_at + ms(500)));
    let from = at.saturating_sub(ms(1_000));
    let mut faults = in_flight(seed, at, lag);
    faults.extend([
        Fault {
            at: from,
            lasts: (cut_at + cut_for).saturating_sub(from).max(ms(500)),
            kind: Kind::Lag(to, ms(lag)),
        },
        Fault {
            at: stall_at,
            lasts: stall_for,
            kind: Kind::SlowSql(stalled, late),
        },
        Fault {
            at: cut_at,
            lasts: cut_for,
            kind: Kind::EtcdCut("a"),
        },
    ]);
    faults
}

/// For a seed aimed at the quiet period, from a stream of its own: the
/// leader pauses right after sending one of the switchover's statements
/// (the first at or after 0–`2·lag + 500` ms past the request), for 4–10
/// s, past its lease, and that statement lands 2–5 s late — later than
/// its step guard allowed for, which only the new leader's quiet period
/// outwaits. Not for the seeds cited before it existed.
fn in_flight(seed: u64, at: Duration, lag: u64) -> Vec<Fault> {
    if CITED_BEFORE_IN_FLIGHT.contains(&seed) {
        return Vec::new();
    }
    let ms = Duration::from_millis;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x1F11_6470_5EAD_0A7E);
    let armed = at + ms(rng.random_range(0..=2 * lag + 500));
    let late = rng.random_range(2_000..=5_000);
    let lasts = ms(rng.random_range((late + 500).max(4_000)..=10_000));
    // Over by FAULTS_END, like every fault, and longer than the hold.
    let lasts = lasts.min(FAULTS_END.saturating_sub(armed));
    if lasts < ms(late + 500) {
        return Vec::new();
    }
    vec![Fault {
        at: armed,
        lasts,
        kind: Kind::PauseInFlight(ms(late)),
    }]
}

/// Seeds of the class aimed at the quiet period that docs/SIMULATION.md
/// cited before the pause in flight existed: each keeps the schedule it
/// was found with.
pub const CITED_BEFORE_IN_FLIGHT: [u64; 0] = [];

/// When and to which region a seed's first switchover is asked for.
fn first_switchover(seed: u64) -> Option<(Duration, &'static str)> {
    operator_requests(seed)
        .into_iter()
        .filter_map(|f| match f.kind {
            Kind::Switchover(to) => Some((f.at, to)),
            _ => None,
        })
        .min_by_key(|(at, _)| *at)
}

/// The class's first shape: the target's server answers 1–5 s late from
/// a second before the switchover until after the cut, and region a is
/// cut from etcd up to 3 s after it, for 4–10 s. Its slowness outlasts
/// the takeover, so a new leader's statements land as late as the old
/// one's; it found seed 6085's spin.
fn takeover_aims_as_first_drawn(seed: u64, at: Duration, to: &'static str) -> Vec<Fault> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9E7A_0A7E_0F1E_ADE5);
    let slow = Duration::from_millis(rng.random_range(1_000..=5_000));
    let cut_at = at + Duration::from_millis(rng.random_range(0..3_000));
    let cut_for = Duration::from_millis(rng.random_range(4_000..=10_000))
        .min(FAULTS_END.saturating_sub(cut_at + Duration::from_millis(500)));
    let from = at.saturating_sub(Duration::from_secs(1));
    vec![
        Fault {
            at: from,
            lasts: (cut_at + cut_for + Duration::from_millis(500)).saturating_sub(from),
            kind: Kind::SlowSql(to, slow),
        },
        Fault {
            at: cut_at,
            lasts: cut_for,
            kind: Kind::EtcdCut("a"),
        },
    ]
}

/// Seeds whose operator withdraws requests: half of those with requests
/// (`seed % 8 == 1`), but for the seeds the docs cited before
/// withdrawals existed (each replays its finding as found).
pub fn withdraws_requests(seed: u64) -> bool {
    requests_switchovers(seed) && seed % 8 == 1 && !CITED_BEFORE_WITHDRAWALS.contains(&seed)
}

/// When the operator withdraws the `n`-th request of `seed` (`switchyard
/// cancel`), after writing it: within half a second (the leader looks at
/// requests every 250 ms tick, so about half are withdrawn before it
/// starts them, the rest race it or find them done), for two requests in
/// three of such a seed, from a stream of its own; `None`: it stands.
pub fn withdrawal(seed: u64, n: u64) -> Option<Duration> {
    if !withdraws_requests(seed) {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0xCA9C_E11E_D0FF_0000 ^ n);
    rng.random_bool(2.0 / 3.0)
        .then(|| Duration::from_millis(rng.random_range(0..500)))
}

/// One or two switchovers, each to a member that lags (half the time)
/// from a little before it.
fn operator_requests(seed: u64) -> Vec<Fault> {
    one_or_two(
        seed,
        requests_switchovers(seed),
        0x0BE5_A7E5_5A1E_C0DE,
        |rng| {
            let at = Duration::from_millis(rng.random_range(5_000..40_000));
            let to = REGIONS[rng.random_range(0..REGIONS.len())];
            let mut faults = vec![Fault {
                at,
                lasts: Duration::from_millis(1),
                kind: Kind::Switchover(to),
            }];
            if rng.random_bool(0.5) {
                let from = at.saturating_sub(Duration::from_millis(rng.random_range(0..3_000)));
                let most = FAULTS_END.saturating_sub(from).as_millis() as u64;
                faults.push(Fault {
                    at: from,
                    lasts: Duration::from_millis(rng.random_range(500..=most.max(501))),
                    kind: Kind::Lag(to, Duration::from_millis(rng.random_range(100..=5_000))),
                });
            }
            faults
        },
    )
}

/// Seeds with operator switches: those with operator requests, but for
/// [`CITED_BEFORE_CLOCKS`].
pub fn switches_operators(seed: u64) -> bool {
    requests_switchovers(seed) && !CITED_BEFORE_CLOCKS.contains(&seed)
}

/// One or two operator switches for such a seed, from a stream of their
/// own (so its switchovers are what they were before switches existed):
/// a drain, a pause of automation (each undone when it heals), a failback
/// approval or a manual failover, at a random moment.
fn operator_switches(seed: u64) -> Vec<Fault> {
    one_or_two(
        seed,
        switches_operators(seed),
        0x5A1C_4E50_0FF1_CE00,
        |rng| {
            let (at, lasts) = window(rng);
            let region = REGIONS[rng.random_range(0..REGIONS.len())];
            let kind = match rng.random_range(0..4) {
                0 => Kind::Drain(region),
                1 => Kind::PauseAutomation,
                2 => Kind::ApproveFailback(region),
                _ => Kind::ManualFailover(rng.random_bool(0.5).then_some(region)),
            };
            vec![Fault { at, lasts, kind }]
        },
    )
}

/// Seeds on which an operator forces a failover: one in five (`seed % 5
/// == 4`), across the other classes, from a stream of their own, but for
/// [`CITED_BEFORE_RATES`].
pub fn forces_failovers(seed: u64) -> bool {
    seed % 5 == 4 && !CITED_BEFORE_RATES.contains(&seed)
}

/// One forced failover for such a seed, at a random moment, to a given
/// member half the time.
fn forced_failovers(seed: u64) -> Vec<Fault> {
    if !forces_failovers(seed) {
        return Vec::new();
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0xF0DC_ED0F_A110_7E55);
    let (at, lasts) = window(&mut rng);
    let region = REGIONS[rng.random_range(0..REGIONS.len())];
    vec![Fault {
        at,
        lasts,
        kind: Kind::ForcedFailover(rng.random_bool(0.5).then_some(region)),
    }]
}

/// The seeds docs/SIMULATION.md cited before the peers' pings were late
/// or lost: the class leaves them alone. Frozen.
const CITED_BEFORE_PEERS: [u64; 24] = [
    1, 4, 5, 9, 45, 108, 134, 170, 187, 291, 1245, 1721, 3245, 3633, 4681, 4885, 6085, 7960, 8032,
    9184, 9917, 11053, 24709, 24906,
];

/// Seeds whose peers' pings are late or lost: one in seven (`seed % 7 ==
/// 6`), across the other classes, from a stream of their own, but for
/// [`CITED_BEFORE_PEERS`].
pub fn troubles_peer_links(seed: u64) -> bool {
    seed % 7 == 6 && !CITED_BEFORE_PEERS.contains(&seed)
}

/// One or two faults of a region's controller's pings for such a seed:
/// its view of its peers 50 ms to [`super::world::PEER_LAG_MAX`] late, or
/// 10–70 % of its pings lost.
fn peer_links(seed: u64) -> Vec<Fault> {
    one_or_two(
        seed,
        troubles_peer_links(seed),
        0x9EE7_114C_5000_0001,
        |rng| {
            let (at, lasts) = window(rng);
            let region = REGIONS[rng.random_range(0..REGIONS.len())];
            let most = super::world::PEER_LAG_MAX.as_millis() as u64;
            let kind = if rng.random_bool(0.5) {
                Kind::PeerLag(region, Duration::from_millis(rng.random_range(50..=most)))
            } else {
                Kind::PeerLoss(region, rng.random_range(10..=70))
            };
            vec![Fault { at, lasts, kind }]
        },
    )
}

/// Seeds whose host clocks drift: one in three (`seed % 3 == 0`), across
/// the other classes, from a stream of their own, but for
/// [`CITED_BEFORE_CLOCKS`].
pub fn drifts_clocks(seed: u64) -> bool {
    seed.is_multiple_of(3) && !CITED_BEFORE_CLOCKS.contains(&seed)
}

/// One or two host clocks drifting, from 0.1 % to 20 % fast or slow (a
/// clock 20 % fast is 8 s ahead after 40 s: past the report staleness and
/// the ingest's future allowance both), each stepped back by
/// [`FAULTS_END`].
fn clock_drifts(seed: u64) -> Vec<Fault> {
    one_or_two(seed, drifts_clocks(seed), 0xC10C_D21F_7000_0001, |rng| {
        let (at, lasts) = window(rng);
        let region = REGIONS[rng.random_range(0..REGIONS.len())];
        let ppm = rng.random_range(1_000..=200_000) * if rng.random_bool(0.5) { 1 } else { -1 };
        vec![Fault {
            at,
            lasts,
            kind: Kind::ClockDrift(region, ppm),
        }]
    })
}

/// The seeds docs/SIMULATION.md cited before hosts' clocks ran at rates
/// of their own and operators forced failovers: they keep every clock at
/// tokio's rate and force nothing, so each replays its finding as found.
/// Frozen: a seed cited later keeps its rates and its forced failover.
const CITED_BEFORE_RATES: [u64; 23] = [
    1, 4, 5, 9, 45, 108, 134, 170, 187, 291, 1245, 1721, 3245, 3633, 4681, 4885, 6085, 7960, 8032,
    9917, 11053, 24709, 24906,
];

/// The bound on a host clock's rate error the safety argument assumes
/// (docs/SAFETY.md, "Clocks": `ρ ≤ 1 %`), in ppm.
pub const RHO_PPM: i64 = 10_000;

/// How fast each host's monotonic clock runs against true time, in ppm
/// gained a second (negative: lost), for the whole run: a crystal's
/// error does not come and go. Every timer of a controller, the lease
/// TTLs etcd counts and the dead-man deadlines a member counts run on
/// them. Wall clocks drift apart from this ([`Kind::ClockDrift`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rates {
    /// etcd's (one clock: its leader's).
    pub etcd: i64,
    /// Each region's controller host's.
    pub controllers: [i64; 3],
    /// Each region's database member's host's.
    pub members: [i64; 3],
}

impl Rates {
    /// The controller host's rate of `region`.
    pub fn controller(&self, region: &str) -> i64 {
        self.controllers[region_index(region)]
    }

    /// The member host's rate of `region`.
    pub fn member(&self, region: &str) -> i64 {
        self.members[region_index(region)]
    }
}

fn region_index(region: &str) -> usize {
    REGIONS
        .iter()
        .position(|r| *r == region)
        .expect("a simulated region")
}

/// The clock rates of `seed` within the bound [`RHO_PPM`], or within
/// `SIM_RHO_PPM` when that is set (to see what a bound the argument does
/// not assume breaks).
pub fn rates(seed: u64) -> Rates {
    let rho = std::env::var("SIM_RHO_PPM")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(RHO_PPM);
    rates_within(seed, rho)
}

/// The clock rates of `seed`, from a stream of their own: each host's is
/// at the bound `rho` fast or slow one time in three each, and anywhere
/// within it otherwise (the extremes are where a margin is tested).
/// Every clock keeps true time on [`CITED_BEFORE_RATES`].
fn rates_within(seed: u64, rho: i64) -> Rates {
    if CITED_BEFORE_RATES.contains(&seed) {
        return Rates::default();
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7A7E_5C10_C4A7_E5ED);
    let mut draw = || match rng.random_range(0..3) {
        0 => -rho,
        1 => rho,
        _ => rng.random_range(-rho..=rho),
    };
    Rates {
        etcd: draw(),
        controllers: [draw(), draw(), draw()],
        members: [draw(), draw(), draw()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_rates_stay_within_the_bound_and_leave_the_cited_seeds_alone() {
        let rates = |seed| rates_within(seed, RHO_PPM);
        for seed in 0..500 {
            let r = rates(seed);
            assert_eq!(r, rates(seed));
            let all = [r.etcd].into_iter().chain(r.controllers).chain(r.members);
            assert!(
                all.clone().all(|ppm| ppm.abs() <= RHO_PPM),
                "seed {seed}: {r:?}"
            );
            if !CITED_BEFORE_RATES.contains(&seed) {
                assert!(all.clone().any(|ppm| ppm != 0), "seed {seed}: {r:?}");
            }
        }
        // Both extremes come, and apart.
        let fast = (0..100).filter(|s| rates(*s).etcd == RHO_PPM).count();
        let slow = (0..100).filter(|s| rates(*s).etcd == -RHO_PPM).count();
        assert!(fast > 15 && slow > 15, "{fast} fast, {slow} slow");
        for seed in CITED_BEFORE_RATES {
            assert_eq!(rates(seed), Rates::default(), "cited seed {seed}");
        }
    }

    #[test]
    fn a_seed_always_gives_the_same_schedule() {
        for seed in 0..50 {
            assert_eq!(schedule(seed), schedule(seed));
            assert!(schedule(seed).iter().all(|f| f.at + f.lasts <= FAULTS_END));
        }
        assert_ne!(schedule(1), schedule(2));
    }

    /// A class of faults comes on exactly the seeds `class` names, and
    /// never on the seeds cited before it existed (`cited`).
    fn comes_on_its_class(has: impl Fn(&Kind) -> bool, class: fn(u64) -> bool, cited: &[u64]) {
        let having = |seed| schedule(seed).iter().any(|f| has(&f.kind));
        for seed in 0..200 {
            assert_eq!(having(seed), class(seed), "seed {seed}");
        }
        for &seed in cited {
            assert!(!having(seed), "cited seed {seed}");
        }
    }

    #[test]
    fn each_class_comes_on_its_seeds_and_leaves_the_cited_ones_alone() {
        comes_on_its_class(
            |k| matches!(k, Kind::CrashController(_)),
            crashes_controllers,
            &[1721],
        );
        comes_on_its_class(
            |k| matches!(k, Kind::PauseController(_) | Kind::PauseMidStep),
            pauses_controllers,
            &[1, 4, 5, 187, 291, 1721, 4885, 7960],
        );
        comes_on_its_class(
            |k| {
                matches!(
                    k,
                    Kind::EtcdDown
                        | Kind::SlowSql(..)
                        | Kind::ProbeLoss(..)
                        | Kind::ProbeDelay(..)
                        | Kind::DnsOutage
                        | Kind::DnsEdit(..)
                )
            },
            // The aim at the quiet period slows a member too.
            |s| slows_parts(s) || aims_at_takeover(s),
            &[1, 4, 5, 134, 170, 187, 291, 1721, 4885, 7960],
        );
        comes_on_its_class(
            |k| matches!(k, Kind::Switchover(_)),
            requests_switchovers,
            &[1, 4, 5, 108, 134, 170, 187, 291, 1721, 4885, 7960],
        );
        comes_on_its_class(
            |k| matches!(k, Kind::ClockDrift(..)),
            drifts_clocks,
            &CITED_BEFORE_CLOCKS,
        );
        comes_on_its_class(
            |k| {
                matches!(
                    k,
                    Kind::Drain(_)
                        | Kind::PauseAutomation
                        | Kind::ApproveFailback(_)
                        | Kind::ManualFailover(_)
                )
            },
            switches_operators,
            &CITED_BEFORE_CLOCKS,
        );
        comes_on_its_class(
            |k| matches!(k, Kind::ForcedFailover(_)),
            forces_failovers,
            &CITED_BEFORE_RATES,
        );
        comes_on_its_class(
            |k| matches!(k, Kind::PeerLag(..) | Kind::PeerLoss(..)),
            troubles_peer_links,
            &CITED_BEFORE_PEERS,
        );
    }

    #[test]
    fn withdrawals_come_on_their_seeds_and_leave_the_cited_ones_alone() {
        for seed in CITED_BEFORE_WITHDRAWALS {
            assert!(!withdraws_requests(seed), "cited seed {seed}");
            assert!(!aims_at_takeover(seed), "cited seed {seed}");
            assert_eq!(withdrawal(seed, 0), None, "cited seed {seed}");
        }
        let withdrawing: Vec<u64> = (0..200).filter(|s| withdraws_requests(*s)).collect();
        assert!(withdrawing.iter().all(|s| requests_switchovers(*s)));
        assert!(withdrawing.len() >= 20, "{withdrawing:?}");
        // Two requests in three are withdrawn, within half a second, the
        // same on every call.
        let drawn: Vec<Option<Duration>> = withdrawing
            .iter()
            .flat_map(|s| (0..3).map(|n| withdrawal(*s, n)))
            .collect();
        let withdrawn = drawn.iter().flatten().count();
        assert!(
            withdrawn * 2 > drawn.len() && withdrawn < drawn.len(),
            "{withdrawn} of {}",
            drawn.len()
        );
        assert!(
            drawn
                .iter()
                .flatten()
                .all(|d| *d < Duration::from_millis(500))
        );
        assert_eq!(withdrawal(withdrawing[0], 0), withdrawal(withdrawing[0], 0));
        // The aim at the quiet period: the other half of the seeds with
        // requests; around the first switchover, a lagging target, a
        // stalled member, region a cut from etcd and (on most) a leader
        // paused with its statement in flight, longer than the hold; all
        // over by the end of the faults.
        let aimed: Vec<u64> = (0..400).filter(|s| aims_at_takeover(*s)).collect();
        assert!(aimed.len() >= 40 && aimed.iter().all(|s| !withdraws_requests(*s)));
        let mut in_flight = 0;
        for seed in aimed {
            let faults = schedule(seed);
            let (first, to) =
                first_switchover(seed).expect("a seed with requests has a switchover");
            let s = Duration::from_secs;
            let near = |f: &Fault| f.at + s(2) >= first && f.at <= first + s(7);
            assert!(
                faults
                    .iter()
                    .any(|f| f.kind == Kind::EtcdCut("a") && near(f)),
                "seed {seed}"
            );
            assert!(
                faults
                    .iter()
                    .any(|f| matches!(f.kind, Kind::SlowSql(..)) && near(f)),
                "seed {seed}"
            );
            if seed != 6085 {
                assert!(
                    faults
                        .iter()
                        .any(|f| matches!(f.kind, Kind::Lag(r, _) if r == to) && near(f)),
                    "seed {seed}"
                );
            }
            for f in &faults {
                if let Kind::PauseInFlight(late) = f.kind {
                    assert!(near(f) && f.lasts > late, "seed {seed}: {f:?}");
                    in_flight += 1;
                }
            }
            assert!(
                faults.iter().all(|f| f.at + f.lasts <= FAULTS_END),
                "seed {seed}"
            );
        }
        assert!(in_flight >= 30, "{in_flight}");
    }
}
