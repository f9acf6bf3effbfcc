//! `[policy]` and `[dns]`.

use super::{Validator, syntax};
use crate::config::path::KeyPath;
use crate::config::schema::Dns;

pub(super) fn check(v: &mut Validator<'_>) {
    policy(v);
    dns(v);
}

fn policy(v: &mut Validator<'_>) {
    let p = &v.config.policy;
    let at = KeyPath::root().key("policy");
    let regions = v.config.regions.len();
    if p.fall == 0 {
        v.error(at.key("fall"), "fall must be at least 1 (consecutive failures before a vantage calls a target down; 3 is the default)");
    }
    if p.rise == 0 {
        v.error(at.key("rise"), "rise must be at least 1 (consecutive successes before a vantage calls a target up; 2 is the default)");
    }
    match p.quorum {
        Some(0) => {
            v.error(
                at.key("quorum"),
                format!("quorum must be at least 1; with {regions} regions use 1–{regions}, or omit it for a majority"),
            );
        }
        Some(q) if q as usize > regions => {
            v.error(
                at.key("quorum"),
                format!(
                    "quorum {q} is more than the {regions} regions that can vote, so nothing could ever be Down: use 1–{regions}, or omit it for a majority ({})",
                    crate::config::schema::Policy::quorum_for_default(regions)
                ),
            );
        }
        Some(1) if regions >= 2 => {
            v.warning(
                at.key("quorum"),
                "quorum 1: a single probe that is cut off could evacuate a region on its own; 2 or more is safer",
            );
        }
        _ => {}
    }
    if p.stale_after.is_zero() {
        v.error(
            at.key("stale_after"),
            "stale_after must be above 0, e.g. \"3s\"",
        );
    }
    if p.failback_after.is_zero() {
        v.error(
            at.key("failback_after"),
            "failback_after must be above 0, e.g. \"10m\"",
        );
    }
    ramp(v, &at);
    if p.ramp_step.is_zero() {
        v.error(
            at.key("ramp_step"),
            "ramp_step must be above 0, e.g. \"1m\"",
        );
    }
    if regions > 0 && p.max_evacuated as usize >= regions {
        v.error(
            at.key("max_evacuated"),
            format!(
                "max_evacuated ({}) must be below the number of regions ({regions}), so some region always keeps traffic; use 0–{}",
                p.max_evacuated,
                regions - 1
            ),
        );
    }
}

fn ramp(v: &mut Validator<'_>, at: &KeyPath) {
    let ramp = &v.config.policy.ramp;
    let path = at.key("ramp");
    const EXAMPLE: &str = "e.g. [25, 50, 100], or [100] to restore all at once";
    let Some(&last) = ramp.last() else {
        v.error(path, format!("ramp must not be empty: {EXAMPLE}"));
        return;
    };
    for (i, step) in ramp.iter().enumerate() {
        if *step == 0 || *step > 100 {
            v.error(
                path.index(i),
                format!("ramp step {step} is not a percentage in 1–100"),
            );
        } else if i > 0 && *step <= ramp[i - 1] {
            v.error(
                path.index(i),
                format!(
                    "ramp steps must strictly increase: {step} follows {}; {EXAMPLE}",
                    ramp[i - 1]
                ),
            );
        }
    }
    if last != 100 {
        v.error(
            path.index(ramp.len() - 1),
            format!("ramp must end at 100 (full base weight), not {last}; {EXAMPLE}"),
        );
    }
}

fn dns(v: &mut Validator<'_>) {
    let at = KeyPath::root().key("dns");
    match &v.config.dns {
        Dns::Route53(r) => {
            let id_ok = !r.hosted_zone_id.is_empty()
                && r.hosted_zone_id.chars().all(|c| c.is_ascii_alphanumeric());
            if !id_ok {
                v.error(
                    at.key("hosted_zone_id"),
                    format!(
                        "{:?} is not a hosted zone id: letters and digits, e.g. \"Z0123456789ABCDEFGHIJ\" (without the /hostedzone/ prefix)",
                        r.hosted_zone_id
                    ),
                );
            }
            if let Some(endpoint) = &r.endpoint {
                v.check(at.key("endpoint"), syntax::url(endpoint, false));
            }
            if r.aws_region.is_empty() {
                v.error(at.key("aws_region"), "aws_region must not be empty; Route 53 is global, \"us-east-1\" is the usual choice");
            }
            if r.max_requests_per_second == 0 {
                v.error(
                    at.key("max_requests_per_second"),
                    "max_requests_per_second must be at least 1",
                );
            }
        }
        Dns::Embedded(e) => {
            v.check(at.key("zone"), syntax::fqdn(&e.zone));
        }
        Dns::File(f) => {
            if f.path.as_os_str().is_empty() {
                v.error(
                    at.key("path"),
                    "path must name the weights file, e.g. \"/var/lib/switchyard/weights.json\"",
                );
            }
        }
    }
}
