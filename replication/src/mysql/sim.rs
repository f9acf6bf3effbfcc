//! Simulated MariaDB servers with GTID replication, for the simulator and
//! for tests that need no server: the MySQL adapter's own code runs
//! against them ([`MySqlReplicaSet::simulated`]), statement by statement,
//! so what is simulated is the adapter's real orchestration, not a model
//! of it. The `ReplicaSet` conformance suite
//! ([`crate::conformance`]) holds them to what real MariaDB servers do.
//!
//! What is modelled, on tokio's clock (a paused clock makes it
//! deterministic):
//! - each server's binlog (GTIDs `domain-server-seq`, `gtid_strict_mode`:
//!   a transaction whose `seq` is not above the domain's last is refused
//!   and stops the applier, as MariaDB's error 1950 does), `read_only`
//!   (refusing the application's writes, not an admin's), its client
//!   sessions (`SHOW PROCESSLIST`, `KILL CONNECTION`);
//! - replication: a receiver that copies the source's binlog into the
//!   relay log while both servers are up and linked, and refuses a source
//!   that lacks a transaction the replica has (error 1236); an applier
//!   that applies relayed transactions after the member's apply delay
//!   (its lag); `STOP`/`START`/`RESET SLAVE ALL` (which drops the relay
//!   log), `CHANGE MASTER TO`, `MASTER_GTID_WAIT`;
//! - the dead-man switch ([`super::dead_man`]): its table, row and event,
//!   the event acting one period after the deadline passed (the latest a
//!   real scheduler would), on a scheduler that is always on;
//! - statements in flight: on a server with a latency, a statement runs
//!   when it arrives, whether or not its caller still waits;
//! - faults: a crash (refused connections, sessions gone, restart
//!   read-only with replication resumed), a cut (nothing answers: calls
//!   hang until the caller's timeout), a partition between two endpoints
//!   (a server and a client — a controller, the application of a region —
//!   or two servers: only that link is lost), a stopped applier, an apply
//!   delay, an errant transaction written on a replica.
//!
//! Clients have names: [`SimNetwork::as_client`] gives a view whose
//! sessions and writes come from one client, so a partition can leave one
//! controller reaching the primary and another not. A link is lost in
//! both directions when either direction is dropped
//! ([`SimNetwork::drop_link`]): every conversation here is TCP, which
//! needs both.
//!
//! Replication is evaluated lazily, whenever the network is touched, from
//! the clock: a transaction committed at `t` is received at `t` and
//! applied at `t + delay` if nothing stopped it meanwhile. Not modelled:
//! logins (every user is accepted), lock waits, and the statements the
//! adapter does not send (a statement outside its set is a syntax error,
//! so a new statement in the adapter fails here until it is modelled).
//!
//! Known gaps, each a limit on what a simulation can find:
//! - shipping is instant: a crash never loses a write the primary
//!   acknowledged but had not yet sent (MariaDB's asynchronous replication
//!   can), so "no acknowledged write lost" cannot fail on a crash here;
//! - a one-way partition acts as a two-way one (TCP needs both ways);
//!   a view without a client name ([`SimNetwork::new`]'s) is stopped only
//!   by a server's cut, never by a link's;
//! - a receiver reconnects at once (MariaDB waits `MASTER_CONNECT_RETRY`);
//!   its 1236 check is stricter than MariaDB's (every transaction of the
//!   replica, not the position per domain); `MASTER_GTID_WAIT` compares
//!   with the binlog, not `gtid_slave_pos`.
//!
//! [`MySqlReplicaSet::simulated`]: super::MySqlReplicaSet::simulated

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use switchyard_host::Rate;
use tokio::time::Instant;

use super::status::Columns;
use crate::gtid::mariadb::{MariaDbGtid, MariaDbGtids};

/// MariaDB's error for a write refused by `read_only`.
pub const ER_READ_ONLY: u16 = 1290;

/// A set of simulated MariaDB servers that can reach each other,
/// addressed by `host:port`. Clones share the servers.
#[derive(Clone, Default)]
pub struct SimNetwork {
    inner: Arc<Mutex<Net>>,
    /// Bumped on every change of who is writable or reachable
    /// (`read_only`, crash, restart, cut, link): a simulator checks its
    /// invariants after each, not on a sampling period.
    changes: Arc<tokio::sync::watch::Sender<u64>>,
    /// Who this view's sessions and writes come from (`None`: from
    /// everywhere, stopped by no partition).
    client: Option<Arc<str>>,
}

impl std::fmt::Debug for SimNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNetwork").finish_non_exhaustive()
    }
}

/// Sees every statement twice: as its client sends it, and as it reaches
/// its server (later on a slow server, and then even if the client gave
/// up meanwhile: a statement in flight still runs).
pub trait StatementObserver: Send + Sync {
    /// A statement leaves its client (the view's client, if named) for the
    /// server at `address`; the tag returned travels with it.
    fn sent(&self, client: Option<&str>, address: &str, sql: &str) -> u64;

    /// It reaches the server, with the tag it was sent with. The answer:
    /// whether the sender yields once it has run (a simulator that freezes
    /// the sender there pauses it between a step's statement and the rest
    /// of the step).
    fn landed(&self, client: Option<&str>, address: &str, sql: &str, tag: u64) -> bool;

