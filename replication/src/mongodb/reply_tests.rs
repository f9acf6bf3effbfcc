//! Replies shaped as MongoDB's manual documents them (`replSetGetStatus`,
//! `replSetGetConfig` and `hello` reference pages, MongoDB 7/8), shared with
//! the planning tests.

use mongodb::bson::{DateTime, Document, Timestamp, doc};

use super::*;

fn ts(secs: u32, inc: u32) -> Timestamp {
    Timestamp {
        time: secs,
        increment: inc,
    }
}

fn date(secs: i64) -> DateTime {
    DateTime::from_millis(secs * 1000)
}

/// The manual's example: a primary and two secondaries, all healthy.
pub(crate) fn status_healthy() -> Document {
    doc! {
        "set": "replset",
        "date": date(1_723_763_173),
        "myState": 1,
        "term": 3_i64,
        "syncSourceHost": "",
        "syncSourceId": -1,
        "heartbeatIntervalMillis": 2000_i64,
        "majorityVoteCount": 2,
        "writeMajorityCount": 2,
        "votingMembersCount": 3,
        "writableVotingMembersCount": 3,
        "members": [
            {
                "_id": 0,
                "name": "m1.example.net:27017",
                "health": 1.0,
                "state": 1,
                "stateStr": "PRIMARY",
                "uptime": 887,
                "optime": {"ts": ts(1_723_763_173, 1), "t": 3_i64},
                "optimeDate": date(1_723_763_173),
                "syncSourceHost": "",
                "syncSourceId": -1,
                "infoMessage": "",
                "electionTime": ts(1_723_762_300, 1),
                "electionDate": date(1_723_762_300),
                "configVersion": 2,
                "configTerm": 3,
                "self": true,
                "lastHeartbeatMessage": ""
            },
            {
                "_id": 1,
                "name": "m2.example.net:27017",
                "health": 1.0,
                "state": 2,
                "stateStr": "SECONDARY",
                "uptime": 873,
                "optime": {"ts": ts(1_723_763_173, 1), "t": 3_i64},
                "optimeDurable": {"ts": ts(1_723_763_173, 1), "t": 3_i64},
                "optimeDate": date(1_723_763_173),
                "lastHeartbeat": date(1_723_763_172),
                "lastHeartbeatRecv": date(1_723_763_172),
                "pingMs": 0_i64,
                "lastHeartbeatMessage": "",
                "syncSourceHost": "m1.example.net:27017",
                "syncSourceId": 0,
                "infoMessage": "",
                "configVersion": 2,
                "configTerm": 3
            },
            {
                "_id": 2,
                "name": "m3.example.net:27017",
                "health": 1.0,
                "state": 2,
                "stateStr": "SECONDARY",
                "uptime": 873,
                "optime": {"ts": ts(1_723_763_168, 1), "t": 3_i64},
                "optimeDurable": {"ts": ts(1_723_763_168, 1), "t": 3_i64},
                "optimeDate": date(1_723_763_168),
                "lastHeartbeat": date(1_723_763_172),
                "lastHeartbeatRecv": date(1_723_763_172),
                "pingMs": 0_i64,
                "lastHeartbeatMessage": "",
                "syncSourceHost": "m1.example.net:27017",
                "syncSourceId": 0,
                "infoMessage": "",
                "configVersion": 2,
                "configTerm": 3
            }
        ],
        "ok": 1.0
    }
}

/// A member that is down, as a secondary reports it: health 0, state 8.
pub(crate) fn down_member(id: i32, name: &str) -> Document {
    doc! {
        "_id": id,
        "name": name,
        "health": 0.0,
        "state": 8,
        "stateStr": "(not reachable/healthy)",
        "uptime": 0,
        "optime": {"ts": ts(0, 0), "t": -1_i64},
        "optimeDurable": {"ts": ts(0, 0), "t": -1_i64},
        "optimeDate": date(0),
        "lastHeartbeat": date(1_723_763_300),
        "pingMs": 0_i64,
        "lastHeartbeatMessage": format!("Error connecting to {name} :: caused by :: Connection refused"),
        "syncSourceHost": "",
        "syncSourceId": -1,
        "infoMessage": "",
        "configVersion": -1,
        "configTerm": -1
    }
}

/// m2's view after m1 died: no primary, m2 and m3 secondaries.
pub(crate) fn status_primary_lost() -> Document {
    let mut s = status_healthy();
    let mut members = s.get_array("members").unwrap().clone();
    members[0] = down_member(0, "m1.example.net:27017").into();
    if let mongodb::bson::Bson::Document(m2) = &mut members[1] {
        m2.insert("self", true);
        m2.insert("syncSourceHost", "");
    }
    if let mongodb::bson::Bson::Document(m3) = &mut members[2] {
        m3.insert("syncSourceHost", "");
    }
    s.insert("members", members);
    s.insert("myState", 2);
    s
}

/// m3's view when m1 and m2 are gone: the majority is lost.
pub(crate) fn status_majority_lost() -> Document {
    let mut s = status_healthy();
    let mut members = s.get_array("members").unwrap().clone();
    members[0] = down_member(0, "m1.example.net:27017").into();
    members[1] = down_member(1, "m2.example.net:27017").into();
    if let mongodb::bson::Bson::Document(m3) = &mut members[2] {
        m3.insert("self", true);
        m3.insert("syncSourceHost", "");
    }
    s.insert("members", members);
    s.insert("myState", 2);
    s
}

