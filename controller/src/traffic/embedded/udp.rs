//! The UDP workers: one socket per worker bound with `SO_REUSEPORT` (the
//! kernel spreads clients over them), each served by a thread of its own
//! that receives a batch with `recvmmsg`, answers what the fast path can
//! from its pre-encoded [`Answers`], sends the batch with `sendmmsg`, and
//! hands the rest to hickory ([`SlowPath`]). The syscalls come from the
//! `nix` crate; this module has no `unsafe`.
//!
//! A worker notices a weight change by the table's generation, checked
//! once per batch before answering, and re-encodes its answers then — so
//! the first query after a change already gets the new weights.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_server::net::udp::MAX_RECEIVE_BUFFER_SIZE;
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::io::{IoSlice, IoSliceMut};

use super::fast::{Answers, MAX_RESPONSE, Reply, ZoneFacts};
use super::slow::SlowPath;
use super::table::WeightTable;

/// Datagrams received (and answers sent) per syscall at most.
pub const BATCH: usize = 32;

/// How often an idle worker looks whether it should stop.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// Where the fast path's answers come from: the zone and the live weights.
#[derive(Debug, Clone)]
pub struct FastSource {
    /// The static zone.
    pub facts: Arc<ZoneFacts>,
    /// The weights, changed at run time.
    pub table: WeightTable,
}

impl FastSource {
    fn answers(&self) -> Answers {
        Answers::build(self.facts.clone(), &self.table.snapshot())
    }
}

/// Running workers; dropping this stops them (each within
/// [`STOP_CHECK`]).
#[derive(Debug)]
pub struct UdpWorkers {
    stop: Arc<AtomicBool>,
    counters: Vec<Arc<Counters>>,
    _threads: Vec<JoinHandle<()>>,
}

/// One worker's counts (its own allocation: workers never share a cache
/// line), added to once per batch.
#[derive(Debug, Default)]
struct Counters {
    fast: AtomicU64,
    slow: AtomicU64,
}

/// How many UDP queries the fast path answered and how many it handed to
/// hickory, over every worker since the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpCounts {
    /// Answered from pre-encoded answers.
    pub fast: u64,
    /// Handed to hickory.
    pub slow: u64,
}

impl UdpWorkers {
    /// The counts so far (tests check that the fast path, not hickory,
    /// answered what they compare).
    pub fn counts(&self) -> UdpCounts {
        self.counters
            .iter()
            .fold(UdpCounts::default(), |sum, c| UdpCounts {
                fast: sum.fast + c.fast.load(Ordering::Relaxed),
                slow: sum.slow + c.slow.load(Ordering::Relaxed),
            })
    }
}