    /// How long the statement just [`sent`](Self::sent) (with `tag`) is
    /// held in the network on top of its server's latency: one packet
    /// delayed in flight while the rest of the link is fine. It runs when
    /// it arrives, as any statement in flight. None by default.
    fn held(&self, _client: Option<&str>, _address: &str, _sql: &str, _tag: u64) -> Duration {
        Duration::ZERO
    }
}

#[derive(Default)]
struct Net {
    /// Told of every statement ([`SimNetwork::observe_statements`]).
    observer: Option<Arc<dyn StatementObserver>>,
    servers: BTreeMap<String, Server>,
    next_session: u64,
    /// Directed links whose packets are lost: `(from, to)`.
    dropped: BTreeSet<(String, String)>,
}

#[derive(Debug, Clone)]
struct Txn {
    gtid: MariaDbGtid,
    committed: Instant,
}

#[derive(Debug, Clone, Default)]
struct Replication {
    /// `host:port` of the source, when configured.
    source: Option<String>,
    io: bool,
    sql: bool,
    /// The receiver is connected to the source (it checks its position
    /// only when it connects, as MariaDB's does).
    connected: bool,
    /// `MASTER_USE_GTID=current_pos`: the position asked for at connect
    /// includes the member's own transactions (`slave_pos`: only the
    /// replicated ones).
    current_pos: bool,
    io_error: Option<(u16, String)>,
    sql_error: Option<(u16, String)>,
    /// How much of which source's binlog the receiver has been through
    /// while connected: only what follows is new (binlogs only grow).
    seen: Option<(String, usize)>,
}

#[derive(Debug)]
struct Server {
    server_id: u32,
    up: bool,
    cut: bool,
    read_only: bool,
    /// Applied transactions, in order.
    binlog: Vec<Txn>,
    /// Received, not yet applied, in order.
    relay: Vec<Txn>,
    repl: Replication,
    apply_delay: Duration,
    /// How late every statement is answered ([`SimNetwork::set_latency`]).
    latency: Duration,
    sessions: BTreeSet<u64>,
    dead_man: DeadManState,
    /// How fast the server's clock runs against tokio's
    /// ([`SimNetwork::set_clock_rate`]): what it counts in a statement's
    /// own time (the dead-man switch's deadline, a GTID wait).
    clock_rate: Rate,
}

/// A server's dead-man switch ([`super::dead_man`]): the table, its row
/// and the event, run by a scheduler that is always on.
#[derive(Debug, Clone, Default)]
struct DeadManState {
    table: bool,
    event: bool,
    /// The row's deadline (`None`: no row).
    expires: Option<Instant>,
    /// When the event last turned the server read-only.
    fired: Option<Instant>,
    /// When a renewal or a lift last found the server writable.
    writable_at: Option<Instant>,
    /// Whether the last renewal that saw the server found it writable.
    was_writable: Option<bool>,
    /// The boot marker (a MEMORY table's row: a restart empties it).
    marked: bool,
}

impl DeadManState {
    /// The event's verdict at `now` on a writable server: it runs every
    /// [`super::dead_man::EVENT_PERIOD`], so a lapsed deadline is acted on
    /// one period after it passed (the latest a real scheduler would).
    /// `rate` is the server clock's ([`Server::clock_rate`]): the
    /// scheduler's period is counted on it too.
    fn fires(&self, now: Instant, rate: Rate) -> Option<Instant> {
        if !self.table || !self.event {
            return None;
        }
        let period = rate.tokio_span(super::dead_man::EVENT_PERIOD);
        match self.expires {
            Some(e) if e + period > now => None,
            Some(e) => Some(e + period),
            None => Some(now),
        }
    }
}

impl Server {
    fn applied(&self) -> MariaDbGtids {
        let mut g = MariaDbGtids::new();
        for t in &self.binlog {
            g.insert(t.gtid);
        }
        g
    }

    fn has(&self, gtid: &MariaDbGtid) -> bool {
        self.binlog
            .iter()
            .chain(&self.relay)
            .any(|t| t.gtid == *gtid)
    }

    /// The domain's last `seq` in the binlog.
    fn last_seq(&self, domain: u32) -> u64 {
        self.binlog
            .iter()
            .filter(|t| t.gtid.domain == domain)
            .map(|t| t.gtid.seq)
            .max()
            .unwrap_or(0)
    }

    /// Applies `txn` under `gtid_strict_mode`.
    fn apply(&mut self, txn: Txn) -> Result<(), (u16, String)> {
        let last = self.last_seq(txn.gtid.domain);
        if txn.gtid.seq <= last {
            return Err((
                1950,
                format!(
                    "An attempt was made to binlog GTID {} which would create an out-of-order \
                     sequence number with existing GTID {}-{}-{}, and gtid strict mode is enabled",
                    txn.gtid, txn.gtid.domain, self.server_id, last
                ),
            ));
        }
        self.binlog.push(txn);
        Ok(())
    }
}

