//! Structured key paths such as `databases[0].members[1].region`.
//!
//! Validation speaks in key paths and the locator turns them into source
//! positions; keeping the path as segments (not a string) means neither side
//! has to parse the other's output.

use std::fmt;

/// One step in a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A key of a table, e.g. `members`.
    Key(String),
    /// A 0-based index into an array, e.g. the `1` of `members[1]`.
    Index(usize),
}

/// Where a value lives in the config document, from the root down.
///
/// Displays as TOML users write it: `databases[0].members[1].region`,
/// with keys that are not bare TOML keys quoted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KeyPath(Vec<Segment>);

impl KeyPath {
    /// The document root (the empty path), where top-level keys hang.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// This path extended by a table key; builds paths without string pasting.
    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.into()));
        Self(segments)
    }

    /// This path extended by an array index.
    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        Self(segments)
    }

    /// The segments from the root down, for walking a document.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// The last segment and the path to its parent; `None` for the root.
    pub fn split_last(&self) -> Option<(Segment, KeyPath)> {
        let (last, parent) = self.0.split_last()?;
        Some((last.clone(), KeyPath(parent.to_vec())))
    }

    /// True for the root path, which has no text form of its own.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

/// True when `key` can be written bare in TOML (no quotes needed).
fn is_bare(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    if is_bare(key) {
                        f.write_str(key)?;
                    } else {
                        write!(f, "{key:?}")?;
                    }
                }
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_keys_and_indexes_like_toml() {
        let p = KeyPath::root()
            .key("databases")
            .index(0)
            .key("members")
            .index(1)
            .key("region");
        assert_eq!(p.to_string(), "databases[0].members[1].region");
    }

    #[test]
    fn quotes_keys_that_are_not_bare() {
        let p = KeyPath::root().key("credentials").key("app user");
        assert_eq!(p.to_string(), "credentials.\"app user\"");
    }
}