/// `replSetGetConfig` as the manual shows it (MongoDB 7).
pub(crate) fn config_reply() -> Document {
    let member = |id: i32, host: &str| {
        doc! {
            "_id": id,
            "host": host,
            "arbiterOnly": false,
            "buildIndexes": true,
            "hidden": false,
            "priority": 1.0,
            "tags": {},
            "secondaryDelaySecs": 0_i64,
            "votes": 1
        }
    };
    doc! {
        "config": {
            "_id": "replset",
            "version": 2,
            "term": 3,
            "members": [
                member(0, "m1.example.net:27017"),
                member(1, "m2.example.net:27017"),
                member(2, "m3.example.net:27017"),
            ],
            "protocolVersion": 1_i64,
            "writeConcernMajorityJournalDefault": true,
            "settings": {
                "chainingAllowed": true,
                "heartbeatIntervalMillis": 2000,
                "heartbeatTimeoutSecs": 10,
                "electionTimeoutMillis": 10000,
                "catchUpTimeoutMillis": -1,
                "catchUpTakeoverDelayMillis": 30000,
                "getLastErrorModes": {},
                "getLastErrorDefaults": {"w": 1, "wtimeout": 0},
                "replicaSetId": mongodb::bson::oid::ObjectId::from_bytes([1; 12])
            }
        },
        "ok": 1.0
    }
}

/// `hello` from a primary (MongoDB 7).
pub(crate) fn hello_primary() -> Document {
    doc! {
        "topologyVersion": {"processId": mongodb::bson::oid::ObjectId::from_bytes([2; 12]), "counter": 6_i64},
        "hosts": ["m1.example.net:27017", "m2.example.net:27017", "m3.example.net:27017"],
        "setName": "replset",
        "setVersion": 2,
        "isWritablePrimary": true,
        "secondary": false,
        "primary": "m1.example.net:27017",
        "me": "m1.example.net:27017",
        "electionId": mongodb::bson::oid::ObjectId::from_bytes([3; 12]),
        "lastWrite": {
            "opTime": {"ts": ts(1_723_763_173, 1), "t": 3_i64},
            "lastWriteDate": date(1_723_763_173),
            "majorityOpTime": {"ts": ts(1_723_763_173, 1), "t": 3_i64},
            "majorityWriteDate": date(1_723_763_173)
        },
        "maxBsonObjectSize": 16_777_216,
        "maxMessageSizeBytes": 48_000_000,
        "maxWriteBatchSize": 100_000,
        "localTime": date(1_723_763_173),
        "logicalSessionTimeoutMinutes": 30,
        "connectionId": 42,
        "minWireVersion": 0,
        "maxWireVersion": 21,
        "readOnly": false,
        "ok": 1.0
    }
}

#[test]
fn reads_the_manuals_status_example() {
    let s = parse_status(&status_healthy()).unwrap();
    assert_eq!(s.set, "replset");
    assert_eq!(s.term, 3);
    assert_eq!(s.members.len(), 3);
    let p = &s.members[0];
    assert!(p.healthy && p.is_self);
    assert_eq!(p.state, "PRIMARY");
    assert_eq!(
        p.optime,
        Some(OpTime {
            term: 3,
            secs: 1_723_763_173,
            inc: 1
        })
    );
    assert_eq!(p.sync_source, None);
    assert_eq!(
        s.members[1].sync_source.as_deref(),
        Some("m1.example.net:27017")
    );
    assert_eq!(s.members[2].optime_millis, Some(1_723_763_168_000));
}

#[test]
fn reads_a_down_member() {
    let s = parse_status(&status_primary_lost()).unwrap();
    let m1 = &s.members[0];
    assert!(!m1.healthy);
    assert_eq!(m1.state, "(not reachable/healthy)");
    assert!(
        m1.message
            .as_deref()
            .unwrap()
            .contains("Connection refused")
    );
    assert!(s.members[1].is_self);
}

#[test]
fn reads_the_config() {
    let c = parse_config(&config_reply()).unwrap();
    assert_eq!(c.version, 2);
    assert_eq!(c.members.len(), 3);
    assert_eq!(c.members[2].host, "m3.example.net:27017");
    assert_eq!(c.members[0].priority, 1.0);
    assert_eq!(c.members[0].votes, 1);
    assert!(c.raw.contains_key("settings"));
}

#[test]
fn reads_hello() {
    let h = parse_hello(&hello_primary()).unwrap();
    assert!(h.writable_primary && !h.secondary);
    assert_eq!(h.me.as_deref(), Some("m1.example.net:27017"));
    assert_eq!(h.last_write.map(|o| o.secs), Some(1_723_763_173));
}

#[test]
fn an_error_reply_is_an_error() {
    let e = doc! {"ok": 0.0, "errmsg": "no replset config has been received", "code": 94, "codeName": "NotYetInitialized"};
    assert_eq!(
        parse_status(&e).unwrap_err(),
        "no replset config has been received"
    );
}
