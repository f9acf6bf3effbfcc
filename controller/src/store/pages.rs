//! Reads of a whole prefix in pages: one range read of a prefix that grew
//! (history, a journal full of finished intents) can pass gRPC's 4 MiB
//! message cap and fail every time, which for the leader's journal read
//! would mean a leader stuck while it holds the lease. Pages keep each
//! answer small whatever the prefix holds.

use serde::de::DeserializeOwned;

use super::kv::RangeQuery;
use super::{Store, StoreError, bounded, decode};

/// Keys per page: at a few hundred bytes per value, well under the cap.
pub const PAGE: i64 = 256;

/// The first key after every key under `prefix` (etcd's range end for it).
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): to the end of the key space.
    vec![0]
}

/// Which way a page reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Oldest key first.
    Forward,
    /// Newest key first.
    Backward,
}

/// One page of raw entries (key with the prefix removed, value).
#[derive(Debug, Default)]
pub struct Page {
    /// The entries, in the page's direction.
    pub entries: Vec<(String, Vec<u8>)>,
    /// True when more keys lie beyond the last one.
    pub more: bool,
}

/// Values that decoded, and the keys of those that did not.
#[derive(Debug)]
pub struct Decoded<T> {
    /// (key without prefix, value), in key order.
    pub values: Vec<(String, T)>,
    /// Keys (without prefix) whose value could not be decoded, with why.
    pub undecodable: Vec<(String, String)>,
}

impl Store {
    /// Up to `limit` entries under `prefix`, strictly after `after` going
    /// forward or strictly before `before` going backward (both without
    /// the prefix); `None` starts at the prefix's first (or last) key.
    pub async fn page(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        direction: Direction,
        limit: i64,
    ) -> Result<Page, StoreError> {
        let (from, to) = match (direction, cursor) {
            (_, None) => (None, None),
            (Direction::Forward, Some(after)) => (Some(format!("{prefix}{after}\0")), None),
            (Direction::Backward, Some(before)) => (None, Some(format!("{prefix}{before}"))),
        };
        let query = RangeQuery {
            prefix: prefix.to_string(),
            from,
            to,
            limit: usize::try_from(limit).unwrap_or(0),
            descending: direction == Direction::Backward,
            keys_only: false,
        };
        let range = bounded(self.kv.range(&query)).await?;
        let entries = range
            .kvs
            .into_iter()
            .map(|kv| (strip(prefix, &kv.key), kv.value))
            .collect();
        Ok(Page {
            entries,
            more: range.more,
        })
    }

    /// Every entry under `prefix`, in key order, read page by page.
    pub async fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .page(prefix, cursor.as_deref(), Direction::Forward, PAGE)
                .await?;
            cursor = page.entries.last().map(|(k, _)| k.clone());
            out.extend(page.entries);
            if !page.more || cursor.is_none() {
                return Ok(out);
            }
        }
    }

    /// Every JSON value under `prefix`, read in pages; a value that cannot
    /// be decoded (written by a newer version mid-upgrade, or by hand) is
    /// set aside with its key instead of failing the whole read, and
    /// counted in `switchyard_undecodable_entries_total`.
    pub async fn scan_json<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Decoded<T>, StoreError> {
        let raw = self.scan(prefix).await?;
        let mut values = Vec::with_capacity(raw.len());
        let mut undecodable = Vec::new();
        for (key, bytes) in raw {
            match decode(&key, &bytes) {
                Ok(v) => values.push((key, v)),
                Err(e) => {
                    metrics::counter!("switchyard_undecodable_entries_total", "prefix" => self.keys.section_of(prefix))
                        .increment(1);
                    undecodable.push((key, e.to_string()));
                }
            }
        }
        Ok(Decoded {
            values,
            undecodable,
        })
    }

    /// The first `limit` keys under `prefix` (prefix removed), keys only.
    pub async fn page_keys(&self, prefix: &str, limit: i64) -> Result<Vec<String>, StoreError> {
        let query = RangeQuery {
            prefix: prefix.to_string(),
            limit: usize::try_from(limit).unwrap_or(0),
            keys_only: true,
            ..RangeQuery::default()
        };
        let range = bounded(self.kv.range(&query)).await?;
        Ok(range.kvs.iter().map(|kv| strip(prefix, &kv.key)).collect())
    }

    /// How many keys lie under `prefix` (one read of a single key).
    pub async fn count(&self, prefix: &str) -> Result<i64, StoreError> {
        let query = RangeQuery {
            prefix: prefix.to_string(),
            limit: 1,
            keys_only: true,
            ..RangeQuery::default()
        };
        Ok(bounded(self.kv.range(&query)).await?.count)
    }
}

/// `key` without `prefix`.
fn strip(prefix: &str, key: &str) -> String {
    key.get(prefix.len()..).unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_end_of_a_prefix_is_its_next_key() {
        assert_eq!(prefix_end("/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end("ab"), b"ac".to_vec());
        assert_eq!(prefix_end(""), vec![0]);
    }
}