/// What a simulated statement can fail with, as the driver reports it.
fn server_error(code: u16, message: impl Into<String>) -> mysql_async::Error {
    mysql_async::Error::Server(mysql_async::ServerError {
        code,
        message: message.into(),
        state: "HY000".into(),
    })
}

fn io_error(kind: std::io::ErrorKind, what: &str) -> mysql_async::Error {
    mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::new(kind, what)))
}

impl SimNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// This network as `client` sees it: the sessions it opens and the
    /// writes it makes come from `client`, so a partition between
    /// `client` and a server stops them. `host/part` names one part of a
    /// process on `host` (its partitions are `host`'s), so an observer
    /// tells the parts apart.
    pub fn as_client(&self, client: &str) -> SimNetwork {
        SimNetwork {
            inner: self.inner.clone(),
            changes: self.changes.clone(),
            client: Some(client.into()),
        }
    }

    /// Changes of who is writable or reachable, as a counter that moves on
    /// each: wait on it to check after every change.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// Drops (`true`) or restores the packets from `from` to `to` (a
    /// server's `host:port` or a client's name). Either direction dropped
    /// loses the link: open sessions hang, new ones are never answered,
    /// a replica stops receiving from its source.
    pub fn drop_link(&self, from: &str, to: &str, dropped: bool) {
        let mut net = self.lock();
        let link = (from.to_string(), to.to_string());
        if dropped {
            net.dropped.insert(link);
            for (a, b) in [(from, to), (to, from)] {
                if let Some(s) = net.servers.get_mut(a)
                    && s.repl.source.as_deref() == Some(b)
                {
                    s.repl.connected = false;
                }
            }
        } else {
            net.dropped.remove(&link);
        }
        drop(net);
        self.changed();
    }

    /// Partitions `a` from `b` both ways (`true`), or heals the link.
    pub fn partition(&self, a: &str, b: &str, cut: bool) {
        self.drop_link(a, b, cut);
        self.drop_link(b, a, cut);
    }

    /// Whether `client` could write on `address` now: the server is up,
    /// writable, not cut, and linked to `client`. The simulator's "two
    /// writable members reachable by clients" asks this for each region's
    /// application.
    pub fn writable_from(&self, client: &str, address: &str) -> bool {
        let net = self.lock();
        net.linked(client, address)
            && net
                .servers
                .get(address)
                .is_some_and(|s| s.up && !s.cut && !s.read_only)
    }

    /// Tells `observer` of every statement from now on, as it is sent and
    /// as it reaches its server (before it takes effect): a simulator
    /// checks who acts on the databases, and when.
    pub fn observe_statements(&self, observer: Arc<dyn StatementObserver>) {
        self.lock().observer = Some(observer);
    }

    fn lock(&self) -> MutexGuard<'_, Net> {
        let mut net = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        net.replicate(Instant::now());
        net
    }

    /// Starts a server at `address` with `server_id`: writable, empty, not
    /// replicating.
    pub fn add_server(&self, address: &str, server_id: u32) {
        self.lock().servers.insert(
            address.to_string(),
            Server {
                server_id,
                up: true,
                cut: false,
                read_only: false,
                binlog: Vec::new(),
                relay: Vec::new(),
                repl: Replication::default(),
                apply_delay: Duration::ZERO,
                latency: Duration::ZERO,
                sessions: BTreeSet::new(),
                dead_man: DeadManState::default(),
                clock_rate: Rate::TOKIO,
            },
        );
    }

    /// Points `replica` at `source`, read-only, both threads running (what
    /// a fresh topology starts as).
    pub fn replicate(&self, replica: &str, source: &str) {
        let mut net = self.lock();
        if let Some(s) = net.servers.get_mut(replica) {
            s.read_only = true;
            s.repl = Replication {
                source: Some(source.to_string()),
                io: true,
                sql: true,
                ..Replication::default()
            };
        }
    }

    /// Commits one transaction on `address` as the application: refused
    /// (error 1290) while it is read-only, unreachable while it is down or
    /// cut. The GTID written.
    pub fn write(&self, address: &str) -> Result<String, mysql_async::Error> {
        self.commit(address, false)
    }

    /// Commits one transaction as an account that `read_only` does not
    /// stop: on a replica, an errant transaction.
    pub fn write_as_admin(&self, address: &str) -> Result<String, mysql_async::Error> {
        self.commit(address, true)
    }

    fn commit(&self, address: &str, admin: bool) -> Result<String, mysql_async::Error> {
        let mut net = self.lock();
        if !net.linked_from(self.client.as_deref(), address) {
            return Err(io_error(
                std::io::ErrorKind::TimedOut,
                "Connection timed out (partitioned from this client)",
            ));
        }
        let s = net.reachable(address)?;
        if s.read_only && !admin {
            return Err(server_error(
                ER_READ_ONLY,
                "The MariaDB server is running with the --read-only option so it cannot \
                 execute this statement",
            ));
        }
        let gtid = MariaDbGtid {
            domain: 0,
            server: s.server_id,
            seq: s.last_seq(0) + 1,
        };
        s.binlog.push(Txn {
            gtid,
            committed: Instant::now(),
        });
        Ok(gtid.to_string())
    }

    /// Crashes the server: connections refused, sessions gone.
    pub fn crash(&self, address: &str) {
        if let Some(s) = self.lock().servers.get_mut(address) {
            s.up = false;
            s.repl.connected = false;
            s.sessions.clear();
        }
        self.changed();
    }

    /// Restarts a crashed server as its configuration has it: read-only,
    /// replication resumed if a source is configured.
    pub fn restart(&self, address: &str) {
        if let Some(s) = self.lock().servers.get_mut(address) {
            s.up = true;
            s.read_only = true;
            s.dead_man.marked = false;
            if s.repl.source.is_some() {
                s.repl.io = true;
                s.repl.sql = true;
                s.repl.io_error = None;
            }
        }
        self.changed();
    }

    /// Cuts (`true`) or heals the server's network: while cut nothing
    /// answers it and it receives nothing.
    pub fn cut(&self, address: &str, cut: bool) {
        if let Some(s) = self.lock().servers.get_mut(address) {
            s.cut = cut;
            s.repl.connected &= !cut;
        }
        self.changed();
    }

    /// Stops the server's applier (`STOP SLAVE SQL_THREAD`).
    pub fn stop_applier(&self, address: &str) {
        if let Some(s) = self.lock().servers.get_mut(address) {
            s.repl.sql = false;
        }
    }

    /// Makes the server apply each transaction `delay` after its commit.
    pub fn set_apply_delay(&self, address: &str, delay: Duration) {
        if let Some(s) = self.lock().servers.get_mut(address) {
            s.apply_delay = delay;
        }
    }

    /// Makes the server's clock gain `ppm` microseconds a second on
    /// tokio's (lose them, negative): the dead-man switch's deadline and a
    /// GTID wait's timeout are counted on it, as a real server counts them
    /// on its host's clock.
    ///
    /// # Panics
    ///
    /// If the clock would stand still or run backwards (`ppm ≤ −10⁶`).
    pub fn set_clock_rate(&self, address: &str, ppm: i64) {
        let rate = Rate::from_ppm(ppm);
        if let Some(s) = self.lock().servers.get_mut(address) {
            s.clock_rate = rate;
        }
    }

    /// Makes the server take every statement `latency` after it was sent
    /// (a slow network or server; zero: at once). A statement in flight
    /// runs when it arrives even if its caller gave up meanwhile, and the
    /// session's close arrives behind it.
    pub fn set_latency(&self, address: &str, latency: Duration) {
        if let Some(s) = self.lock().servers.get_mut(address) {
            s.latency = latency;
        }
    }

    /// The transactions in `have`'s binlog that `lacks` has not applied
    /// (up or down, reachable or not): what promoting `lacks` over `have`
    /// would lose.
    pub fn missing(&self, have: &str, lacks: &str) -> Vec<String> {
        let net = self.lock();
        let (Some(h), Some(l)) = (net.servers.get(have), net.servers.get(lacks)) else {
            return Vec::new();
        };
        h.binlog
            .iter()
            .filter(|t| !l.binlog.iter().any(|a| a.gtid == t.gtid))
            .map(|t| t.gtid.to_string())
            .collect()
    }

    /// Whether the server would take writes now: up and writable. A cut
    /// server counts (clients on its side of the cut may still reach
    /// it), so "never two writable members" is checked conservatively.
    pub fn writable(&self, address: &str) -> bool {
        self.lock()
            .servers
            .get(address)
            .is_some_and(|s| s.up && !s.read_only)
    }

    /// Whether the server answers at all (up, not cut): what a probe on
    /// its side of every partition sees.
    pub fn answers(&self, address: &str) -> bool {
        self.lock()
            .servers
            .get(address)
            .is_some_and(|s| s.up && !s.cut)
    }

    /// The GTIDs the server has applied (its binlog state).
    pub fn applied(&self, address: &str) -> Option<String> {
        self.lock()
            .servers
            .get(address)
            .map(|s| s.applied().to_string())
    }

    /// Whether nothing from `address` reaches this view: the server is
    /// cut, or partitioned from this view's client.
    fn is_cut(&self, address: &str) -> bool {
        let net = self.lock();
        !net.linked_from(self.client.as_deref(), address)
            || net.servers.get(address).is_some_and(|s| s.cut)
    }

    /// Waits while nothing from `address` reaches this view.
    async fn until_answered(&self, address: &str) {
        while self.is_cut(address) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Opens a session to `address`, as a connect would.
    pub(super) async fn open(&self, address: &str) -> Result<SimSession, mysql_async::Error> {
        let opened = {
            let mut net = self.lock();
            match net.servers.get(address) {
                None => Err(io_error(
                    std::io::ErrorKind::ConnectionRefused,
                    "Connection refused (no simulated server at this address)",
                )),
                Some(s) if s.cut || !net.linked_from(self.client.as_deref(), address) => Ok(None),
                Some(s) if !s.up => Err(io_error(
                    std::io::ErrorKind::ConnectionRefused,
                    "Connection refused",
                )),
                Some(_) => {
                    net.next_session += 1;
                    let id = net.next_session;
                    if let Some(s) = net.servers.get_mut(address) {
                        s.sessions.insert(id);
                    }
                    Ok(Some(id))
                }
            }
        };
        match opened? {
            Some(id) => Ok(SimSession {
                net: self.clone(),
                address: address.to_string(),
                id,
                closes: true,
            }),
            // Nothing answers a cut server until the cut heals (TCP
            // retries its SYN); the caller's timeout may end this first.
            None => {
                self.until_answered(address).await;
                Box::pin(self.open(address)).await
            }
        }
    }
}

