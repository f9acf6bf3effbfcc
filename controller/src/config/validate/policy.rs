//! `[policy]` and `[dns]`, and the timing rules between the policy and the
//! checks (staleness, the settle window), and whether a region lost with
//! its probe can still be found Down (witnesses).

use std::time::Duration;

use super::{Validator, syntax};
use crate::config::duration::format as dur;
use crate::config::path::KeyPath;
use crate::config::schema::{Dns, STALE_INTERVALS};

/// A settle window longer than this delays real multi-region evacuations
/// for longer than a global outage needs to show itself; worth a warning.
const LONG_SETTLE: Duration = Duration::from_secs(300);

pub(super) fn check(v: &mut Validator<'_>) {
    policy(v);
    stale_after(v);
    settle_window(v);
    region_loss(v);
    dns(v);
    drift_check(v);
    gate_alarm_after(v);
    journal(v);
}

fn gate_alarm_after(v: &mut Validator<'_>) {
    let p = &v.config.policy;
    if p.gate_alarm_after < Duration::from_secs(1) {
        v.error(
            KeyPath::root().key("policy").key("gate_alarm_after"),
            format!(
                "gate_alarm_after {} would page for every failover that waits out a lease, as the gate is meant to: use at least \"1s\" (\"1m\" is the default)",
                humantime::format_duration(p.gate_alarm_after)
            ),
        );
    }
}

fn drift_check(v: &mut Validator<'_>) {
    let d = v.config.policy.drift_check;
    if d < std::time::Duration::from_secs(1) {
        v.error(
            KeyPath::root().key("policy").key("drift_check"),
            format!(
                "drift_check {} would read every record back from the DNS backend more than once a second: use at least \"1s\" (\"1m\" is the default)",
                humantime::format_duration(d)
            ),
        );
    }
}

fn journal(v: &mut Validator<'_>) {
    let j = &v.config.journal;
    let at = KeyPath::root().key("journal");
    if j.keep_finished == 0 {
        v.error(
            at.key("keep_finished"),
            "keep_finished must be at least 1 (finished intents kept for `switchyard status`; 100 is the default)",
        );
    }
    if j.history_max_events < 100 {
        v.error(
            at.key("history_max_events"),
            format!(
                "history_max_events {} keeps too little to read a post-mortem from: use at least 100 (10000 is the default)",
                j.history_max_events
            ),
        );
    }
    if j.history_max_age < std::time::Duration::from_secs(3600) {
        v.error(
            at.key("history_max_age"),
            format!(
                "history_max_age {} keeps too little to read a post-mortem from: use at least \"1h\" (\"30d\" is the default)",
                humantime::format_duration(j.history_max_age)
            ),
        );
    }
}

fn policy(v: &mut Validator<'_>) {
    let p = &v.config.policy;
    let at = KeyPath::root().key("policy");
    let regions = v.config.regions.len();
    // Every region and every witness runs a probe that votes.
    let vantages = v.config.vantage_count();
    let voters = if v.config.witnesses.is_empty() {
        format!("{vantages} regions")
    } else {
        format!("{vantages} regions and witnesses")
    };
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
                format!("quorum must be at least 1; with {voters} use 1–{vantages}, or omit it for a majority"),
            );
        }
        Some(q) if q as usize > vantages => {
            v.error(
                at.key("quorum"),
                format!(
                    "quorum {q} is more than the {voters} that can vote, so nothing could ever be Down: use 1–{vantages}, or omit it for a majority ({})",
                    crate::config::schema::Policy::quorum_for_default(vantages)
                ),
            );
        }
        Some(1) if vantages >= 2 => {
            v.warning(
                at.key("quorum"),
                "quorum 1: a single probe that is cut off could evacuate a region on its own; 2 or more is safer",
            );
        }
        _ => {}
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