impl Drop for UdpWorkers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A UDP socket on `addr` that shares its port with the other workers'.
///
/// Path MTU discovery is off for it (`IP_PMTUDISC_OMIT`, as gdnsd, NSD
/// and Knot set it): answers leave without the DF bit and the socket
/// ignores ICMP "fragmentation needed" — a spoofed one would otherwise
/// lower the path MTU an attacker then fragments answers at, the first
/// step of a fragment-injection spoof. It also spares the kernel the
/// per-answer path-MTU lookup. Kernels without `OMIT` get `DONT`.
pub fn reuseport_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    if let Err(error) = no_path_mtu_discovery(&socket, addr) {
        // A hardening, not a condition of serving (gdnsd warns too): a
        // sandbox without the option still gets answers.
        tracing::warn!(%error, %addr, "embedded DNS: cannot turn path MTU discovery off");
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn no_path_mtu_discovery(socket: &socket2::Socket, addr: SocketAddr) -> io::Result<()> {
    use rustix::net::sockopt::{
        Ipv4PathMtuDiscovery, Ipv6PathMtuDiscovery, set_ip_mtu_discover, set_ipv6_mtu_discover,
    };
    let set = match addr {
        SocketAddr::V4(_) => set_ip_mtu_discover(socket, Ipv4PathMtuDiscovery::OMIT)
            .or_else(|_| set_ip_mtu_discover(socket, Ipv4PathMtuDiscovery::DONT)),
        SocketAddr::V6(_) => {
            // A dual-stack socket answers IPv4 clients under the IPv4
            // option: set it too (refused on a v6-only socket, harmless).
            let _ = set_ip_mtu_discover(socket, Ipv4PathMtuDiscovery::OMIT);
            set_ipv6_mtu_discover(socket, Ipv6PathMtuDiscovery::OMIT)
                .or_else(|_| set_ipv6_mtu_discover(socket, Ipv6PathMtuDiscovery::DONT))
        }
    };
    set.map_err(io::Error::from)
}

/// Starts one worker thread per socket; `slow` makes each worker's
/// hickory path from a clone of its socket.
pub fn spawn(
    sockets: Vec<UdpSocket>,
    source: FastSource,
    slow: impl Fn(OwnedFd) -> SlowPath,
) -> io::Result<UdpWorkers> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::with_capacity(sockets.len());
    let mut counters = Vec::with_capacity(sockets.len());
    for (i, socket) in sockets.into_iter().enumerate() {
        socket.set_read_timeout(Some(STOP_CHECK))?;
        let slow = slow(socket.try_clone()?.into());
        let (source, stop) = (source.clone(), stop.clone());
        let counts = Arc::new(Counters::default());
        counters.push(counts.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("dns-udp-{i}"))
                .spawn(move || Worker::new(socket, source, slow, counts).run(&stop))?,
        );
    }
    Ok(UdpWorkers {
        stop,
        counters,
        _threads: threads,
    })
}

/// Whether a response may go to `src` (hickory's rule: not port 0, not
/// an unspecified or broadcast address).
fn answerable(src: &SocketAddr) -> bool {
    match src {
        SocketAddr::V4(a) => a.port() != 0 && !a.ip().is_unspecified() && !a.ip().is_broadcast(),
        SocketAddr::V6(a) => a.port() != 0 && !a.ip().is_unspecified(),
    }
}

fn to_std(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
}

struct Worker {
    socket: UdpSocket,
    source: FastSource,
    slow: SlowPath,
    counts: Arc<Counters>,
    answers: Answers,
    rng: SmallRng,
    inbox: Vec<u8>,
    outbox: Vec<u8>,
    rx: MultiHeaders<SockaddrStorage>,
    tx: MultiHeaders<SockaddrStorage>,
    /// The answered queries' sources and their answers' lengths, refilled
    /// per batch (kept here: 32 cleared addresses per batch cost more
    /// than the fast path's own work).
    to: Vec<Option<SockaddrStorage>>,
    lens: Vec<usize>,
}

impl Worker {
    fn new(socket: UdpSocket, source: FastSource, slow: SlowPath, counts: Arc<Counters>) -> Self {
        Worker {
            counts,
            answers: source.answers(),
            socket,
            source,
            slow,
            rng: SmallRng::from_os_rng(),
            inbox: vec![0; BATCH * MAX_RECEIVE_BUFFER_SIZE],
            outbox: vec![0; BATCH * MAX_RESPONSE],
            rx: MultiHeaders::preallocate(BATCH, None),
            tx: MultiHeaders::preallocate(BATCH, None),
            to: Vec::with_capacity(BATCH),
            lens: Vec::with_capacity(BATCH),
        }
    }

    fn run(mut self, stop: &AtomicBool) {
        let mut received = [(0usize, None::<SockaddrStorage>); BATCH];
        while !stop.load(Ordering::Relaxed) {
            let n = match self.receive(&mut received) {
                Ok(n) => n,
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(error) => {
                    tracing::warn!(%error, "embedded DNS: receive failed");
                    std::thread::sleep(STOP_CHECK);
                    continue;
                }
            };
            if self.source.table.generation() != self.answers.generation() {
                self.answers = self.source.answers();
            }
            self.answer_batch(&received[..n]);
        }
    }

