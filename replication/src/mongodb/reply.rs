//! Reading MongoDB's replies (`replSetGetStatus`, `replSetGetConfig`,
//! `hello`), pure. Numbers are read whatever BSON type carries them, as
//! servers and versions differ (`Int32`, `Int64`, `Double`).

use mongodb::bson::{Bson, Document};

use crate::gtid::OpTime;

/// One entry of `replSetGetStatus.members`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusMember {
    /// `_id`, matching the config's member `_id`.
    pub id: i64,
    /// `name`: `host:port`.
    pub name: String,
    /// `health`: 1 up, 0 down (as the answering member sees it).
    pub healthy: bool,
    /// `stateStr`: `PRIMARY`, `SECONDARY`, `ARBITER`, `(not reachable/healthy)`, …
    pub state: String,
    /// `optime` (`{ts, t}`); absent for arbiters.
    pub optime: Option<OpTime>,
    /// `optimeDate` in milliseconds since the epoch.
    pub optime_millis: Option<i64>,
    /// `syncSourceHost` (empty when none).
    pub sync_source: Option<String>,
    /// `self`: the answering member.
    pub is_self: bool,
    /// `lastHeartbeatMessage`, when not empty.
    pub message: Option<String>,
}

/// The parts of `replSetGetStatus` the adapter uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// `set`: the replica set name.
    pub set: String,
    /// `term`.
    pub term: i64,
    /// `members`.
    pub members: Vec<StatusMember>,
}

/// One entry of the config's `members`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigMember {
    /// `_id`.
    pub id: i64,
    /// `host`.
    pub host: String,
    /// `priority` (0–1000; 0 never becomes primary).
    pub priority: f64,
    /// `votes` (0 or 1).
    pub votes: i64,
    /// `arbiterOnly`.
    pub arbiter: bool,
    /// `hidden`.
    pub hidden: bool,
    /// `secondaryDelaySecs` (or `slaveDelay` before 5.0).
    pub delay_secs: i64,
}

/// The replica set configuration, parsed and raw (reconfigs edit the raw
/// document so that settings this adapter does not know are kept).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `version`.
    pub version: i64,
    /// `members`.
    pub members: Vec<ConfigMember>,
    /// The whole `config` document as the server sent it.
    pub raw: Document,
}

/// The parts of `hello` the adapter uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Hello {
    /// `isWritablePrimary` (`ismaster` on old servers).
    pub writable_primary: bool,
    /// `secondary`.
    pub secondary: bool,
    /// `primary`: who it thinks is primary.
    pub primary: Option<String>,
    /// `me`.
    pub me: Option<String>,
    /// `lastWrite.opTime`.
    pub last_write: Option<OpTime>,
}

/// A number of any BSON numeric type.
pub fn number(v: Option<&Bson>) -> Option<f64> {
    match v? {
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(d) => Some(*d),
        _ => None,
    }
}

fn int(d: &Document, k: &str) -> Option<i64> {
    number(d.get(k)).map(|n| n as i64)
}

fn text(d: &Document, k: &str) -> Option<String> {
    match d.get(k)? {
        Bson::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn boolean(d: &Document, k: &str) -> bool {
    matches!(d.get(k), Some(Bson::Boolean(true)))
}

/// Reads `{ts: Timestamp, t: term}`.
pub fn optime(v: Option<&Bson>) -> Option<OpTime> {
    let d = match v? {
        Bson::Document(d) => d,
        _ => return None,
    };
    let ts = match d.get("ts")? {
        Bson::Timestamp(ts) => *ts,
        _ => return None,
    };
    Some(OpTime {
        term: int(d, "t").unwrap_or(-1),
        secs: ts.time,
        inc: ts.increment,
    })
}

fn ok(reply: &Document) -> Result<(), String> {
    match number(reply.get("ok")) {
        Some(n) if n >= 1.0 => Ok(()),
        _ => Err(text(reply, "errmsg").unwrap_or_else(|| "ok is not 1".into())),
    }
}

/// Reads a `replSetGetStatus` reply.
pub fn parse_status(reply: &Document) -> Result<Status, String> {
    ok(reply)?;
    let members = match reply.get("members") {
        Some(Bson::Array(a)) => a,
        _ => return Err("no members array".into()),
    };
    let mut out = Vec::new();
    for m in members {
        let Bson::Document(m) = m else {
            return Err("a member is not a document".into());
        };
        out.push(StatusMember {
            id: int(m, "_id").ok_or("member without _id")?,
            name: text(m, "name").ok_or("member without name")?,
            healthy: number(m.get("health")) == Some(1.0),
            state: text(m, "stateStr").unwrap_or_else(|| "UNKNOWN".into()),
            optime: optime(m.get("optime")),
            optime_millis: match m.get("optimeDate") {
                Some(Bson::DateTime(d)) => Some(d.timestamp_millis()),
                _ => None,
            },
            sync_source: text(m, "syncSourceHost"),
            is_self: boolean(m, "self"),
            message: text(m, "lastHeartbeatMessage").or_else(|| text(m, "infoMessage")),
        });
    }
    Ok(Status {
        set: text(reply, "set").unwrap_or_default(),
        term: int(reply, "term").unwrap_or(-1),
        members: out,
    })
}

/// Reads a `replSetGetConfig` reply (`{config: {...}, ok: 1}`).
pub fn parse_config(reply: &Document) -> Result<Config, String> {
    ok(reply)?;
    let raw = match reply.get("config") {
        Some(Bson::Document(d)) => d.clone(),
        _ => return Err("no config document".into()),
    };
    let members = match raw.get("members") {
        Some(Bson::Array(a)) => a,
        _ => return Err("config without members".into()),
    };
    let mut out = Vec::new();
    for m in members {
        let Bson::Document(m) = m else {
            return Err("a config member is not a document".into());
        };
        out.push(ConfigMember {
            id: int(m, "_id").ok_or("config member without _id")?,
            host: text(m, "host").ok_or("config member without host")?,
            priority: number(m.get("priority")).unwrap_or(1.0),
            votes: int(m, "votes").unwrap_or(1),
            arbiter: boolean(m, "arbiterOnly"),
            hidden: boolean(m, "hidden"),
            delay_secs: int(m, "secondaryDelaySecs")
                .or_else(|| int(m, "slaveDelay"))
                .unwrap_or(0),
        });
    }
    Ok(Config {
        version: int(&raw, "version").ok_or("config without version")?,
        members: out,
        raw,
    })
}

/// Reads a `hello` reply.
pub fn parse_hello(reply: &Document) -> Result<Hello, String> {
    ok(reply)?;
    let last_write = match reply.get("lastWrite") {
        Some(Bson::Document(lw)) => optime(lw.get("opTime")),
        _ => None,
    };
    Ok(Hello {
        writable_primary: boolean(reply, "isWritablePrimary") || boolean(reply, "ismaster"),
        secondary: boolean(reply, "secondary"),
        primary: text(reply, "primary"),
        me: text(reply, "me"),
        last_write,
    })
}

#[cfg(test)]
#[path = "reply_tests.rs"]
pub(crate) mod tests;
