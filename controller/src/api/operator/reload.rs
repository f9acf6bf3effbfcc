//! Operators added, revoked or given a new token without a restart: the
//! config file and every `token_file` it names are watched, and a new
//! `[[operators]]` that loads cleanly replaces the one in use for every
//! call from then on. Only `[[operators]]` is taken from a changed config;
//! everything else still needs a restart (the log says so).
//!
//! The files are polled ([`crate::tls_reload::RELOAD_EVERY`]) by size,
//! modification time and inode, as the TLS files are. A config that does
//! not load, or a token file that cannot be read, is logged and counted
//! (`switchyard_operator_reloads_total{result="refused"}`) and the
//! operators in use stay: a typo must not lock every operator out in the
//! middle of an incident, and it must not silently keep a revoked token
//! either — the warning repeats at each change until it is fixed.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use super::auth::{OperatorBook, TokenFileError};
use crate::config::Operator;
use crate::tls_reload::{Stamp, every_reload_tick, stamp};

/// What one look at the files decides.
#[derive(Debug, PartialEq, Eq)]
pub enum Look {
    /// Nothing changed on disk.
    Unchanged,
    /// Changed, and the operators are the ones in use (the ones left out
    /// for a token file that cannot be used, and why).
    Same(Vec<String>),
    /// Changed, and the new operators are in use now: how many, and the
    /// ones left out for a token file that cannot be used, and why.
    Reloaded(usize, Vec<String>),
    /// Changed, and the new operators cannot be used: why (the ones in use
    /// stay).
    Refused(String),
}

/// Watches a config file's operators.
#[derive(Debug)]
pub struct OperatorReloader {
    config: PathBuf,
    files: Vec<PathBuf>,
    seen: Vec<Option<Stamp>>,
    current: Arc<OperatorBook>,
}

/// The config and the token files its operators name.
fn files_of(config: &std::path::Path, operators: &[Operator]) -> Vec<PathBuf> {
    std::iter::once(config.to_path_buf())
        .chain(operators.iter().filter_map(|o| o.token_file.clone()))
        .collect()
}

impl OperatorReloader {
    /// Reads `operators` (of the config at `config`) for the first time:
    /// a token file that cannot be used is an error at start-up.
    pub fn new(config: PathBuf, operators: &[Operator]) -> Result<Self, TokenFileError> {
        let book = OperatorBook::from_config(operators)?;
        let files = files_of(&config, operators);
        let seen = files.iter().map(|f| stamp(f)).collect();
        Ok(OperatorReloader {
            config,
            files,
            seen,
            current: Arc::new(book),
        })
    }

    /// The operators in use.
    pub fn current(&self) -> Arc<OperatorBook> {
        self.current.clone()
    }

    /// Looks at the files once.
    pub fn look(&mut self) -> Look {
        let now: Vec<Option<Stamp>> = self.files.iter().map(|f| stamp(f)).collect();
        if now == self.seen {
            return Look::Unchanged;
        }
        self.seen = now;
        let cfg = match crate::config::load(&self.config) {
            Ok(c) => c.config,
            Err(e) => return Look::Refused(e.to_string()),
        };
        // Token files named now are watched from now on.
        let files = files_of(&self.config, &cfg.operators);
        if files != self.files {
            self.seen = files.iter().map(|f| stamp(f)).collect();
            self.files = files;
        }
        // An operator whose token file is gone, empty or unreadable is left
        // out: deleting the file revokes the token.
        let (book, unusable) = OperatorBook::usable(&cfg.operators);
        let left_out = unusable.iter().map(ToString::to_string).collect();
        if book == *self.current {
            return Look::Same(left_out);
        }
        let n = book.len();
        self.current = Arc::new(book);
        Look::Reloaded(n, left_out)
    }

    /// Runs [`Self::look`] every [`crate::tls_reload::RELOAD_EVERY`] until `shutdown`,
    /// publishing each new set of operators on the returned channel,
    /// logging and counting (`switchyard_operator_reloads_total{result}`)
    /// what it does.
    pub fn spawn(mut self, shutdown: watch::Receiver<bool>) -> watch::Receiver<Arc<OperatorBook>> {
        let (tx, rx) = watch::channel(self.current());
        for result in ["reloaded", "refused"] {
            metrics::counter!("switchyard_operator_reloads_total", "result" => result).absolute(0);
        }
        every_reload_tick(shutdown, move || match self.look() {
            Look::Unchanged => {}
            Look::Same(left_out) => {
                warn_left_out(&left_out);
                tracing::info!(
                    config = %self.config.display(),
                    "config changed; [[operators]] unchanged (other settings need a restart)"
                );
            }
            Look::Reloaded(n, left_out) => {
                warn_left_out(&left_out);
                metrics::counter!("switchyard_operator_reloads_total", "result" => "reloaded")
                    .increment(1);
                tracing::info!(
                    config = %self.config.display(),
                    operators = n,
                    "[[operators]] reloaded: calls are checked against them from now on \
                     (other settings need a restart)"
                );
                tx.send_replace(self.current());
            }
            Look::Refused(why) => {
                metrics::counter!("switchyard_operator_reloads_total", "result" => "refused")
                    .increment(1);
                tracing::warn!(
                    error = %why,
                    "config or token files changed but cannot be used; the operators in \
                     use stay until they can"
                );
            }
        });
        rx
    }
}

