//! Walking two maps sorted by the same string key together: one merge per
//! record is much cheaper than a look-up (a string compare per tree level)
//! for each of thousands of keys per decision.

use std::cmp::Ordering;
use std::collections::btree_map;
use std::iter::Peekable;

/// A cursor over a `BTreeMap<String, V>` that is asked for keys in
/// ascending order.
pub(crate) struct SortedCursor<'a, V> {
    iter: Option<Peekable<btree_map::Iter<'a, String, V>>>,
}

impl<'a, V> SortedCursor<'a, V> {
    /// A cursor at the start of `map` (or over nothing).
    pub(crate) fn new(map: Option<&'a std::collections::BTreeMap<String, V>>) -> Self {
        Self {
            iter: map.map(|m| m.iter().peekable()),
        }
    }

    /// The value at `key`, skipping smaller keys. Keys must be asked for in
    /// ascending order; a key asked for twice is still found.
    pub(crate) fn seek(&mut self, key: &str) -> Option<&'a V> {
        let iter = self.iter.as_mut()?;
        while let Some((k, v)) = iter.peek() {
            match k.as_str().cmp(key) {
                Ordering::Less => {
                    iter.next();
                }
                Ordering::Equal => return Some(*v),
                Ordering::Greater => return None,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::SortedCursor;

    #[test]
    fn seeks_in_order_and_misses_absent_keys() {
        let map: BTreeMap<String, u32> = [("b", 2), ("d", 4), ("f", 6)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let mut c = SortedCursor::new(Some(&map));
        assert_eq!(c.seek("a"), None);
        assert_eq!(c.seek("b"), Some(&2));
        assert_eq!(c.seek("b"), Some(&2));
        assert_eq!(c.seek("c"), None);
        assert_eq!(c.seek("f"), Some(&6));
        assert_eq!(c.seek("g"), None);
        assert_eq!(SortedCursor::<u32>::new(None).seek("b"), None);
    }
}
