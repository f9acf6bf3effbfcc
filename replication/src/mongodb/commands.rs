//! The MongoDB command documents the adapter sends, as pure functions so
//! that their exact shape is unit-tested (no MongoDB server runs here).
//! Every command runs on the `admin` database.

use mongodb::bson::{Document, doc};

/// `{hello: 1}`: is this member the writable primary (MongoDB 4.4.2+;
/// `isMaster` before).
pub fn hello() -> Document {
    doc! { "hello": 1 }
}

/// `{replSetGetStatus: 1}`: every member's health, state and optime as the
/// answering member sees them.
pub fn get_status() -> Document {
    doc! { "replSetGetStatus": 1 }
}

/// `{replSetGetConfig: 1}`: the replica set configuration (members,
/// priorities, votes, version).
pub fn get_config() -> Document {
    doc! { "replSetGetConfig": 1 }
}

/// `{replSetReconfig: config, force}`. Without force it must run on the
/// primary and a majority must install it; with force it runs on any
/// member and may roll back majority-committed writes.
pub fn reconfig(config: Document, force: bool) -> Document {
    doc! { "replSetReconfig": config, "force": force }
}

/// `{replSetStepDown: secs, secondaryCatchUpPeriodSecs: catch_up}`: the
/// primary waits up to `catch_up` seconds for an electable secondary to
/// catch up, then steps down and is not electable for `secs` seconds
/// (`secs` must exceed `catch_up`).
pub fn step_down(secs: u64, catch_up: u64) -> Document {
    let secs = secs.max(catch_up + 1);
    doc! {
        "replSetStepDown": secs as i64,
        "secondaryCatchUpPeriodSecs": catch_up as i64,
    }
}

/// `{replSetFreeze: secs}`: a secondary does not seek election for `secs`
/// seconds (0 unfreezes).
pub fn freeze(secs: u64) -> Document {
    doc! { "replSetFreeze": secs as i64 }
}

/// `{replSetSyncFrom: host}`: a secondary replicates from `host` for now
/// (MongoDB may choose another source later on its own).
pub fn sync_from(host: &str) -> Document {
    doc! { "replSetSyncFrom": host }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_shaped_as_the_manual_documents() {
        assert_eq!(hello(), doc! {"hello": 1});
        assert_eq!(get_status(), doc! {"replSetGetStatus": 1});
        assert_eq!(get_config(), doc! {"replSetGetConfig": 1});
        assert_eq!(freeze(120), doc! {"replSetFreeze": 120_i64});
        assert_eq!(
            sync_from("m2.example.net:27017"),
            doc! {"replSetSyncFrom": "m2.example.net:27017"}
        );
        let cfg = doc! {"_id": "rs0", "version": 3};
        assert_eq!(
            reconfig(cfg.clone(), true),
            doc! {"replSetReconfig": cfg, "force": true}
        );
        // The command's first key is its name: order matters on the wire.
        assert_eq!(
            reconfig(doc! {}, false).keys().next().map(String::as_str),
            Some("replSetReconfig")
        );
    }

    #[test]
    fn step_down_period_always_exceeds_catch_up() {
        assert_eq!(
            step_down(60, 10),
            doc! {"replSetStepDown": 60_i64, "secondaryCatchUpPeriodSecs": 10_i64}
        );
        // The server rejects secs <= catch-up; the builder never sends that.
        assert_eq!(
            step_down(5, 10),
            doc! {"replSetStepDown": 11_i64, "secondaryCatchUpPeriodSecs": 10_i64}
        );
    }
}