    /// One `recvmmsg`: blocks for the first datagram, then takes what
    /// else is already queued (up to [`BATCH`]).
    fn receive(
        &mut self,
        received: &mut [(usize, Option<SockaddrStorage>); BATCH],
    ) -> Result<usize, Errno> {
        let mut slots = self.inbox.chunks_exact_mut(MAX_RECEIVE_BUFFER_SIZE);
        let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(slots.next().unwrap_or_default())]);
        let results = recvmmsg(
            self.socket.as_raw_fd(),
            &mut self.rx,
            iovs.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        )?;
        let mut n = 0;
        for (slot, msg) in received.iter_mut().zip(results) {
            *slot = (msg.bytes, msg.address);
            n += 1;
        }
        Ok(n)
    }

    fn answer_batch(&mut self, received: &[(usize, Option<SockaddrStorage>)]) {
        self.to.clear();
        self.lens.clear();
        for (i, (len, addr)) in received.iter().enumerate() {
            let Some(addr) = addr else { continue };
            let Some(src) = to_std(addr).filter(answerable) else {
                continue;
            };
            let start = i * MAX_RECEIVE_BUFFER_SIZE;
            let packet = &self.inbox[start..start + len];
            let k = self.to.len();
            let out = &mut self.outbox[k * MAX_RESPONSE..(k + 1) * MAX_RESPONSE];
            match self.answers.respond(packet, &mut self.rng, out) {
                Reply::Answer(n) => {
                    self.to.push(Some(*addr));
                    self.lens.push(n);
                }
                Reply::Slow => {
                    // Counted before it is handed on, so whoever reads an
                    // answer sees it counted (the tests tell the paths
                    // apart by these counts).
                    self.counts.slow.fetch_add(1, Ordering::Relaxed);
                    self.slow.submit(packet.to_vec(), src);
                }
            }
        }
        self.counts
            .fast
            .fetch_add(self.to.len() as u64, Ordering::Relaxed);
        self.send();
    }

    /// `sendmmsg` of the answers, retried past a datagram the kernel
    /// refuses (that one is dropped, as the network could).
    fn send(&mut self) {
        let (to, lens) = (&self.to, &self.lens);
        let mut done = 0;
        while done < to.len() {
            let mut chunks = self.outbox.chunks_exact(MAX_RESPONSE).skip(done);
            let iovs: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|i| {
                let chunk = chunks.next().unwrap_or_default();
                let len = lens.get(done + i).copied().unwrap_or(0);
                [IoSlice::new(&chunk[..len.min(chunk.len())])]
            });
            let count = to.len() - done;
            let sent = sendmmsg(
                self.socket.as_raw_fd(),
                &mut self.tx,
                iovs[..count].iter(),
                &to[done..],
                [],
                MsgFlags::empty(),
            );
            match sent {
                // The number sent: fewer than asked when the kernel
                // refused the next one.
                Ok(results) => match results.count() {
                    0 => done += 1,
                    n => done += n,
                },
                Err(Errno::EINTR) => {}
                Err(error) => {
                    tracing::debug!(%error, "embedded DNS: answer not sent");
                    done += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::net::sockopt::{
        Ipv4PathMtuDiscovery, Ipv6PathMtuDiscovery, ip_mtu_discover, ipv6_mtu_discover,
    };

    /// A spoofed "fragmentation needed" must not shrink the answers' path
    /// MTU, and answers must leave without DF: both follow from OMIT.
    #[test]
    fn worker_sockets_ignore_path_mtu_discovery() {
        let v4 = reuseport_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_eq!(ip_mtu_discover(&v4).unwrap(), Ipv4PathMtuDiscovery::OMIT);
        // IPv6 loopback may be missing in a container; test it when a
        // plain socket binds there.
        if std::net::UdpSocket::bind("[::1]:0").is_ok() {
            let v6 = reuseport_socket("[::1]:0".parse().unwrap()).unwrap();
            assert_eq!(ipv6_mtu_discover(&v6).unwrap(), Ipv6PathMtuDiscovery::OMIT);
        }
    }
}
