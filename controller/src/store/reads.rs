//! Reads of single keys and of whole prefixes, raw or decoded from JSON.

use serde::de::DeserializeOwned;

use super::kv::{KeyValue, Range, RangeQuery};
use super::{Store, StoreError, bounded, decode};

impl Store {
    /// Reads one key with its metadata (revisions, the lease it is
    /// attached to), for callers that compare those: the primary lease
    /// reads which etcd lease its key names.
    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        bounded(self.kv.get(key)).await
    }

    /// One range read, with the revision it saw: a follower lists a prefix
    /// and watches it from the next revision, missing nothing between.
    /// One answer: for a prefix that can grow large, read in
    /// [`pages`](Store::page) instead.
    pub async fn range(&self, query: &RangeQuery) -> Result<Range, StoreError> {
        bounded(self.kv.range(query)).await
    }

    /// Reads and decodes one JSON value.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.get(key).await? {
            None => Ok(None),
            Some(kv) => decode(key, &kv.value).map(Some),
        }
    }

    /// Reads and decodes every JSON value under `prefix`, with its key
    /// (prefix removed), in key order, page by page. Strict: one value
    /// that cannot be decoded fails the read (for state whose every entry
    /// matters; the journal and history use [`Store::scan_json`]).
    pub async fn list_json<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let raw = self.scan(prefix).await?;
        let mut out = Vec::with_capacity(raw.len());
        for (key, bytes) in raw {
            let value = decode(&format!("{prefix}{key}"), &bytes)?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// The keys under `prefix` (prefix removed), e.g. drained regions.
    pub async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        // A limit of 0 is "no limit".
        self.page_keys(prefix, 0).await
    }

    /// True when `key` exists.
    pub async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.get(key).await?.is_some())
    }
}
