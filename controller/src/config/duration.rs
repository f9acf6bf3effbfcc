//! Durations written as humans write them: `"500ms"`, `"10m"`, `"1h 30m"`.
//!
//! Config fields hold plain [`std::time::Duration`]s so the rest of the
//! system never sees this module; serde reaches it through
//! `#[serde(deserialize_with = ...)]`.

use std::fmt;
use std::time::Duration;

use serde::Deserializer;
use serde::de::{self, Visitor};

/// The forms a duration may take, repeated in every duration error so the
/// reader can fix the value without opening the docs.
pub const ACCEPTED_FORMS: &str = "write a number and a unit, e.g. \"500ms\", \"5s\", \"10m\", \"1h 30m\" (units: ms, s, m, h, d)";

/// Parses a duration string, with an error that names the accepted forms.
pub fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration {text:?}: {e}; {ACCEPTED_FORMS}"))
}

/// Formats a duration the way the config accepts it back (`1h 30m`), for
/// summaries and messages.
pub fn format(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a duration string; {ACCEPTED_FORMS}")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(E::custom)
    }
}

/// `deserialize_with` helper for a required or defaulted duration field.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_str(DurationVisitor)
}

/// `deserialize_with` helper for an optional duration field
/// (combine with `#[serde(default)]`).
pub fn deserialize_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(2 * 86400)));
    }

    #[test]
    fn rejects_a_bare_number_and_names_the_accepted_forms() {
        let err = parse("5").unwrap_err();
        assert!(err.contains("invalid duration \"5\""), "{err}");
        assert!(err.contains("\"1h 30m\""), "{err}");
    }

    #[test]
    fn rejects_unknown_units() {
        let err = parse("5 fortnights").unwrap_err();
        assert!(err.contains("fortnights"), "{err}");
        assert!(err.contains("units: ms, s, m, h, d"), "{err}");
    }

    #[test]
    fn formats_back_into_an_accepted_form() {
        let d = Duration::from_secs(5400);
        assert_eq!(parse(&format(d)), Ok(d));
        assert_eq!(format(d), "1h 30m");
    }
}