impl Net {
    /// Whether packets flow both ways between `a` and `b`. A client named
    /// `host/part` is on `host`: one process's parts share its links.
    fn linked(&self, a: &str, b: &str) -> bool {
        let host = |n: &str| n.split_once('/').map_or(n, |(h, _)| h).to_string();
        let (a, b) = (host(a), host(b));
        !self.dropped.contains(&(a.clone(), b.clone())) && !self.dropped.contains(&(b, a))
    }

    /// [`linked`](Self::linked) for a view's client; a view without a
    /// client is linked to everything.
    fn linked_from(&self, client: Option<&str>, address: &str) -> bool {
        client.is_none_or(|c| self.linked(c, address))
    }

    /// The server at `address` if it answers; an error as a driver would
    /// give one otherwise (a cut server is reported by the caller's
    /// timeout, so this is only for calls that do not wait).
    fn reachable(&mut self, address: &str) -> Result<&mut Server, mysql_async::Error> {
        match self.servers.get_mut(address) {
            Some(s) if s.up && !s.cut => Ok(s),
            Some(_) => Err(io_error(
                std::io::ErrorKind::ConnectionRefused,
                "Connection refused",
            )),
            None => Err(io_error(
                std::io::ErrorKind::ConnectionRefused,
                "Connection refused (no simulated server at this address)",
            )),
        }
    }

