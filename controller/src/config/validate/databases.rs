//! Databases, their members and the credentials they refer to, plus the
//! fencing warning: a region with promotable members but no controller.

use super::services::{timing, zone_member};
use super::{Validator, names, syntax};
use crate::config::path::KeyPath;
use crate::config::schema::{Database, DatabaseKind, Promotion};

pub(super) fn check(v: &mut Validator<'_>) {
    let path = KeyPath::root().key("databases");
    for (i, db) in v.config.databases.iter().enumerate() {
        one(v, &path.index(i), db);
    }
    let dbs = &v.config.databases;
    v.unique(
        "database name",
        None,
        dbs.iter().enumerate().map(|(i, d)| {
            (
                path.index(i).key("name"),
                d.name.clone(),
                format!("{:?}", d.name),
            )
        }),
    );
    v.unique(
        "writer record",
        Some("each database needs a writer record of its own"),
        dbs.iter().enumerate().filter_map(|(i, d)| {
            let w = d.writer_record.as_ref()?;
            Some((
                path.index(i).key("writer_record"),
                w.to_ascii_lowercase(),
                format!("{w:?}"),
            ))
        }),
    );
    credentials(v);
    fencing(v);
}

fn one(v: &mut Validator<'_>, at: &KeyPath, db: &Database) {
    v.check(at.key("name"), syntax::name(&db.name));
    if let Some(writer) = &db.writer_record {
        let path = at.key("writer_record");
        v.check(path.clone(), syntax::fqdn(writer));
        zone_member(v, path.clone(), writer);
        if let Some(s) = v
            .config
            .services
            .iter()
            .find(|s| s.record.eq_ignore_ascii_case(writer))
        {
            v.error(
                path,
                format!("{writer:?} is also the record of service {:?}; a writer record needs a name of its own", s.name),
            );
        }
    }
    if db.allow_data_loss && db.kind != DatabaseKind::Mongodb {
        v.warning(
            at.key("allow_data_loss"),
            format!(
                "allow_data_loss only affects mongodb; it is ignored for {}",
                db.kind
            ),
        );
    }
    if db.dead_man {
        dead_man(v, at, db);
    }
    if let Some(name) = &db.credentials {
        credential_ref(v, at.key("credentials"), name);
    }
    if let Some(name) = &db.replication_credentials {
        credential_ref(v, at.key("replication_credentials"), name);
    }
    timing(v, &at.key("check"), db.check.interval, db.check.timeout);
    members(v, at, db);
}

/// The dead-man switch: MariaDB only (MySQL 8 has no
/// `information_schema.GLOBAL_STATUS` for its restart evidence, and its
/// `super_read_only` stops the event's own note), and a primary lease
/// long enough that the renewals, once a second, keep well ahead of the
/// deadline (`P − P/4 − 1.5 s − P/8` must leave two seconds).
fn dead_man(v: &mut Validator<'_>, at: &KeyPath, db: &Database) {
    match db.kind {
        DatabaseKind::Mariadb => {}
        DatabaseKind::Mongodb => {
            v.error(
                at.key("dead_man"),
                "dead_man applies to mariadb; a MongoDB primary steps down by itself once it \
                 cannot see a majority"
                    .to_string(),
            );
        }
        DatabaseKind::Mysql => {
            v.error(
                at.key("dead_man"),
                "dead_man is built for mariadb only so far; on mysql, fence with the isolation \
                 loop alone (dead_man = false)"
                    .to_string(),
            );
        }
    }
    let p = v.config.etcd.primary_lease_ttl();
    if p < MIN_DEAD_MAN_LEASE {
        v.error(
            at.key("dead_man"),
            format!(
                "dead_man needs etcd.primary_lease_ttl of at least {}s (it is {}s): the switch \
                 must be renewed well before it fires, once a second",
                MIN_DEAD_MAN_LEASE.as_secs(),
                p.as_secs()
            ),
        );
    }
}

/// The shortest primary lease the dead-man switch works with.
const MIN_DEAD_MAN_LEASE: std::time::Duration = std::time::Duration::from_secs(6);

