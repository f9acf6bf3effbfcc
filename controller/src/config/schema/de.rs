//! Field deserializers whose errors say what would be valid, where serde's
//! own ("invalid socket address syntax", "expected u8") would not.

use std::fmt;
use std::net::SocketAddr;

use serde::Deserializer;
use serde::de::{self, Visitor};

struct SocketAddrVisitor;

impl Visitor<'_> for SocketAddrVisitor {
    type Value = SocketAddr;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a socket address string such as \"127.0.0.1:7400\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<SocketAddr, E> {
        v.parse().map_err(|_| {
            E::custom(format!(
                "{v:?} is not a socket address: write IP:port, e.g. \"127.0.0.1:7400\", \"0.0.0.0:7400\" or \"[::1]:7400\""
            ))
        })
    }
}

/// `deserialize_with` helper for a listen address.
pub fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    d.deserialize_str(SocketAddrVisitor)
}

/// `deserialize_with` helper for an optional listen address (with `default`).
pub fn socket_addr_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    socket_addr(d).map(Some)
}

/// `deserialize_with` helper for a region weight, 0–255.
pub fn weight<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let n: i64 = serde::Deserialize::deserialize(d)?;
    u8::try_from(n).map_err(|_| de::Error::custom(format!("weight {n} is out of range: use 0–255")))
}

/// Deserializes `T` (an internally tagged enum) from inside the table's own
/// map visitor. Serde's derive for tagged enums buffers the table and builds
/// the variant after toml has handed it over, so its errors would otherwise
/// carry the span of the enclosing value (for `[[services.checks]]`, the
/// whole array); raised in here, toml gives them this table's span.
struct InTable<T>(T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for InTable<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(InTableVisitor(std::marker::PhantomData))
    }
}

struct InTableVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: serde::Deserialize<'de>> Visitor<'de> for InTableVisitor<T> {
    type Value = InTable<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<InTable<T>, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(InTable)
    }
}

/// `deserialize_with` helper for one tagged-enum table (e.g. `[dns]`).
pub fn tagged<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <InTable<T> as serde::Deserialize>::deserialize(d).map(|t| t.0)
}

/// `deserialize_with` helper for an array of tagged-enum tables (e.g.
/// `[[services.checks]]`); combine with `default`.
pub fn tagged_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    let items: Vec<InTable<T>> = serde::Deserialize::deserialize(d)?;
    Ok(items.into_iter().map(|t| t.0).collect())
}