    /// Brings every replica up to `now`: receive what its source has, then
    /// apply what is due.
    /// Also runs each writable server's dead-man event.
    fn replicate(&mut self, now: Instant) {
        let addresses: Vec<String> = self.servers.keys().cloned().collect();
        for addr in addresses {
            self.receive(&addr);
            if let Some(s) = self.servers.get_mut(&addr) {
                apply_due(s, now);
                if s.up
                    && !s.read_only
                    && let Some(at) = s.dead_man.fires(now, s.clock_rate)
                {
                    s.read_only = true;
                    s.dead_man.fired = Some(at);
                }
            }
        }
    }

    fn receive(&mut self, addr: &str) {
        let Some(r) = self.servers.get(addr) else {
            return;
        };
        if !r.up || r.cut || !r.repl.io {
            return;
        }
        let Some(src_addr) = r.repl.source.clone() else {
            return;
        };
        let linked = self.linked(addr, &src_addr);
        // Only what the receiver has not been through yet, while it stays
        // connected to the same source; everything on a (re)connect.
        let from = match &r.repl.seen {
            Some((src, n)) if r.repl.connected && *src == src_addr => *n,
            _ => 0,
        };
        let (theirs, total) = match self.servers.get(&src_addr) {
            Some(s) if s.up && !s.cut && linked => (
                s.binlog[from.min(s.binlog.len())..].to_vec(),
                s.binlog.len(),
            ),
            // The receiver keeps retrying ("Connecting"), no error yet.
            _ => {
                if let Some(r) = self.servers.get_mut(addr) {
                    r.repl.connected = false;
                }
                return;
            }
        };
        let r = self.servers.get_mut(addr).expect("looked up above");
        r.repl.seen = Some((src_addr, total));
        if !r.repl.connected {
            let own = r.server_id;
            let asked = r
                .binlog
                .iter()
                .chain(&r.relay)
                .filter(|t| r.repl.current_pos || t.gtid.server != own);
            if let Some(extra) = asked
                .clone()
                .find(|t| !theirs.iter().any(|s| s.gtid == t.gtid))
            {
                r.repl.io = false;
                r.repl.io_error = Some((
                    1236,
                    format!(
                        "Got fatal error 1236 from master when reading data from binary log: \
                         'Error: connecting slave requested to start from GTID {}, which is \
                         not in the master's binlog'",
                        extra.gtid
                    ),
                ));
                return;
            }
            r.repl.connected = true;
        }
        let new: Vec<Txn> = theirs.into_iter().filter(|t| !r.has(&t.gtid)).collect();
        r.relay.extend(new);
    }

    /// The server of an open session. A crash ends its sessions (the
    /// client sees its connection closed, never "refused": only a new
    /// connection can be refused); a cut server is the caller's to wait
    /// on ([`SimSession::run`] hangs on it).
    fn session(&mut self, address: &str, id: u64) -> Result<&mut Server, mysql_async::Error> {
        let Some(s) = self.servers.get_mut(address) else {
            return Err(mysql_async::Error::Driver(
                mysql_async::DriverError::ConnectionClosed,
            ));
        };
        if !s.up || !s.sessions.contains(&id) {
            return Err(mysql_async::Error::Driver(
                mysql_async::DriverError::ConnectionClosed,
            ));
        }
        Ok(s)
    }
}

