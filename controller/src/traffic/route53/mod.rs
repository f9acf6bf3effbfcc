//! Route 53 weighted records: one record set per region (`SetIdentifier`
//! = region name) for each service, a simple record for each database's
//! writer record.
//!
//! An apply reads what the zone holds, computes the difference
//! ([`plan`]), sends it as one `ChangeBatch` (atomic in Route 53; moto's
//! is not, which the tests do not rely on) — or nothing at all when the
//! zone already holds the change — and returns once Route 53 has accepted
//! it: from then on the API answers with the new records, and Route 53
//! alone carries the change to its name servers. `GetChange` is polled in
//! the background ([`sync`]) with backoff until `INSYNC`, so the wait for
//! propagation (about a minute on the real service) never holds up the
//! leader's next step or another action. Every call is paced under
//! `max_requests_per_second` and retried with backoff ([`retry`]).
//! Weights above 255 are scaled into 0–255 ([`crate::traffic::scale`]).

pub mod client;
pub mod plan;
pub mod retry;
pub mod sync;

use std::time::Duration;

use aws_sdk_route53::Client;
use aws_sdk_route53::config::Credentials;
use aws_sdk_route53::types::{Change, ChangeBatch, ChangeStatus, ResourceRecordSet};
use tokio::time::Instant;

use self::retry::{Backoff, Pacer, classify, with_retries};
use super::records::{RecordBook, RecordSpec, canonical_name};
use super::scale::{ROUTE53_MAX, fit};
use super::{Applied, RecordState, TrafficBackend, TrafficChange, TrafficError, Weights, validate};
use crate::config::Route53;

/// Route 53's limit of records in one ChangeBatch (an UPSERT counts twice).
const BATCH_RECORDS: usize = 1000;

/// Timing of calls; the defaults suit the real API, tests shorten them.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long one apply may keep retrying throttled calls.
    pub deadline: Duration,
    /// How long the background tracker polls for `INSYNC` after the change
    /// was accepted before it gives up (and counts it).
    pub sync_deadline: Duration,
    /// The first wait between two `GetChange` polls; it doubles up to
    /// [`sync::MAX_POLL`].
    pub poll: Duration,
    /// Backoff of retried calls.
    pub backoff: Backoff,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            deadline: Duration::from_secs(60),
            sync_deadline: Duration::from_secs(120),
            poll: Duration::from_secs(2),
            backoff: Backoff {
                base: Duration::from_millis(200),
                cap: Duration::from_secs(5),
            },
        }
    }
}

/// A traffic backend over one Route 53 hosted zone.
#[derive(Debug)]
pub struct Route53Backend {
    client: Client,
    zone: String,
    book: RecordBook,
    pacer: std::sync::Arc<Pacer>,
    timing: Timing,
    syncing: sync::Syncing,
}

impl Route53Backend {
    /// A backend for `cfg`'s hosted zone with credentials from the standard
    /// AWS chain.
    pub async fn connect(cfg: &Route53, book: RecordBook) -> Self {
        let client = client::from_chain(cfg).await;
        Self::with_client(cfg, book, client)
    }

    /// A backend with fixed credentials (tests).
    pub fn with_credentials(cfg: &Route53, book: RecordBook, credentials: Credentials) -> Self {
        Self::with_client(cfg, book, client::with_credentials(cfg, credentials))
    }

    fn with_client(cfg: &Route53, book: RecordBook, client: Client) -> Self {
        Route53Backend {
            client,
            zone: cfg.hosted_zone_id.clone(),
            book,
            pacer: std::sync::Arc::new(Pacer::new(cfg.max_requests_per_second)),
            timing: Timing::default(),
            syncing: sync::Syncing::default(),
        }
    }

    /// Changes accepted and not yet seen `INSYNC`, by change id.
    pub fn syncing(&self) -> &sync::Syncing {
        &self.syncing
    }

    /// The same backend with other timing.
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// Every record set at `name` (all types and identifiers).
    async fn sets_at(
        &self,
        name: &str,
        deadline: Instant,
    ) -> Result<Vec<ResourceRecordSet>, TrafficError> {
        let mut out = Vec::new();
        let mut start: Option<(String, Option<aws_sdk_route53::types::RrType>)> =
            Some((name.to_string(), None));
        while let Some((start_name, start_type)) = start.take() {
            let page = with_retries(
                format!("ListResourceRecordSets {name}"),
                &self.pacer,
                self.timing.backoff,
                deadline,
                || {
                    let req = self
                        .client
                        .list_resource_record_sets()
                        .hosted_zone_id(&self.zone)
                        .start_record_name(&start_name)
                        .set_start_record_type(start_type.clone());
                    async move {
                        req.send()
                            .await
                            .map_err(|e| classify("ListResourceRecordSets", e))
                    }
                },
            )
            .await?;
            let mut past = false;
            for s in page.resource_record_sets() {
                if canonical_name(s.name()) == name {
                    out.push(s.clone());
                } else {
                    past = true;
                }
            }
            if page.is_truncated()
                && !past
                && let Some(next) = page.next_record_name()
                && canonical_name(next) == name
            {
                start = Some((next.to_string(), page.next_record_type().cloned()));
            }
        }
        Ok(out)
    }

