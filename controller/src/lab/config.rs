//! The lab's config file: three regions, a weighted `api.lab.test.` served by
//! every controller's embedded DNS server, and the `orders` database.

use std::path::{Path, PathBuf};

use switchyard_tests::mariadb::{ADMIN_PASSWORD, ADMIN_USER, REPL_PASSWORD, REPL_USER};
use switchyard_tests::{HttpTarget, MariaDbTopology};

use super::REGIONS;

/// Writes the lab config (and its secret files) into `dir`.
pub fn write(
    dir: &Path,
    etcd: &[String],
    endpoints: &[HttpTarget],
    db: &MariaDbTopology,
) -> anyhow::Result<PathBuf> {
    let admin = dir.join("admin.secret");
    let repl = dir.join("repl.secret");
    std::fs::write(&admin, ADMIN_PASSWORD)?;
    std::fs::write(&repl, REPL_PASSWORD)?;
    let mut t = format!(
        r#"# Written by `switchyard lab`.
cluster = "lab"

[etcd]
endpoints = [{etcd}]
lease_ttl = "2s"

[dns]
backend = "embedded"
listen = "127.0.0.1:0"
zone = "lab.test."

[policy]
fall = 2
rise = 2
stale_after = "5s"
failback = "auto"
failback_after = "5s"
ramp = [50, 100]
ramp_step = "3s"
db_failover = "auto"
anti_flap = "10m"

[credentials.admin]
user = "{ADMIN_USER}"
password = {{ file = "{admin}" }}

[credentials.repl]
user = "{REPL_USER}"
password = {{ file = "{repl}" }}
"#,
        etcd = etcd
            .iter()
            .map(|e| format!("\"{e}\""))
            .collect::<Vec<_>>()
            .join(", "),
        admin = admin.display(),
        repl = repl.display(),
    );
    for (i, r) in REGIONS.iter().enumerate() {
        t.push_str(&format!(
            "\n[[regions]]\nname = \"{r}\"\nweight = 100\npriority = {}\n\n[[controllers]]\nid = \"ctl-{r}\"\nregion = \"{r}\"\nlisten = \"127.0.0.1:0\"\n",
            i + 1
        ));
    }
    t.push_str("\n[[services]]\nname = \"api\"\nrecord = \"api.lab.test.\"\nttl = 5\n");
    for (i, r) in REGIONS.iter().enumerate() {
        t.push_str(&format!(
            "\n[[services.endpoints]]\nregion = \"{r}\"\nvalue = \"{}\"\ntarget = \"{}\"\n",
            endpoint_ip(i),
            endpoints[i].addr()
        ));
    }
    t.push_str(
        "\n[[services.checks]]\nkind = \"http\"\ninterval = \"1s\"\ntimeout = \"500ms\"\npath = \"/health\"\n",
    );
    t.push_str(
        "\n[[databases]]\nname = \"orders\"\nkind = \"mariadb\"\nmax_lag = \"10s\"\ncredentials = \"admin\"\nreplication_credentials = \"repl\"\n\n[databases.check]\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
    );
    for (i, r) in REGIONS.iter().enumerate() {
        t.push_str(&format!(
            "\n[[databases.members]]\nid = \"orders-{}\"\nregion = \"{r}\"\naddress = \"{}\"\n",
            i + 1,
            db.address(i)
        ));
    }
    let path = dir.join("lab.toml");
    std::fs::write(&path, t)?;
    Ok(path)
}

/// The address region `i`'s endpoint is published as.
pub fn endpoint_ip(i: usize) -> String {
    format!("192.0.2.{}", 10 + i)
}