/// Applies every relayed transaction that is due, in order, while the
/// applier runs; stops it on an out-of-order GTID.
fn apply_due(s: &mut Server, now: Instant) {
    if !s.up || !s.repl.sql {
        return;
    }
    while let Some(t) = s.relay.first() {
        if t.committed + s.apply_delay > now {
            break;
        }
        let t = s.relay.remove(0);
        if let Err(e) = s.apply(t.clone()) {
            s.relay.insert(0, t);
            s.repl.sql = false;
            s.repl.sql_error = Some(e);
            break;
        }
    }
}

/// MariaDB's answer to a statement on the dead-man table before it exists.
fn no_such_table(s: &Server) -> Result<(), mysql_async::Error> {
    if s.dead_man.table {
        Ok(())
    } else {
        Err(server_error(
            1146,
            "Table 'switchyard.dead_man' doesn't exist",
        ))
    }
}

/// One open session to a simulated server.
#[derive(Debug)]
pub(super) struct SimSession {
    net: SimNetwork,
    address: String,
    id: u64,
    /// Whether dropping it ends the server session (not for the copy that
    /// carries a statement in flight).
    closes: bool,
}

impl SimSession {
    /// The session's connection id.
    pub(super) fn id(&self) -> u64 {
        self.id
    }

    /// Runs one statement; rows for a query, none otherwise.
    pub(super) async fn run(&self, sql: &str) -> Result<Vec<Columns>, mysql_async::Error> {
        let sql = sql.trim();
        if let Some(args) = sql.strip_prefix("SELECT MASTER_GTID_WAIT(") {
            return self.wait(args).await;
        }
        // A statement sent across a cut arrives once it heals (TCP
        // retransmits); the caller's timeout may end the wait first.
        self.net.until_answered(&self.address).await;
        let (latency, observer) = {
            let net = self.net.lock();
            let latency = net
                .servers
                .get(&self.address)
                .map_or(Duration::ZERO, |s| s.latency);
            (latency, net.observer.clone())
        };
        let client = self.net.client.as_deref();
        let tag = observer
            .as_ref()
            .map_or(0, |o| o.sent(client, &self.address, sql));
        let latency = latency
            + observer
                .as_ref()
                .map_or(Duration::ZERO, |o| o.held(client, &self.address, sql, tag));
        let (result, pause) = if latency.is_zero() {
            let pause = observer
                .as_ref()
                .is_some_and(|o| o.landed(client, &self.address, sql, tag));
            (self.execute(sql), pause)
        } else {
            // In flight: it runs when it arrives, whether or not this
            // caller still waits for the answer (its timeout drops only
            // the wait; the session's close travels behind it).
            let (tx, rx) = tokio::sync::oneshot::channel();
            let wire = SimSession {
                net: self.net.clone(),
                address: self.address.clone(),
                id: self.id,
                closes: false,
            };
            let sql = sql.to_string();
            tokio::spawn(async move {
                tokio::time::sleep(latency).await;
                let client = wire.net.client.clone();
                let pause = observer
                    .as_ref()
                    .is_some_and(|o| o.landed(client.as_deref(), &wire.address, &sql, tag));
                let _ = tx.send((wire.execute(&sql), pause));
            });
            rx.await.unwrap_or_else(|_| {
                (
                    Err(mysql_async::Error::Driver(
                        mysql_async::DriverError::ConnectionClosed,
                    )),
                    false,
                )
            })
        };
        if pause {
            // The sender stops here, after the server ran the statement and
            // before it reads the answer: a frozen task is not polled again.
            tokio::task::yield_now().await;
        }
        result
    }