    /// The changes `change` needs, reading each record first.
    async fn plan(
        &self,
        change: &TrafficChange,
        deadline: Instant,
    ) -> Result<(Vec<Change>, usize), TrafficError> {
        let mut all = Vec::new();
        let mut records = 0;
        for c in &change.records {
            let rec = self.book.weighted(&c.record)?;
            let sets = self.sets_at(&rec.name, deadline).await?;
            let weights = self.stored_weights(&c.weights);
            let changes = plan::weighted_changes(&self.zone, rec, &weights, &sets)?;
            records += usize::from(!changes.is_empty());
            all.extend(changes);
        }
        for w in &change.writers {
            let rec = self.book.writer(&w.record)?;
            let target = rec.members.get(&w.member).ok_or_else(|| {
                TrafficError::Refused(format!("{}: unknown member {:?}", w.record, w.member))
            })?;
            let sets = self.sets_at(&rec.name, deadline).await?;
            let changes = plan::writer_changes(&self.zone, rec, target, &sets)?;
            records += usize::from(!changes.is_empty());
            all.extend(changes);
        }
        Ok((all, records))
    }

    /// Sends one batch; once Route 53 accepts it, tracks it to `INSYNC`
    /// in the background.
    async fn send(&self, changes: Vec<Change>, deadline: Instant) -> Result<(), TrafficError> {
        if changes.len() * 2 > BATCH_RECORDS {
            return Err(TrafficError::Refused(format!(
                "{} record changes do not fit one Route 53 ChangeBatch (at most {} UPSERTs): \
                 split the plan",
                changes.len(),
                BATCH_RECORDS / 2
            )));
        }
        let batch = ChangeBatch::builder()
            .comment("switchyard")
            .set_changes(Some(changes))
            .build()
            .map_err(|e| TrafficError::Refused(format!("cannot build the ChangeBatch: {e}")))?;
        let out = with_retries(
            format!("ChangeResourceRecordSets {}", self.zone),
            &self.pacer,
            self.timing.backoff,
            deadline,
            || {
                let req = self
                    .client
                    .change_resource_record_sets()
                    .hosted_zone_id(&self.zone)
                    .change_batch(batch.clone());
                async move {
                    req.send()
                        .await
                        .map_err(|e| classify("ChangeResourceRecordSets", e))
                }
            },
        )
        .await?;
        let Some(info) = out.change_info() else {
            return Err(TrafficError::Unavailable(
                "ChangeResourceRecordSets answered without ChangeInfo".into(),
            ));
        };
        if *info.status() != ChangeStatus::Insync {
            self.syncing.track(
                self.client.clone(),
                self.pacer.clone(),
                self.timing,
                info.id().to_string(),
            );
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl TrafficBackend for Route53Backend {
    async fn read(&self, record: &str) -> Result<RecordState, TrafficError> {
        let deadline = switchyard_host::time::now() + self.timing.deadline;
        match self.book.get(record) {
            Some(RecordSpec::Weighted(rec)) => {
                let sets = self.sets_at(&rec.name, deadline).await?;
                Ok(plan::read_weighted(rec, &sets))
            }
            Some(RecordSpec::Writer(rec)) => {
                let sets = self.sets_at(&rec.name, deadline).await?;
                Ok(plan::read_writer(rec, &sets))
            }
            None => Err(TrafficError::Refused(format!(
                "{record} is not a service record or writer record of the config"
            ))),
        }
    }

    async fn apply_change(&self, change: &TrafficChange) -> Result<Applied, TrafficError> {
        validate(change)?;
        self.book.check(change)?;
        let deadline = switchyard_host::time::now() + self.timing.deadline;
        let (changes, records) = self.plan(change, deadline).await?;
        if changes.is_empty() {
            return Ok(Applied { changed: 0 });
        }
        tracing::info!(zone = %self.zone, changes = changes.len(), "sending one Route 53 ChangeBatch");
        self.send(changes, deadline).await?;
        Ok(Applied { changed: records })
    }

    fn stored_weights(&self, weights: &Weights) -> Weights {
        fit(weights, ROUTE53_MAX)
    }
}
