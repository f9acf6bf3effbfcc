//! Services: records, endpoints and checks.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::{Validator, syntax};
use crate::config::duration;
use crate::config::path::KeyPath;
use crate::config::schema::{AnswerMode, Check, Dns, RecordType, Service};

/// A TTL above this makes failover wait on client caches; worth a warning.
const SLOW_TTL_SECS: u32 = 300;

pub(super) fn check(v: &mut Validator<'_>) {
    let path = KeyPath::root().key("services");
    for (i, service) in v.config.services.iter().enumerate() {
        one(v, &path.index(i), service);
    }
    let services = &v.config.services;
    v.unique(
        "service name",
        None,
        services.iter().enumerate().map(|(i, s)| {
            (
                path.index(i).key("name"),
                s.name.clone(),
                format!("{:?}", s.name),
            )
        }),
    );
    v.unique(
        "service record",
        Some("each record's weights are owned by one service"),
        services.iter().enumerate().map(|(i, s)| {
            (
                path.index(i).key("record"),
                s.record.to_ascii_lowercase(),
                format!("{:?}", s.record),
            )
        }),
    );
}

fn one(v: &mut Validator<'_>, at: &KeyPath, service: &Service) {
    v.check(at.key("name"), syntax::name(&service.name));
    v.check(at.key("record"), syntax::fqdn(&service.record));
    zone_member(v, at.key("record"), &service.record);
    if service.answer == AnswerMode::All && matches!(v.config.dns, Dns::Route53(_)) {
        v.error(
            at.key("answer"),
            "answer = \"all\" needs the embedded DNS backend (Route 53 weighted records always answer one record): remove it, or use the embedded backend",
        );
    }
    if service.ttl > SLOW_TTL_SECS {
        v.warning(
            at.key("ttl"),
            format!(
                "ttl {}s: clients may keep using an evacuated region for that long after failover; {SLOW_TTL_SECS}s or less is usual",
                service.ttl
            ),
        );
    }

    if service.endpoints.is_empty() {
        v.error(
            at.key("endpoints"),
            "the service has no endpoints: add a [[services.endpoints]] per region, with region, value and target",
        );
    }
    for (j, endpoint) in service.endpoints.iter().enumerate() {
        let ep = at.key("endpoints").index(j);
        v.region_ref(ep.key("region"), &endpoint.region);
        v.check(
            ep.key("value"),
            record_value(service.record_type, &endpoint.value),
        );
        v.check(ep.key("target"), syntax::host_port(&endpoint.target));
    }
    v.unique(
        "endpoint region",
        Some("a service has at most one endpoint per region"),
        service.endpoints.iter().enumerate().map(|(j, e)| {
            (
                at.key("endpoints").index(j).key("region"),
                e.region.clone(),
                format!("{:?}", e.region),
            )
        }),
    );

    if service.checks.is_empty() {
        v.error(
            at.key("checks"),
            "the service has no checks, so its health can never be known: add a [[services.checks]] (e.g. kind = \"tcp\")",
        );
    }
    for (j, c) in service.checks.iter().enumerate() {
        check_one(v, &at.key("checks").index(j), c);
    }
}

/// With the embedded backend, every name Switchyard answers for must be in its zone.
pub(super) fn zone_member(v: &mut Validator<'_>, path: KeyPath, name: &str) {
    if let Dns::Embedded(embedded) = &v.config.dns
        && name.ends_with('.')
        && embedded.zone.ends_with('.')
        && !syntax::in_zone(name, &embedded.zone)
    {
        let zone = embedded.zone.clone();
        v.error(
            path,
            format!("{name:?} is outside the embedded DNS zone {zone:?}: use a name ending in \".{zone}\""),
        );
    }
}

fn record_value(kind: RecordType, value: &str) -> Result<(), String> {
    match kind {
        RecordType::A => value.parse::<Ipv4Addr>().map(drop).map_err(|_| {
            format!("{value:?} is not an IPv4 address, as type A needs (e.g. \"192.0.2.10\")")
        }),
        RecordType::Aaaa => value.parse::<Ipv6Addr>().map(drop).map_err(|_| {
            format!("{value:?} is not an IPv6 address, as type AAAA needs (e.g. \"2001:db8::10\")")
        }),
        RecordType::Cname => syntax::hostname(value),
    }
}

/// Interval/timeout rules shared by service and database checks.
pub(super) fn timing(v: &mut Validator<'_>, at: &KeyPath, interval: Duration, timeout: Duration) {
    if interval.is_zero() {
        v.error(at.key("interval"), "interval must be above 0, e.g. \"5s\"");
    }
    if timeout.is_zero() {
        v.error(at.key("timeout"), "timeout must be above 0, e.g. \"2s\"");
    } else if !interval.is_zero() && timeout >= interval {
        v.error(
            at.key("timeout"),
            format!(
                "timeout ({}) must be below interval ({}), or checks would overlap",
                duration::format(timeout),
                duration::format(interval)
            ),
        );
    }
}

fn check_one(v: &mut Validator<'_>, at: &KeyPath, check: &Check) {
    timing(v, at, check.interval(), check.timeout());
    match check {
        Check::Http(http) | Check::Https(http) => {
            if !http.path.starts_with('/') {
                v.error(
                    at.key("path"),
                    format!(
                        "path {:?} must start with '/', e.g. \"/healthz\"",
                        http.path
                    ),
                );
            }
            if !(100..=599).contains(&http.expect_status) {
                v.error(
                    at.key("expect_status"),
                    format!(
                        "{} is not an HTTP status: use 100–599, e.g. 200",
                        http.expect_status
                    ),
                );
            }
            if let Some(host) = &http.host_header {
                v.check(at.key("host_header"), syntax::hostname(host));
            }
            if let Some(max) = http.max_latency
                && max >= check.timeout()
            {
                v.error(
                    at.key("max_latency"),
                    format!(
                        "max_latency ({}) must be below timeout ({}), or it could never trigger",
                        duration::format(max),
                        duration::format(check.timeout())
                    ),
                );
            }
        }
        Check::Dns(dns) => {
            v.check(at.key("name"), syntax::fqdn(&dns.name));
            if let Some(server) = &dns.server {
                v.check(at.key("server"), syntax::host_port(server));
            }
        }
        Check::Tcp(_) | Check::Grpc(_) => {}
    }
}