    /// Runs `sql` (not `MASTER_GTID_WAIT`, which waits) on the server, now.
    fn execute(&self, sql: &str) -> Result<Vec<Columns>, mysql_async::Error> {
        let mut net = self.net.lock();
        let id = self.id;
        let s = net.session(&self.address, id)?;
        let none = Ok(Vec::new());
        match sql {
            "SET GLOBAL read_only = ON" => {
                s.read_only = true;
                drop(net);
                self.net.changed();
                none
            }
            "SET GLOBAL read_only = OFF" => {
                s.read_only = false;
                drop(net);
                self.net.changed();
                none
            }
            "STOP SLAVE" => {
                s.repl.io = false;
                s.repl.connected = false;
                s.repl.sql = false;
                none
            }
            "START SLAVE" => {
                if s.repl.source.is_none() {
                    return Err(server_error(
                        1200,
                        "Misconfigured slave: MASTER_HOST was not set; Fix in config file or \
                         with CHANGE MASTER TO",
                    ));
                }
                s.repl.io = true;
                s.repl.sql = true;
                s.repl.io_error = None;
                s.repl.sql_error = None;
                // The receiver connects at once.
                net.replicate(Instant::now());
                none
            }
            "RESET SLAVE ALL" => {
                if s.repl.io || s.repl.sql {
                    return Err(running_slave());
                }
                s.repl = Replication::default();
                s.relay.clear();
                none
            }
            "SHOW SLAVE STATUS" => Ok(slave_status(s, Instant::now()).into_iter().collect()),
            "SHOW PROCESSLIST" => Ok(s
                .sessions
                .iter()
                .map(|sid| {
                    row(&[
                        ("Id", Some(sid.to_string())),
                        ("User", Some("switchyard".into())),
                        ("Host", Some("sim".into())),
                        ("db", None),
                        ("Command", Some("Query".into())),
                    ])
                })
                .collect()),
            _ if sql.starts_with("SET SESSION ") => none,
            _ if sql.starts_with("SELECT COUNT(*) AS armed FROM information_schema.TABLES") => {
                Ok(vec![row(&[(
                    "armed",
                    Some(u8::from(s.dead_man.table).to_string()),
                )])])
            }
            "CREATE DATABASE IF NOT EXISTS switchyard" => none,
            _ if sql.starts_with("CREATE TABLE IF NOT EXISTS switchyard.dead_man ") => {
                s.dead_man.table = true;
                none
            }
            _ if sql.starts_with("CREATE TABLE IF NOT EXISTS switchyard.dead_man_boot ") => none,
            "REPLACE INTO switchyard.dead_man_boot (id) VALUES (1)" => {
                s.dead_man.marked = true;
                none
            }
            _ if sql.starts_with(
                "SELECT (SELECT COUNT(*) FROM switchyard.dead_man_boot) AS marked",
            ) =>
            {
                no_such_table(s)?;
                let d = &s.dead_man;
                Ok(d.expires
                    .map(|_| {
                        row(&[
                            ("marked", Some(u8::from(d.marked).to_string())),
                            (
                                "was_writable",
                                d.was_writable.map(|w| u8::from(w).to_string()),
                            ),
                        ])
                    })
                    .into_iter()
                    .collect())
            }
            _ if sql.starts_with("CREATE EVENT IF NOT EXISTS switchyard.dead_man ") => {
                s.dead_man.event = true;
                none
            }
            "DROP EVENT IF EXISTS switchyard.dead_man" => {
                s.dead_man.event = false;
                none
            }
            _ if sql.starts_with("INSERT INTO switchyard.dead_man ") => {
                no_such_table(s)?;
                let micros: u64 = sql
                    .split_once("INTERVAL ")
                    .and_then(|(_, r)| r.split_once(" MICROSECOND"))
                    .and_then(|(n, _)| n.parse().ok())
                    .ok_or_else(|| syntax(sql))?;
                let now = Instant::now();
                let new_row = s.dead_man.expires.is_none();
                s.dead_man.expires =
                    Some(now + s.clock_rate.tokio_span(Duration::from_micros(micros)));
                // A lift or promotion (`fired = NULL`), about to make the
                // member writable, notes the time and clears the firing;
                // a renewal only while the member is writable.
                if sql.contains("fired = NULL") || !s.read_only {
                    s.dead_man.writable_at = Some(now);
                    s.dead_man.fired = None;
                    s.dead_man.was_writable = Some(true);
                } else if new_row {
                    s.dead_man.was_writable = None;
                } else if sql.ends_with("IF(@@GLOBAL.read_only = 0, 1, 0)") {
                    // Read-only within a marked boot.
                    s.dead_man.was_writable = Some(false);
                }
                none
            }
            _ if sql.starts_with("SELECT @@GLOBAL.event_scheduler AS scheduler") => {
                no_such_table(s)?;
                Ok(s.dead_man
                    .expires
                    .map(|_| {
                        row(&[
                            ("scheduler", Some("ON".into())),
                            ("read_only", Some(u8::from(s.read_only).to_string())),
                            ("fired", s.dead_man.fired.map(|t| format!("{t:?}"))),
                            (
                                "writable_at",
                                s.dead_man.writable_at.map(|t| format!("{t:?}")),
                            ),
                        ])
                    })
                    .into_iter()
                    .collect())
            }
            _ if sql.starts_with("SELECT @@server_id AS origin") => Ok(vec![row(&[
                ("origin", Some(s.server_id.to_string())),
                ("read_only", Some(u8::from(s.read_only).to_string())),
                ("super_read_only", Some("0".into())),
                ("executed", Some(s.applied().to_string())),
                ("slave_pos", Some(String::new())),
            ])]),
            _ if sql.starts_with("SELECT GRANTEE AS grantee") => none,
            _ if sql.starts_with("KILL CONNECTION ") => {
                let victim: u64 = sql["KILL CONNECTION ".len()..]
                    .trim()
                    .parse()
                    .map_err(|_| syntax(sql))?;
                if s.sessions.remove(&victim) {
                    none
                } else {
                    Err(server_error(1094, format!("Unknown thread id: {victim}")))
                }
            }
            _ if sql.starts_with("CHANGE MASTER TO ") => {
                if s.repl.io || s.repl.sql {
                    return Err(running_slave());
                }
                let host = setting(sql, "MASTER_HOST=").ok_or_else(|| syntax(sql))?;
                let port = setting(sql, "MASTER_PORT=").ok_or_else(|| syntax(sql))?;
                s.repl.source = Some(format!("{host}:{port}"));
                s.repl.current_pos = sql.contains("MASTER_USE_GTID=current_pos");
                s.repl.connected = false;
                s.repl.io_error = None;
                s.repl.sql_error = None;
                s.relay.clear();
                none
            }
            _ => Err(syntax(sql)),
        }
    }