/// Says which operators a reload left out, and why (their token files).
fn warn_left_out(left_out: &[String]) {
    for why in left_out {
        tracing::warn!(
            error = %why,
            "operator left out: its token file cannot be used, so its token is refused"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    /// A valid config with `operators` appended.
    fn config(operators: &str) -> String {
        format!(
            r#"cluster = "t"

[etcd]
endpoints = ["http://127.0.0.1:2379"]

[dns]
backend = "route53"
hosted_zone_id = "Z1"

[[regions]]
name = "a"
weight = 100
priority = 1

[[regions]]
name = "b"
weight = 100
priority = 2

[[controllers]]
id = "c1"
region = "a"
listen = "127.0.0.1:7401"

[[services]]
name = "api"
record = "api.example.com."
ttl = 30

[[services.endpoints]]
region = "a"
value = "192.0.2.1"
target = "10.0.0.1:80"

[[services.checks]]
kind = "tcp"
interval = "5s"
timeout = "2s"
{operators}"#
        )
    }

    fn by_hash(name: &str, role: &str, token: &str) -> String {
        format!(
            "\n[[operators]]\nname = \"{name}\"\nrole = \"{role}\"\ntoken_sha256 = \"{}\"\n",
            hex::encode(sha2::Sha256::digest(token.as_bytes()))
        )
    }

    fn allows(r: &OperatorReloader, token: &str) -> bool {
        r.current()
            .authenticate(Some(&format!("Bearer {token}")))
            .is_ok()
    }

    /// Rewrites `path` so that its stamp changes even within one clock
    /// tick (a new inode, as `mv` gives).
    fn replace(path: &std::path::Path, text: &str) {
        let tmp = path.with_extension("new");
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, path).expect("rename");
    }

    /// A revoked operator is refused after one look, a rewritten token
    /// file takes effect, and a config that does not load keeps the
    /// operators in use.
    #[test]
    fn revocations_and_new_tokens_are_taken_and_a_broken_config_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("switchyard.toml");
        let token_file = dir.path().join("otto.token");
        std::fs::write(&token_file, "otto-1").expect("token");
        let with_file = format!(
            "\n[[operators]]\nname = \"otto\"\nrole = \"operator\"\ntoken_file = \"{}\"\n",
            token_file.display()
        );
        let both = format!("{}{with_file}", by_hash("vera", "viewer", "vera-1"));
        std::fs::write(&path, config(&both)).expect("config");
        let loaded = crate::config::load(&path).expect("valid").config;
        let mut r = OperatorReloader::new(path.clone(), &loaded.operators).expect("reloader");
        assert!(allows(&r, "vera-1") && allows(&r, "otto-1"));
        assert_eq!(r.look(), Look::Unchanged);

        // vera revoked.
        replace(&path, &config(&with_file));
        assert_eq!(r.look(), Look::Reloaded(1, vec![]));
        assert!(!allows(&r, "vera-1") && allows(&r, "otto-1"));

        // otto's token rotated in its file.
        replace(&token_file, "otto-2\n");
        assert_eq!(r.look(), Look::Reloaded(1, vec![]));
        assert!(!allows(&r, "otto-1") && allows(&r, "otto-2"));

        // A config that does not load: refused, otto keeps working.
        replace(
            &path,
            &format!("{}\n[[operators]]\nname = 3\n", config(&with_file)),
        );
        assert!(matches!(r.look(), Look::Refused(_)), "{:?}", r.look());
        assert!(allows(&r, "otto-2"));

        // Fixed, with a change elsewhere only: the same operators.
        replace(&path, &config(&format!("{with_file}\n# a comment\n")));
        assert_eq!(r.look(), Look::Same(vec![]));
        assert!(allows(&r, "otto-2"));

        // otto's token file deleted: otto is left out, his token refused,
        // and the others (ada) stay in.
        let both = format!("{with_file}{}", by_hash("ada", "admin", "ada-1"));
        replace(&path, &config(&both));
        assert_eq!(r.look(), Look::Reloaded(2, vec![]));
        std::fs::remove_file(&token_file).expect("remove");
        match r.look() {
            Look::Reloaded(1, left_out) => {
                assert!(left_out[0].contains("otto"), "{left_out:?}")
            }
            other => panic!("{other:?}"),
        }
        assert!(!allows(&r, "otto-2") && allows(&r, "ada-1"));

        // Emptied, after being written back: left out again.
        std::fs::write(&token_file, "otto-3").expect("token");
        assert_eq!(r.look(), Look::Reloaded(2, vec![]));
        replace(&token_file, "\n");
        assert!(matches!(r.look(), Look::Reloaded(1, _)));
        assert!(!allows(&r, "otto-3") && allows(&r, "ada-1"));
    }
}
