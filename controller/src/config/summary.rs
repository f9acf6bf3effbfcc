//! The one-screen summary `config check` prints for a valid config, so a
//! person can confirm the file says what they meant (defaults included).

use std::io::{self, Write};

use super::duration::format as dur;
use super::schema::{Config, Dns};

/// Writes the summary of a validated config.
pub fn write_summary(config: &Config, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "cluster      {}", config.cluster)?;

    let etcd = &config.etcd;
    let tls = match &etcd.tls {
        Some(t) if t.cert_file.is_some() => "mutual TLS",
        Some(_) => "TLS",
        None => "no TLS",
    };
    let auth = match &etcd.credentials {
        Some(name) => format!(", user from credentials {name:?}"),
        None => String::new(),
    };
    writeln!(
        out,
        "etcd         {} ({tls}{auth}, lease ttl {})",
        etcd.endpoints.join(", "),
        dur(etcd.lease_ttl)
    )?;

    if config.tls.is_some() {
        writeln!(
            out,
            "grpc         mutual TLS (a probe reports only for the vantages its certificate names)"
        )?;
    }

    writeln!(out, "regions")?;
    let mut regions: Vec<_> = config.regions.iter().collect();
    regions.sort_by_key(|r| r.priority);
    for r in regions {
        writeln!(
            out,
            "  {:<12} weight {:<4} priority {}",
            r.name, r.weight, r.priority
        )?;
    }

    if !config.witnesses.is_empty() {
        let names: Vec<&str> = config.witnesses.iter().map(|w| w.name.as_str()).collect();
        writeln!(out, "witnesses    {} (vote only)", names.join(", "))?;
    }

    writeln!(out, "controllers")?;
    for c in &config.controllers {
        let metrics = c
            .metrics_listen
            .map_or(String::new(), |m| format!(", metrics {m}"));
        writeln!(
            out,
            "  {:<12} in {:<10} grpc {}{metrics}",
            c.id, c.region, c.listen
        )?;
    }

    writeln!(out, "services")?;
    for s in &config.services {
        let endpoints: Vec<_> = s
            .endpoints
            .iter()
            .map(|e| format!("{}={}", e.region, e.value))
            .collect();
        let checks: Vec<_> = s.checks.iter().map(|c| c.kind()).collect();
        writeln!(
            out,
            "  {:<12} {} {} ttl {}s; {}; checks: {}",
            s.name,
            s.record,
            s.record_type.as_str(),
            s.ttl,
            endpoints.join(", "),
            checks.join(", ")
        )?;
    }

    writeln!(out, "databases")?;
    for db in &config.databases {
        let writer = db
            .writer_record
            .as_deref()
            .map_or(String::new(), |w| format!(", writer {w}"));
        writeln!(
            out,
            "  {:<12} {}{writer}, max lag {}",
            db.name,
            db.kind,
            dur(db.max_lag)
        )?;
        for m in &db.members {
            writeln!(
                out,
                "    {:<10} {:<10} {:<24} {}",
                m.id, m.region, m.address, m.promotion
            )?;
        }
    }

    match &config.dns {
        Dns::Route53(r) => writeln!(
            out,
            "dns          route53 zone {} ({}, {} req/s{})",
            r.hosted_zone_id,
            r.aws_region,
            r.max_requests_per_second,
            r.endpoint
                .as_deref()
                .map_or(String::new(), |e| format!(", endpoint {e}"))
        )?,
        Dns::Embedded(e) => writeln!(out, "dns          embedded zone {} on {}", e.zone, e.listen)?,
        Dns::File(f) => writeln!(out, "dns          file {}", f.path.display())?,
    }

    let p = &config.policy;
    let ramp: Vec<_> = p.ramp.iter().map(u8::to_string).collect();
    writeln!(
        out,
        "policy       fall {}, rise {}, quorum {} of {} vantages, stale after {}{}",
        p.fall,
        p.rise,
        config.quorum(),
        config.vantage_count(),
        dur(config.stale_after()),
        if p.stale_after.is_none() {
            " (3 × longest check interval)"
        } else {
            ""
        }
    )?;
    writeln!(
        out,
        "             failback {} after {}, ramp {}% every {}, max evacuated {}, settle window {}",
        p.failback.as_str(),
        dur(p.failback_after),
        ramp.join("/"),
        dur(p.ramp_step),
        p.max_evacuated,
        dur(p.settle_window)
    )?;
    writeln!(
        out,
        "             db failover {}, anti-flap {}, gate-wait alarm after {}",
        p.db_failover.as_str(),
        dur(p.anti_flap),
        dur(p.gate_alarm_after)
    )?;
    Ok(())
}
