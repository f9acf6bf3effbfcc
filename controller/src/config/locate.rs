//! From key paths to source positions and back, over toml's spanned tree.
//!
//! Validation works on typed data and knows nothing about the text; this
//! module is the only place that knows where in the file each value was
//! written. It answers two questions: "where is `regions[1].name`?" (for
//! validation issues) and "which key is at byte 214?" (for serde errors,
//! whose path toml does not expose).

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::path::{KeyPath, Segment};

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

/// Converts a byte offset into `src` to a line and column.
pub fn location(src: &str, offset: usize) -> Location {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &src[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Location {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

/// Looks up positions in one parsed document.
pub struct Locator<'a> {
    src: &'a str,
    root: Spanned<DeTable<'a>>,
}

impl<'a> Locator<'a> {
    /// Wraps a document that parsed without syntax errors.
    pub fn new(src: &'a str, root: Spanned<DeTable<'a>>) -> Self {
        Self { src, root }
    }

    /// The location of `span`'s start in this document.
    pub fn location(&self, span: &Range<usize>) -> Location {
        location(self.src, span.start)
    }

    /// The values along `path` from the root down, stopping at the first
    /// segment not written in the file.
    fn walk(&self, path: &KeyPath) -> Vec<&Spanned<DeValue<'a>>> {
        let mut nodes: Vec<&Spanned<DeValue<'a>>> = Vec::new();
        for segment in path.segments() {
            let next = match (nodes.last().map(|n| n.get_ref()), segment) {
                (None, Segment::Key(k)) => self.root.get_ref().get(k.as_str()),
                (Some(DeValue::Table(t)), Segment::Key(k)) => t.get(k.as_str()),
                (Some(DeValue::Array(a)), Segment::Index(i)) => a.get(*i),
                _ => None,
            };
            match next {
                Some(node) => nodes.push(node),
                None => break,
            }
        }
        nodes
    }

    /// The table at `path` if it is written in the file.
    fn table(&self, path: &KeyPath) -> Option<&DeTable<'a>> {
        if path.is_root() {
            return Some(self.root.get_ref());
        }
        let nodes = self.walk(path);
        if nodes.len() != path.segments().len() {
            return None;
        }
        match nodes.last().map(|n| n.get_ref()) {
            Some(DeValue::Table(t)) => Some(t),
            _ => None,
        }
    }

    /// The span of the value at `path`, or of its deepest ancestor written in
    /// the file (a defaulted key has no text; its table's header is the next
    /// best place to point at). A table written as `[x]` or `[[x]]` spans its
    /// header. The root yields an empty span at the start of the file.
    pub fn span_of(&self, path: &KeyPath) -> Range<usize> {
        self.walk(path).last().map_or(0..0, |n| n.span())
    }

    /// The span of the key `key` inside the table at `table_path`, if written.
    pub fn key_span(&self, table_path: &KeyPath, key: &str) -> Option<Range<usize>> {
        let table = self.table(table_path)?;
        table.get_key_value(key).map(|(k, _)| k.span())
    }

    /// The one scalar in the table at `table_path` that `message` quotes,
    /// as (key, value span). Serde errors raised inside a tagged enum (a
    /// check, the dns backend) carry only the table's span, but they quote
    /// the bad value in their first clause (`invalid duration "5"`,
    /// `integer `5``); when exactly one key holds such a value, that is the
    /// one to point at.
    pub fn quoted_value(
        &self,
        table_path: &KeyPath,
        message: &str,
    ) -> Option<(String, Range<usize>)> {
        let table = self.table(table_path)?;
        // Only the first clause quotes the value; later ones give examples.
        let message = message.split(';').next().unwrap_or_default();
        let mut found = table.iter().filter(|(_, v)| match v.get_ref() {
            DeValue::String(s) => message.contains(&format!("{:?}", s.as_ref())),
            DeValue::Integer(i) => message.contains(&format!("`{i}`")),
            DeValue::Float(f) => message.contains(&format!("`{f}`")),
            DeValue::Boolean(b) => message.contains(&format!("`{b}`")),
            _ => false,
        });
        let (key, value) = found.next()?;
        if found.next().is_some() {
            return None;
        }
        Some((key.get_ref().to_string(), value.span()))
    }

    /// The paths of the tables in the array at `path` (an array of tables
    /// such as `services[0].checks`), in order.
    pub fn array_tables(&self, path: &KeyPath) -> Vec<KeyPath> {
        let nodes = self.walk(path);
        if nodes.len() != path.segments().len() {
            return Vec::new();
        }
        match nodes.last().map(|n| n.get_ref()) {
            Some(DeValue::Array(items)) => items
                .iter()
                .enumerate()
                .filter(|(_, item)| matches!(item.get_ref(), DeValue::Table(_)))
                .map(|(i, _)| path.index(i))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// True when the value at `path` is a table written in the file.
    pub fn is_table(&self, path: &KeyPath) -> bool {
        self.table(path).is_some()
    }

    /// The path of the key or value that `span` points at: an exact match of
    /// a key's or value's span wins, otherwise the deepest one containing its
    /// start. An empty span matches only exactly (toml reports errors about
    /// the whole document with the root's empty span).
    pub fn path_at(&self, span: &Range<usize>) -> KeyPath {
        let mut finder = Finder {
            target: span.clone(),
            exact: None,
            containing: None,
        };
        finder.table(self.root.get_ref(), &mut KeyPath::root());
        finder
            .exact
            .or(if span.is_empty() {
                None
            } else {
                finder.containing
            })
            .unwrap_or_default()
    }
}

/// Depth-first search for the node at a span. Table contents are not inside
/// their header's span, so the whole tree is searched.
struct Finder {
    target: Range<usize>,
    exact: Option<KeyPath>,
    containing: Option<KeyPath>,
}

impl Finder {
    fn consider(&mut self, span: Range<usize>, path: &KeyPath) {
        let deeper = |best: &Option<KeyPath>| {
            best.as_ref()
                .is_none_or(|b| b.segments().len() <= path.segments().len())
        };
        if span == self.target {
            if deeper(&self.exact) {
                self.exact = Some(path.clone());
            }
        } else if span.start <= self.target.start
            && self.target.start < span.end
            && deeper(&self.containing)
        {
            self.containing = Some(path.clone());
        }
    }

    fn table(&mut self, table: &DeTable<'_>, path: &mut KeyPath) {
        for (key, value) in table.iter() {
            let child = path.key(key.get_ref().as_ref());
            self.consider(key.span(), &child);
            self.value(value, &child);
        }
    }

    fn value(&mut self, value: &Spanned<DeValue<'_>>, path: &KeyPath) {
        self.consider(value.span(), path);
        match value.get_ref() {
            DeValue::Table(t) => self.table(t, &mut path.clone()),
            DeValue::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    self.value(item, &path.index(i));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "cluster = \"prod\"\n\n[[regions]]\nname = \"a\"\n\n[[regions]]\nname = \"b\"\nweight = 3\n";

    fn locator(src: &str) -> Locator<'_> {
        Locator::new(src, DeTable::parse(src).expect("test document parses"))
    }

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        assert_eq!(location("ab\ncd", 0), Location { line: 1, column: 1 });
        assert_eq!(location("ab\ncd", 4), Location { line: 2, column: 2 });
        assert_eq!(location("é = 1\nx", 4), Location { line: 1, column: 4 });
        assert_eq!(location("ab", 99), Location { line: 1, column: 3 });
    }

    #[test]
    fn finds_values_by_path() {
        let l = locator(DOC);
        let span = l.span_of(&KeyPath::root().key("regions").index(1).key("name"));
        assert_eq!(l.location(&span), Location { line: 7, column: 8 });
    }

    #[test]
    fn a_missing_key_points_at_its_table_header() {
        let l = locator(DOC);
        let span = l.span_of(&KeyPath::root().key("regions").index(0).key("weight"));
        assert_eq!(&DOC[span.clone()], "[[regions]]");
        assert_eq!(l.location(&span), Location { line: 3, column: 1 });
    }

    #[test]
    fn finds_the_path_at_a_span() {
        let l = locator(DOC);
        let weight = l.span_of(&KeyPath::root().key("regions").index(1).key("weight"));
        assert_eq!(l.path_at(&weight).to_string(), "regions[1].weight");
        let header = l.span_of(&KeyPath::root().key("regions").index(1));
        assert_eq!(l.path_at(&header).to_string(), "regions[1]");
        assert!(l.path_at(&(0..0)).is_root());
    }

    #[test]
    fn finds_key_spans() {
        let l = locator(DOC);
        let span = l
            .key_span(&KeyPath::root().key("regions").index(1), "weight")
            .expect("weight is written");
        assert_eq!(&DOC[span], "weight");
        assert!(l.is_table(&KeyPath::root().key("regions").index(0)));
        assert!(!l.is_table(&KeyPath::root().key("cluster")));
    }
}
