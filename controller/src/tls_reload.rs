//! Certificates rotated without a restart: the `[tls]` files are watched,
//! and a new set that reads and checks cleanly replaces the one in use —
//! for every handshake from then on (the server's, and the clients' next
//! connections). Connections already open keep the session they made.
//!
//! The files are polled ([`RELOAD_EVERY`]) by their size, modification
//! time and inode, which a `mv` of a new file over the old one changes; a
//! change is read in full and compared by content. A set that does not
//! load (a key that does not match its certificate yet, halfway through a
//! rotation) is logged with the file and the reason, counted, and retried
//! at the next change; the set in use stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::config::GrpcTls;
use crate::tls::GrpcTlsMaterial;

/// How often the files are looked at.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

pub(crate) fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: m.len(),
        modified: m.modified().ok(),
        inode: m.ino(),
    })
}

/// The stamps of the three files, in the order `[tls]` names them.
fn stamps(files: &[PathBuf; 3]) -> [Option<Stamp>; 3] {
    [stamp(&files[0]), stamp(&files[1]), stamp(&files[2])]
}

/// What one look at the files decides.
#[derive(Debug)]
pub enum Look {
    /// Nothing changed on disk.
    Unchanged,
    /// Changed, and the new set loads: it is [`TlsReloader::current`] now.
    Reloaded,
    /// Changed, but the same bytes (touched, or written back).
    SameContent,
    /// Changed, and the new set does not load: why (keep the old set).
    Refused(String),
}

/// Watches `cfg`'s files, starting from `initial` (already loaded).
#[derive(Debug)]
pub struct TlsReloader {
    cfg: GrpcTls,
    files: [PathBuf; 3],
    seen: [Option<Stamp>; 3],
    current: Arc<GrpcTlsMaterial>,
}

impl TlsReloader {
    /// A reloader for `cfg`, the set in use being `initial`.
    pub fn new(cfg: GrpcTls, initial: GrpcTlsMaterial) -> Self {
        let files = [
            cfg.ca_file.clone(),
            cfg.cert_file.clone(),
            cfg.key_file.clone(),
        ];
        let seen = stamps(&files);
        Self {
            cfg,
            files,
            seen,
            current: Arc::new(initial),
        }
    }

    /// The set in use.
    pub fn current(&self) -> Arc<GrpcTlsMaterial> {
        self.current.clone()
    }

    /// Looks at the files once.
    pub fn look(&mut self) -> Look {
        let now = stamps(&self.files);
        if now == self.seen {
            return Look::Unchanged;
        }
        self.seen = now;
        match GrpcTlsMaterial::load(&self.cfg) {
            Err(e) => Look::Refused(e.to_string()),
            Ok(m) if m.same_files(&self.current) => Look::SameContent,
            Ok(m) => {
                self.current = Arc::new(m);
                Look::Reloaded
            }
        }
    }

    /// Runs [`Self::look`] every [`RELOAD_EVERY`] until `shutdown`,
    /// publishing each new set on the returned channel, logging and
    /// counting (`switchyard_tls_reloads_total{result}`) what it does, and
    /// moving the expiry gauge with the set in use.
    pub fn spawn(
        mut self,
        shutdown: watch::Receiver<bool>,
    ) -> watch::Receiver<Arc<GrpcTlsMaterial>> {
        let (tx, rx) = watch::channel(self.current());
        for result in ["reloaded", "refused"] {
            metrics::counter!("switchyard_tls_reloads_total", "result" => result).absolute(0);
        }
        every_reload_tick(shutdown, move || match self.look() {
            Look::Unchanged | Look::SameContent => {}
            Look::Reloaded => {
                self.current.record_expiry();
                metrics::counter!("switchyard_tls_reloads_total", "result" => "reloaded")
                    .increment(1);
                tracing::info!(
                    cert = %self.cfg.cert_file.display(),
                    "TLS certificates reloaded: new handshakes use them"
                );
                tx.send_replace(self.current());
            }
            Look::Refused(why) => {
                metrics::counter!("switchyard_tls_reloads_total", "result" => "refused")
                    .increment(1);
                tracing::warn!(
                    error = %why,
                    "TLS files changed but cannot be used; the certificates in use stay"
                );
            }
        });
        rx
    }
}

/// Calls `look` every [`RELOAD_EVERY`] until `shutdown` turns true (the
/// first call after one interval), on a task of its own.
pub(crate) fn every_reload_tick(
    mut shutdown: watch::Receiver<bool>,
    mut look: impl FnMut() + Send + 'static,
) {
    tokio::spawn(async move {
        let mut tick = switchyard_host::time::interval(RELOAD_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            look();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_labkit::pki::TestPki;

    fn files(pki: &TestPki) -> GrpcTls {
        GrpcTls {
            ca_file: pki.ca.clone(),
            cert_file: pki.server.cert.clone(),
            key_file: pki.server.key.clone(),
        }
    }

    fn leaf_expiry(m: &GrpcTlsMaterial) -> i64 {
        m.expiry()
            .iter()
            .find(|e| e.kind == "leaf")
            .map(|e| e.not_after)
            .expect("a leaf expiry")
    }

    /// A rotated certificate is taken, one rewritten with the same bytes
    /// is not news, and a broken set is refused while the one in use
    /// stays.
    #[test]
    fn a_rotation_is_taken_and_a_broken_set_is_refused() {
        let pki = TestPki::new().expect("pki");
        let cfg = files(&pki);
        let first = GrpcTlsMaterial::load(&cfg).expect("load");
        let before = leaf_expiry(&first);
        let mut r = TlsReloader::new(cfg.clone(), first);
        assert!(matches!(r.look(), Look::Unchanged));

        // The same bytes through a new file (a new inode).
        let cert = std::fs::read(&cfg.cert_file).expect("read");
        let tmp = cfg.cert_file.with_extension("again");
        std::fs::write(&tmp, &cert).expect("write");
        std::fs::rename(&tmp, &cfg.cert_file).expect("rename");
        assert!(matches!(r.look(), Look::SameContent), "{:?}", r.look());

        // A renewal: new key and certificate, valid for longer.
        pki.renew_server(&[], Duration::from_secs(90 * 86_400))
            .expect("renew");
        assert!(matches!(r.look(), Look::Reloaded));
        assert!(leaf_expiry(&r.current()) > before + 50 * 86_400);
        let renewed = leaf_expiry(&r.current());
        assert!(renewed > before);

        // Halfway through the next rotation: a key that is not the
        // certificate's. Refused, naming the file; the set in use stays.
        let other = pki.issue("other", &[]).expect("issue");
        std::fs::copy(&other.key, &cfg.key_file).expect("copy");
        match r.look() {
            Look::Refused(why) => assert!(why.contains("tls.key_file"), "{why}"),
            other => panic!("not refused: {other:?}"),
        }
        assert_eq!(leaf_expiry(&r.current()), renewed);
        // Nothing changed since: not refused again.
        assert!(matches!(r.look(), Look::Unchanged));
    }
}
