//! The zone handler the embedded server's catalog serves: managed names
//! are answered from the [`WeightTable`] (one record picked by weight, or
//! all of weight > 0 in weighted order), everything else — SOA, NS, glue,
//! NXDOMAIN, NODATA — by hickory's in-memory handler it wraps. hickory has
//! no weighting of its own.

use std::sync::Arc;

use hickory_server::proto::rr::{LowerName, RData, Record, RecordType, TSigResponseContext};
use hickory_server::server::{Request, RequestInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{
    AuthLookup, AxfrPolicy, LookupControlFlow, LookupError, LookupOptions, LookupRecords,
    ZoneHandler, ZoneType,
};

use super::pick;
use super::table::{NameAnswers, WeightTable};
use crate::config::AnswerMode;

/// Weighted answers for managed names over an in-memory zone.
pub struct WeightedZone {
    inner: InMemoryZoneHandler,
    table: WeightTable,
}

impl WeightedZone {
    /// Serves `inner`'s zone, answering the names of `table` by weight.
    pub fn new(inner: InMemoryZoneHandler, table: WeightTable) -> Self {
        WeightedZone { inner, table }
    }

    /// The records one query of a managed name gets (random, so two
    /// queries may differ): no `await` in here, the RNG stays on one thread.
    fn pick(answers: &NameAnswers) -> Vec<Record> {
        let mut rng = rand::rng();
        let cname = answers
            .entries
            .first()
            .is_some_and(|e| e.record.record_type() == RecordType::CNAME);
        if answers.mode == AnswerMode::All && !cname {
            pick::ordered(&answers.entries, &mut rng)
                .into_iter()
                .filter_map(|i| answers.entries.get(i))
                .map(|e| e.record.clone())
                .collect()
        } else {
            pick::one(&answers.entries, &mut rng)
                .and_then(|i| answers.entries.get(i))
                .map(|e| vec![e.record.clone()])
                .unwrap_or_default()
        }
    }

    async fn weighted(
        &self,
        qtype: RecordType,
        answers: &NameAnswers,
        options: LookupOptions,
    ) -> LookupControlFlow<AuthLookup> {
        // Every entry of a name has one type: a query of another type is
        // answered before any pick (resolvers ask A and AAAA together).
        let Some(kind) = answers.entries.first().map(|e| e.record.record_type()) else {
            // A writer record not yet pointed anywhere: the name exists.
            return LookupControlFlow::Continue(Err(LookupError::NameExists));
        };
        if qtype != kind && qtype != RecordType::ANY && kind != RecordType::CNAME {
            return LookupControlFlow::Continue(Err(LookupError::NameExists));
        }
        let mut records = Self::pick(answers);
        if records.is_empty() {
            return LookupControlFlow::Continue(Err(LookupError::NameExists));
        }
        if qtype != kind && qtype != RecordType::ANY {
            // CNAME: answer it, and follow it when the target is ours.
            if let Some(RData::CNAME(target)) = records.first().map(|r| &r.data) {
                let target = LowerName::new(&target.0);
                if self.inner.origin().zone_of(&target)
                    && let Some(Ok(more)) = self
                        .inner
                        .lookup(&target, qtype, None, options)
                        .await
                        .map_result()
                {
                    records.extend(more.iter().cloned());
                }
            }
        }
        LookupControlFlow::Continue(Ok(AuthLookup::answers(
            LookupRecords::Section(records),
            None,
        )))
    }
}

#[async_trait::async_trait]
impl ZoneHandler for WeightedZone {
    fn zone_type(&self) -> ZoneType {
        ZoneType::Primary
    }

    fn axfr_policy(&self) -> AxfrPolicy {
        AxfrPolicy::Deny
    }

    fn origin(&self) -> &LowerName {
        self.inner.origin()
    }

    async fn lookup(
        &self,
        name: &LowerName,
        rtype: RecordType,
        request_info: Option<&RequestInfo<'_>>,
        options: LookupOptions,
    ) -> LookupControlFlow<AuthLookup> {
        match self.table.get(name) {
            Some(answers) => self.weighted(rtype, &answers, options).await,
            None => self.inner.lookup(name, rtype, request_info, options).await,
        }
    }

    async fn search(
        &self,
        request: &Request,
        options: LookupOptions,
    ) -> (LookupControlFlow<AuthLookup>, Option<TSigResponseContext>) {
        let answers = match request.request_info() {
            Ok(info) if info.query.query_type() != RecordType::AXFR => self
                .table
                .get(info.query.name())
                .map(|a| (info.query.query_type(), a)),
            Ok(_) => None,
            Err(e) => return (LookupControlFlow::Break(Err(e)), None),
        };
        match answers {
            Some((qtype, answers)) => (self.weighted(qtype, &answers, options).await, None),
            None => self.inner.search(request, options).await,
        }
    }

    async fn nsec_records(
        &self,
        name: &LowerName,
        options: LookupOptions,
    ) -> LookupControlFlow<AuthLookup> {
        self.inner.nsec_records(name, options).await
    }
}

/// The handler as the catalog stores it.
pub fn shared(zone: WeightedZone) -> Arc<dyn ZoneHandler> {
    Arc::new(zone)
}