fn members(v: &mut Validator<'_>, at: &KeyPath, db: &Database) {
    let path = at.key("members");
    if db.members.is_empty() {
        v.error(
            path,
            "the database has no members: add a [[databases.members]] per server, with id, region and address",
        );
        return;
    }
    for (j, m) in db.members.iter().enumerate() {
        let mp = path.index(j);
        v.check(mp.key("id"), syntax::name(&m.id));
        v.region_ref(mp.key("region"), &m.region);
        v.check(mp.key("address"), syntax::host_port(&m.address));
        match &m.credentials {
            Some(name) => credential_ref(v, mp.key("credentials"), name),
            None if db.credentials.is_none() => {
                v.error(
                    mp.key("credentials"),
                    format!(
                        "member {:?} has no credentials: set credentials on the database (the default for its members) or on the member",
                        m.id
                    ),
                );
            }
            None => {}
        }
    }
    v.unique(
        "member id",
        None,
        db.members
            .iter()
            .enumerate()
            .map(|(j, m)| (path.index(j).key("id"), m.id.clone(), format!("{:?}", m.id))),
    );
    v.unique(
        "member address",
        Some("two members at one address are the same server"),
        db.members.iter().enumerate().map(|(j, m)| {
            (
                path.index(j).key("address"),
                m.address.to_ascii_lowercase(),
                format!("{:?}", m.address),
            )
        }),
    );
    if db.members.iter().all(|m| m.promotion == Promotion::MustNot) {
        v.error(
            path.index(0).key("promotion"),
            "every member is must_not, so no member could ever become primary: make at least one prefer or neutral",
        );
    } else if db.members.len() == 1 {
        v.warning(
            path,
            "the database has a single member: there is nothing to fail over to",
        );
    }
}

/// Reports `name` (at `path`) when no `[credentials.<name>]` defines it.
pub(super) fn credential_ref(v: &mut Validator<'_>, path: KeyPath, name: &str) {
    if v.config.credentials.contains_key(name) {
        return;
    }
    let defined = names(v.config.credentials.keys().map(String::as_str));
    let message = if defined.is_empty() {
        format!(
            "credentials {name:?} are not defined; no credentials are defined (add a [credentials.{name}] table with user and password)"
        )
    } else {
        format!("credentials {name:?} are not defined; defined credentials: {defined}")
    };
    v.error(path, message);
}

fn credentials(v: &mut Validator<'_>) {
    let path = KeyPath::root().key("credentials");
    for (name, creds) in &v.config.credentials {
        let at = path.key(name.as_str());
        v.check(at.clone(), syntax::name(name));
        if creds.user.is_empty() {
            v.error(at.key("user"), "user must not be empty");
        }
        v.check(at.key("password"), creds.password.check_shape());
        let used = v.config.etcd.credentials.as_deref() == Some(name)
            || v.config.databases.iter().any(|db| {
                db.credentials.as_deref() == Some(name)
                    || db.replication_credentials.as_deref() == Some(name)
                    || db
                        .members
                        .iter()
                        .any(|m| m.credentials.as_deref() == Some(name))
            });
        if !used {
            v.warning(
                at,
                format!("credentials {name:?} are not used by any database"),
            );
        }
    }
}

/// A region that could hold the primary must have a controller of its own:
/// when the region is cut off, only a local controller can fence it.
fn fencing(v: &mut Validator<'_>) {
    let mut warned: Vec<&str> = Vec::new();
    for (i, db) in v.config.databases.iter().enumerate() {
        for (j, m) in db.members.iter().enumerate() {
            let region = m.region.as_str();
            if m.promotion == Promotion::MustNot
                || warned.contains(&region)
                || v.config.region(region).is_none()
                || v.config.controllers.iter().any(|c| c.region == region)
            {
                continue;
            }
            warned.push(region);
            let path = KeyPath::root()
                .key("databases")
                .index(i)
                .key("members")
                .index(j)
                .key("region");
            v.warning(
                path,
                format!(
                    "region {region:?} holds promotable members (first: {:?} of database {:?}) but no controller: nothing there could fence its own primary when the region is cut off",
                    m.id, db.name
                ),
            )
            .set_hint(format!(
                "add a [[controllers]] entry with region = {region:?}, or set promotion = \"must_not\" on its members"
            ));
        }
    }
}