/// An explicit `stale_after` must exceed every check's interval plus its
/// timeout: a probe stamps a report when the check ends, so two reports of
/// one vantage on one target can be that far apart, and a shorter
/// staleness makes the vantage drop out between them (verdicts flicker
/// between Down or Up and Unknown).
fn stale_after(v: &mut Validator<'_>) {
    let Some(stale) = v.config.policy.stale_after else {
        return;
    };
    let path = KeyPath::root().key("policy").key("stale_after");
    if stale.is_zero() {
        v.error(path, "stale_after must be above 0, e.g. \"15s\"");
        return;
    }
    // The first check with the longest gap, in file order.
    let mut worst: Option<(String, Duration, Duration)> = None;
    for (check, interval, timeout) in v.config.check_timings() {
        if worst
            .as_ref()
            .is_none_or(|(_, i, t)| interval + timeout > *i + *t)
        {
            worst = Some((check, interval, timeout));
        }
    }
    let Some((check, interval, timeout)) = worst else {
        return;
    };
    if stale <= interval + timeout {
        let default = v.config.longest_check_interval().unwrap_or(interval) * STALE_INTERVALS;
        let issue = v.error(
            path,
            format!(
                "stale_after ({}) must exceed every check's interval plus timeout, or a vantage \
                 goes stale between two of its reports and verdicts flicker: {check} runs every {} \
                 with a {} timeout (up to {} between reports)",
                dur(stale),
                dur(interval),
                dur(timeout),
                dur(interval + timeout)
            ),
        );
        issue.set_hint(format!(
            "use more than {}, or omit stale_after for the default: {STALE_INTERVALS} × the \
             longest check interval ({})",
            dur(interval + timeout),
            dur(default)
        ));
    }
}

/// The settle window must let regions that started failing together reach
/// Down before it ends: `fall` failed reports, the first up to an interval
/// plus a timeout after the outage began, so at worst `fall` intervals plus
/// a timeout plus delivery; `(fall + 1)` × the longest interval covers it
/// (a timeout is below its interval). Shorter, and a global outage could
/// still evacuate its first region onto the others.
fn settle_window(v: &mut Validator<'_>) {
    let p = &v.config.policy;
    let path = KeyPath::root().key("policy").key("settle_window");
    let reports = p.fall.max(1) + 1;
    let longest = v.config.longest_check_interval().unwrap_or(Duration::ZERO);
    let needed = (longest * reports).max(Duration::from_secs(1));
    if p.settle_window < needed {
        v.error(
            path,
            format!(
                "settle_window ({}) must be at least (fall + 1) × the longest check interval \
                 ({reports} × {} = {}, and at least 1s): regions failing together need that long \
                 to be seen Down, or a global outage evacuates its first region onto the others",
                dur(p.settle_window),
                dur(longest),
                dur(needed)
            ),
        );
    } else if p.settle_window > LONG_SETTLE {
        v.warning(
            path,
            format!(
                "settle_window {}: when two regions really fail at once, their users wait that \
                 long before being moved; {} or less is usual (default 30s)",
                dur(p.settle_window),
                dur(LONG_SETTLE)
            ),
        );
    }
}

/// A region lost together with its probe leaves `vantages - 1` voters; if
/// that is below the quorum its targets can never be Down, so nothing is
/// evacuated and no database fails over — the two-region trap. Warn, and
/// name the way out: a witness.
fn region_loss(v: &mut Validator<'_>) {
    let regions = v.config.regions.len();
    let vantages = v.config.vantage_count();
    let quorum = v.config.quorum();
    if regions < 2 || vantages > quorum {
        return;
    }
    let explicit = v.config.policy.quorum.is_some();
    let path = if explicit {
        KeyPath::root().key("policy").key("quorum")
    } else {
        KeyPath::root().key("regions")
    };
    let witnesses = match v.config.witnesses.len() {
        0 => "no witness".to_owned(),
        1 => "1 witness".to_owned(),
        n => format!("{n} witnesses"),
    };
    let issue = v.warning(
        path,
        format!(
            "with {regions} regions and {witnesses}, a region lost together with its probe leaves \
             {} vantage(s), below the quorum of {quorum}: its targets can never be found Down, so \
             nothing is evacuated and no database fails over",
            vantages - 1
        ),
    );
    issue.set_hint(if explicit {
        "lower quorum, or add a witness: [[witnesses]] name = \"...\" in a third place, running \
         `switchyard probe --region <witness>`"
            .to_owned()
    } else {
        "add a witness, a probe in a third place that votes but hosts nothing: [[witnesses]] \
         name = \"...\", running `switchyard probe --region <witness>`"
            .to_owned()
    });
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
