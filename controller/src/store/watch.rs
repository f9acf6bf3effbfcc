//! Watches: every change under a prefix, in revision order.

use tokio::sync::mpsc;

use super::kv::{Revision, WatchEvent, WatchStream};
use super::{Store, StoreError};

impl Store {
    /// Every change under `prefix` from the serving member's revision
    /// on (which may be a little behind the cluster's), or from revision
    /// `from` on (inclusive) when given, in revision order; an `Err` item
    /// ends it (then read the state again and watch from that read's
    /// revision + 1). Dropping the receiver ends the watch.
    pub async fn watch(
        &self,
        prefix: &str,
        from: Option<Revision>,
    ) -> Result<WatchStream, StoreError> {
        Ok(self.kv.watch(prefix, from).await?)
    }

    /// Every value put under `prefix` from now on, in order, as (key,
    /// value), until etcd ends the watch (then an error) or the receiver
    /// is dropped. For the operator API's Watch. Deletes are left out.
    pub async fn watch_puts(
        &self,
        prefix: &str,
    ) -> Result<mpsc::Receiver<Result<(String, Vec<u8>), StoreError>>, StoreError> {
        let mut events = self.watch(prefix, None).await?;
        let (tx, rx) = mpsc::channel(64);
        crate::task::spawn(async move {
            // Dropping `events` with this task ends the watch.
            loop {
                let event = tokio::select! {
                    e = events.recv() => e,
                    () = tx.closed() => return,
                };
                let item = match event {
                    Some(Ok(WatchEvent::Put(kv))) => Ok((kv.key, kv.value)),
                    Some(Ok(WatchEvent::Delete { .. })) => continue,
                    Some(Err(e)) => Err(e.into()),
                    None => Err(StoreError::Unavailable("etcd ended the watch".into())),
                };
                let last = item.is_err();
                if tx.send(item).await.is_err() || last {
                    return;
                }
            }
        });
        Ok(rx)
    }
}
