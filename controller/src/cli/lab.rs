//! `switchyard lab`: a whole multi-region deployment on one machine.
//!
//! The lab needs the controller, probes and backends of the later issues.
//! Until they exist it says plainly what it will start, and checks that the
//! servers it will need are installed, so the README's first command is honest.

use std::io::Write;
use std::path::Path;

/// Servers the lab starts, with the Debian package (or virtualenv) that provides them.
const NEEDED: &[(&str, &str)] = &[
    ("/usr/bin/etcd", "etcd-server"),
    ("/usr/sbin/mariadbd", "mariadb-server"),
    ("/usr/bin/dig", "dnsutils"),
];

/// Prints the plan of the lab and whether its prerequisites are installed.
/// Returns the exit code: 0 when everything it needs is present.
pub fn run(repo_root: &Path, out: &mut dyn Write) -> std::io::Result<i32> {
    writeln!(
        out,
        "switchyard lab: a three-region deployment on this machine"
    )?;
    writeln!(out)?;
    writeln!(out, "It will start, each on free loopback ports:")?;
    writeln!(
        out,
        "  - a 3-member etcd cluster (leader election, state, journal)"
    )?;
    writeln!(
        out,
        "  - one controller per region: us-east, eu-west, ap-south"
    )?;
    writeln!(
        out,
        "  - one probe per region, checking every region's services"
    )?;
    writeln!(
        out,
        "  - an HTTP service endpoint per region behind a weighted DNS name"
    )?;
    writeln!(
        out,
        "  - a MariaDB primary and two replicas replicating with GTID"
    )?;
    writeln!(
        out,
        "  - the embedded authoritative DNS server, and moto's Route 53 API"
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "Not built yet: the controller core, probes and backends arrive with their own issues."
    )?;
    writeln!(out)?;
    let mut missing = 0;
    for (path, package) in NEEDED {
        let ok = Path::new(path).exists();
        if !ok {
            missing += 1;
        }
        writeln!(
            out,
            "  [{}] {path} ({package})",
            if ok { "ok" } else { "missing" }
        )?;
    }
    let moto = repo_root.join(".venv/bin/moto_server");
    let ok = moto.exists();
    if !ok {
        missing += 1;
    }
    writeln!(
        out,
        "  [{}] {} (moto[server] in the project virtualenv)",
        if ok { "ok" } else { "missing" },
        moto.display()
    )?;
    if missing > 0 {
        writeln!(out)?;
        writeln!(out, "Run scripts/setup to install what is missing.")?;
        return Ok(1);
    }
    Ok(0)
}