    /// `MASTER_GTID_WAIT('<pos>', secs)`: 0 once every domain of `pos` is
    /// applied up to its `seq`, -1 after `secs`.
    async fn wait(&self, args: &str) -> Result<Vec<Columns>, mysql_async::Error> {
        let (pos, rest) = args
            .trim_start_matches('\'')
            .split_once('\'')
            .ok_or_else(|| syntax(args))?;
        let secs: f64 = rest
            .trim_start_matches(',')
            .trim()
            .trim_end_matches(')')
            .trim()
            .parse()
            .map_err(|_| syntax(args))?;
        let wanted: MariaDbGtids = pos.parse().map_err(|_| syntax(args))?;
        let rate = {
            let mut net = self.net.lock();
            net.session(&self.address, self.id)?.clock_rate
        };
        let until = Instant::now() + rate.tokio_span(Duration::from_secs_f64(secs.max(0.0)));
        loop {
            let reached = {
                let mut net = self.net.lock();
                let s = net.session(&self.address, self.id)?;
                // A cut server's answer never arrives.
                !s.cut && wanted.gtids().all(|g| s.last_seq(g.domain) >= g.seq)
            } && !self.net.is_cut(&self.address);
            if reached {
                return Ok(vec![row(&[("r", Some("0".into()))])]);
            }
            if Instant::now() >= until && !self.net.is_cut(&self.address) {
                return Ok(vec![row(&[("r", Some("-1".into()))])]);
            }
            let left = until.saturating_duration_since(Instant::now());
            let nap = if left.is_zero() {
                Duration::from_millis(10)
            } else {
                left.min(Duration::from_millis(10))
            };
            tokio::time::sleep(nap).await;
        }
    }

    /// Ends the session.
    pub(super) fn close(&self) {
        let latency = {
            let mut net = self.net.lock();
            match net.servers.get_mut(&self.address) {
                Some(s) if s.latency.is_zero() => {
                    s.sessions.remove(&self.id);
                    return;
                }
                Some(s) => s.latency,
                None => return,
            }
        };
        // On a slow server the close arrives as late as a statement sent
        // now would: behind the ones in flight, which still run.
        let (net, address, id) = (self.net.clone(), self.address.clone(), self.id);
        let end = move || {
            if let Some(s) = net.lock().servers.get_mut(&address) {
                s.sessions.remove(&id);
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    tokio::time::sleep(latency).await;
                    end();
                });
            }
            Err(_) => end(),
        }
    }
}

impl Drop for SimSession {
    /// A dropped connection ends its server session, as a real one does
    /// (a timeout or an error path drops sessions without closing them).
    fn drop(&mut self) {
        if self.closes {
            self.close();
        }
    }
}

fn running_slave() -> mysql_async::Error {
    server_error(
        1198,
        "This operation cannot be performed as you have a running slave ''; run STOP SLAVE '' \
         first",
    )
}

fn syntax(sql: &str) -> mysql_async::Error {
    server_error(
        1064,
        format!("not a statement the simulated server knows: {sql}"),
    )
}

/// The value after `name` in a `CHANGE MASTER TO` list, unquoted.
fn setting(sql: &str, name: &str) -> Option<String> {
    let rest = &sql[sql.find(name)? + name.len()..];
    let value = rest.split(',').next()?.trim();
    Some(value.trim_matches('\'').to_string())
}

fn row(cols: &[(&str, Option<String>)]) -> Columns {
    cols.iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

/// `SHOW SLAVE STATUS`'s row, none without a source.
fn slave_status(s: &Server, now: Instant) -> Option<Columns> {
    let source = s.repl.source.as_deref()?;
    let (host, port) = source.rsplit_once(':')?;
    let yes = |b: bool| Some(if b { "Yes" } else { "No" }.to_string());
    // A receiver without its source says "Connecting", and the lag is
    // unknown (NULL), as MariaDB reports them.
    let io_state = match (s.repl.io, s.repl.connected) {
        (true, true) => "Yes",
        (true, false) => "Connecting",
        (false, _) => "No",
    };
    let lag = (s.repl.io && s.repl.connected && s.repl.sql).then(|| {
        s.relay
            .first()
            .map_or(0, |t| now.saturating_duration_since(t.committed).as_secs())
            .to_string()
    });
    let mut received = s.applied();
    for t in &s.relay {
        received.insert(t.gtid);
    }
    let (io_no, io_err) = s.repl.io_error.clone().unwrap_or((0, String::new()));
    let (sql_no, sql_err) = s.repl.sql_error.clone().unwrap_or((0, String::new()));
    Some(row(&[
        ("Master_Host", Some(host.to_string())),
        ("Master_Port", Some(port.to_string())),
        ("Slave_IO_Running", Some(io_state.to_string())),
        ("Slave_SQL_Running", yes(s.repl.sql)),
        ("Seconds_Behind_Master", lag),
        ("Last_IO_Errno", Some(io_no.to_string())),
        ("Last_IO_Error", Some(io_err)),
        ("Last_SQL_Errno", Some(sql_no.to_string())),
        ("Last_SQL_Error", Some(sql_err)),
        ("Gtid_IO_Pos", Some(received.to_string())),
    ]))
}
