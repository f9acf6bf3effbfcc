//! The cluster's shape: its name, etcd, regions and controllers.

use std::time::Duration;

use super::{Validator, syntax};
use crate::config::path::KeyPath;

pub(super) fn check(v: &mut Validator<'_>) {
    let root = KeyPath::root();
    v.check(root.key("cluster"), syntax::name(&v.config.cluster));
    etcd(v);
    regions(v);
    witnesses(v);
    controllers(v);
}

fn etcd(v: &mut Validator<'_>) {
    let etcd = &v.config.etcd;
    let path = KeyPath::root().key("etcd");
    if etcd.endpoints.is_empty() {
        v.error(
            path.key("endpoints"),
            "no etcd endpoint: list at least one client URL, e.g. endpoints = [\"https://etcd-1.internal:2379\"]",
        );
    }
    for (i, endpoint) in etcd.endpoints.iter().enumerate() {
        v.check(path.key("endpoints").index(i), syntax::url(endpoint, true));
    }
    if let Some(tls) = &etcd.tls {
        let tls_path = path.key("tls");
        match (&tls.cert_file, &tls.key_file) {
            (Some(_), None) => {
                v.error(
                    tls_path.key("cert_file"),
                    "cert_file is set but key_file is not: mutual TLS needs both",
                );
            }
            (None, Some(_)) => {
                v.error(
                    tls_path.key("key_file"),
                    "key_file is set but cert_file is not: mutual TLS needs both",
                );
            }
            _ => {}
        }
        if let Some(i) = etcd.endpoints.iter().position(|e| e.starts_with("http://")) {
            v.error(
                path.key("endpoints").index(i),
                "[etcd.tls] is set but this endpoint uses http://; write https://",
            );
        }
    }
    if etcd.tls.is_none()
        && let Some(i) = etcd
            .endpoints
            .iter()
            .position(|e| e.starts_with("https://"))
    {
        v.error(
            path.key("endpoints").index(i),
            "this endpoint uses https:// but [etcd.tls] is not set: add it with ca_file (the CA \
             that signed etcd's certificates), and cert_file/key_file if etcd asks for client \
             certificates",
        );
    }
    if let Some(name) = &etcd.credentials {
        super::databases::credential_ref(v, path.key("credentials"), name);
    }
    let ttl = etcd.lease_ttl;
    if ttl < Duration::from_secs(1) || ttl.subsec_nanos() != 0 {
        v.error(
            path.key("lease_ttl"),
            "etcd grants leases in whole seconds: use a whole number of seconds, at least 1s (2s–5s is typical)",
        );
    }
    if let Some(p) = etcd.primary_lease_ttl {
        if p < Duration::from_secs(2) || p.subsec_nanos() != 0 {
            v.error(
                path.key("primary_lease_ttl"),
                "use a whole number of seconds (etcd grants leases in seconds), at least 2s: an \
                 isolated controller must notice and fence within it (default: twice lease_ttl, \
                 at least 4s)",
            );
        } else if p < ttl {
            v.error(
                path.key("primary_lease_ttl"),
                format!(
                    "primary_lease_ttl ({}s) is shorter than lease_ttl ({}s): a change of leader \
                     alone could let a primary lease lapse unseen; use at least lease_ttl \
                     (default twice it)",
                    p.as_secs(),
                    ttl.as_secs()
                ),
            );
        }
    }
}

fn regions(v: &mut Validator<'_>) {
    let regions = &v.config.regions;
    let path = KeyPath::root().key("regions");
    if regions.is_empty() {
        v.error(
            path.clone(),
            "no regions are declared: add a [[regions]] entry per region, with name, weight and priority",
        );
        return;
    }
    for (i, region) in regions.iter().enumerate() {
        v.check(path.index(i).key("name"), syntax::name(&region.name));
    }
    v.unique(
        "region name",
        None,
        regions.iter().enumerate().map(|(i, r)| {
            (
                path.index(i).key("name"),
                r.name.clone(),
                format!("{:?}", r.name),
            )
        }),
    );
    v.unique(
        "region priority",
        Some("priority orders regions for promotion and failback, so each region needs its own"),
        regions.iter().enumerate().map(|(i, r)| {
            (
                path.index(i).key("priority"),
                r.priority.to_string(),
                r.priority.to_string(),
            )
        }),
    );
    if regions.iter().all(|r| r.weight == 0) {
        v.error(
            path.index(0).key("weight"),
            "every region has weight 0, so no region would ever receive traffic: give at least one region a weight above 0",
        );
    }
}

/// Witnesses: valid, unique names that are not also region names (a
/// report names its vantage, and one name must mean one probe place).
fn witnesses(v: &mut Validator<'_>) {
    let path = KeyPath::root().key("witnesses");
    for (i, w) in v.config.witnesses.iter().enumerate() {
        let at = path.index(i).key("name");
        v.check(at.clone(), syntax::name(&w.name));
        if v.config.region(&w.name).is_some() {
            v.error(
                at,
                format!(
                    "witness {:?} has the name of a region: a witness is a vantage of its own, \
                     in a third place; give it a name no region uses",
                    w.name
                ),
            );
        }
    }
    let witnesses = &v.config.witnesses;
    v.unique(
        "witness name",
        None,
        witnesses.iter().enumerate().map(|(i, w)| {
            (
                path.index(i).key("name"),
                w.name.clone(),
                format!("{:?}", w.name),
            )
        }),
    );
}

fn controllers(v: &mut Validator<'_>) {
    let controllers = &v.config.controllers;
    let path = KeyPath::root().key("controllers");
    if controllers.is_empty() {
        v.error(
            path.clone(),
            "no controllers are declared: add a [[controllers]] entry per region, with id, region and listen",
        );
        return;
    }
    for (i, c) in controllers.iter().enumerate() {
        let at = path.index(i);
        v.check(at.key("id"), syntax::name(&c.id));
        v.vantage_ref(at.key("region"), &c.region);
        if c.listen.ip().is_unspecified() && controllers.len() > 1 {
            v.error(
                at.key("listen"),
                format!(
                    "listen {} is a wildcard, but the other controllers ping this address to \
                     tell an etcd outage from an isolation: give this controller's own address \
                     (bind every interface with `switchyard controller --listen {}` instead)",
                    c.listen, c.listen
                ),
            );
        }
        if c.metrics_listen == Some(c.listen) {
            v.error(
                at.key("metrics_listen"),
                format!(
                    "metrics_listen is the same address as listen ({}); give metrics its own port",
                    c.listen
                ),
            );
        }
    }
    v.unique(
        "controller id",
        None,
        controllers
            .iter()
            .enumerate()
            .map(|(i, c)| (path.index(i).key("id"), c.id.clone(), format!("{:?}", c.id))),
    );
}
