//! End-to-end tests of `parse`: bad configs in, located diagnostics out.
//!
//! Each case is a snippet appended to a valid base config (three regions,
//! a controller in each); `[etcd]` and `[dns]` are added after the snippet
//! unless it brings its own. Expected lines are counted from the snippet's
//! first line, so the base can change without renumbering every case.

use std::time::Duration;

use super::*;

const BASE: &str = r#"cluster = "test"

[[regions]]
name = "us-east"
weight = 100
priority = 1

[[regions]]
name = "eu-west"
weight = 100
priority = 2

[[regions]]
name = "ap-south"
weight = 50
priority = 3

[[controllers]]
id = "c1"
region = "us-east"
listen = "127.0.0.1:7401"

[[controllers]]
id = "c2"
region = "eu-west"
listen = "127.0.0.1:7402"

[[controllers]]
id = "c3"
region = "ap-south"
listen = "127.0.0.1:7403"
"#;

const ETCD: &str = "\n[etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\n";
const DNS: &str = "\n[dns]\nbackend = \"route53\"\nhosted_zone_id = \"Z1\"\n";

/// A service; line numbers: 3 record, 7 endpoint region, 8 value,
/// 9 target, 11 `[[services.checks]]`, 12 kind, 13 interval, 14 timeout.
const SERVICE: &str = r#"[[services]]
name = "api"
record = "api.example.com."
ttl = 30

[[services.endpoints]]
region = "us-east"
value = "192.0.2.1"
target = "10.0.0.1:80"

[[services.checks]]
kind = "tcp"
interval = "5s"
timeout = "2s"
"#;

/// A database; line numbers: 5 credentials, 7 first member header,
/// 13 second member id, 14 its region, 17 `[credentials.admin]`, 19 password.
const DATABASE: &str = r#"[[databases]]
name = "orders"
kind = "mariadb"
max_lag = "5s"
credentials = "admin"

[[databases.members]]
id = "m1"
region = "us-east"
address = "10.0.0.1:3306"

[[databases.members]]
id = "m2"
region = "eu-west"
address = "10.0.0.2:3306"

[credentials.admin]
user = "sy"
password = { env = "PW" }
"#;

/// The whole document for a snippet.
fn doc(snippet: &str) -> String {
    let mut text = format!("{BASE}{snippet}");
    if !snippet.contains("[etcd]") {
        text.push_str(ETCD);
    }
    if !snippet.contains("[dns]") {
        text.push_str(DNS);
    }
    text
}

/// The line in `doc(snippet)` of the snippet's line `n` (1-based).
fn line(n: usize) -> usize {
    BASE.lines().count() + n
}

fn errors(snippet: &str) -> Vec<Diagnostic> {
    match parse(&doc(snippet)) {
        Ok(_) => panic!("expected errors for:\n{snippet}"),
        Err(d) => d
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .collect(),
    }
}

fn warnings(snippet: &str) -> Vec<Diagnostic> {
    match parse(&doc(snippet)) {
        Ok(checked) => checked.warnings,
        Err(d) => panic!("expected a valid config, got {d:#?}"),
    }
}

struct Case {
    name: &'static str,
    snippet: String,
    path: &'static str,
    fragment: &'static str,
    /// Line within the snippet, and column.
    at: (usize, usize),
}

fn case(
    name: &'static str,
    snippet: impl Into<String>,
    path: &'static str,
    fragment: &'static str,
    at: (usize, usize),
) -> Case {
    Case {
        name,
        snippet: snippet.into(),
        path,
        fragment,
        at,
    }
}

fn cases() -> Vec<Case> {
    let extra_region = "[[regions]]\nname = \"us-east\"\nweight = 1\npriority = 9\n";
    let extra_controller = |id: &str, region: &str| {
        format!(
            "[[controllers]]\nid = \"{id}\"\nregion = \"{region}\"\nlisten = \"127.0.0.1:7409\"\n"
        )
    };
    let second_service = SERVICE
        .replace("name = \"api\"", "name = \"web\"")
        .replace("api.example.com.", "www.example.com.");
    vec![
        // --- serde shape: unknown keys, types, enums ---
        case(
            "unknown top-level table",
            "[policyy]\nfall = 3\n",
            "policyy",
            "unknown field `policyy`, expected one of `cluster`, `etcd`",
            (1, 2),
        ),
        case(
            "unknown policy key",
            "[policy]\nfal = 3\n",
            "policy.fal",
            "unknown field `fal`, expected one of `fall`, `rise`",
            (2, 1),
        ),
        case(
            "wrong type",
            "[policy]\nfall = \"3\"\n",
            "policy.fall",
            "invalid type: string \"3\", expected u32",
            (2, 8),
        ),
        case(
            "bad duration",
            "[policy]\nstale_after = \"3\"\n",
            "policy.stale_after",
            "invalid duration \"3\"",
            (2, 15),
        ),
        case(
            "weight out of range",
            "[[regions]]\nname = \"x\"\nweight = 256\npriority = 9\n",
            "regions[3].weight",
            "weight 256 is out of range: use 0–255",
            (3, 10),
        ),
        case(
            "bad listen address",
            extra_controller("c4", "us-east").replace("127.0.0.1:7409", "localhost"),
            "controllers[3].listen",
            "is not a socket address: write IP:port",
            (4, 10),
        ),
        case(
            "unknown check kind",
            SERVICE.replace("kind = \"tcp\"", "kind = \"icmp\""),
            "services[0].checks[0].kind",
            "unknown variant `icmp`, expected one of `http`, `https`, `tcp`, `dns`, `grpc`",
            (12, 8),
        ),
        case(
            "field of another check kind",
            SERVICE.replace("kind = \"tcp\"", "kind = \"tcp\"\npath = \"/\""),
            "services[0].checks[0].path",
            "unknown field `path`, expected `interval` or `timeout`",
            (13, 1),
        ),
        case(
            "bad duration in a check",
            SERVICE
                .replace("interval = \"5s\"", "interval = \"5 sec\"\n#")
                .replace("timeout = \"2s\"", "timeout = \"2\""),
            "services[0].checks[0].timeout",
            "invalid duration \"2\"",
            (15, 11),
        ),
        case(
            "missing check kind",
            SERVICE.replace("kind = \"tcp\"\n", ""),
            "services[0].checks[0].kind",
            "missing field `kind`",
            (11, 1),
        ),
        case(
            "second check of an array is the one placed",
            format!(
                "{SERVICE}\n[[services.checks]]\nkind = \"http\"\ninterval = \"5s\"\ntimeout = \"1s\"\nbody = \"ok\"\n"
            ),
            "services[0].checks[1].body",
            "unknown field `body`",
            (20, 1),
        ),
        case(
            "inline password",
            DATABASE.replace("{ env = \"PW\" }", "\"hunter2\""),
            "credentials.admin.password",
            "inline secrets are not accepted",
            (19, 12),
        ),
        case(
            "unknown dns backend",
            "[dns]\nbackend = \"bind\"\n",
            "dns.backend",
            "unknown variant `bind`, expected one of `route53`, `embedded`, `file`",
            (2, 11),
        ),
        case(
            "syntax error",
            "[policy]\nfall = = 3\n",
            "",
            "extra `=`",
            (2, 8),
        ),
        // --- validation: topology ---
        case(
            "duplicate region",
            extra_region,
            "regions[3].name",
            "duplicate region name \"us-east\": already used by regions[0].name",
            (2, 8),
        ),
        case(
            "duplicate controller id",
            extra_controller("c1", "us-east"),
            "controllers[3].id",
            "duplicate controller id \"c1\"",
            (2, 6),
        ),
        case(
            "controller in undeclared region",
            extra_controller("c4", "mars"),
            "controllers[3].region",
            "region \"mars\" is not declared; declared regions: us-east, eu-west, ap-south",
            (3, 10),
        ),
        case(
            "no etcd endpoint",
            "[etcd]\nendpoints = []\n",
            "etcd.endpoints",
            "no etcd endpoint",
            (2, 13),
        ),
        case(
            "etcd endpoint without scheme",
            "[etcd]\nendpoints = [\"etcd-1:2379\"]\n",
            "etcd.endpoints[0]",
            "must start with http:// or https://",
            (2, 14),
        ),
        case(
            "primary lease TTL not whole seconds",
            "[etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\nprimary_lease_ttl = \"2500ms\"\n",
            "etcd.primary_lease_ttl",
            "use a whole number of seconds (etcd grants leases in seconds), at least 2s",
            (3, 21),
        ),
        case(
            "primary lease TTL below the leader lease",
            "[etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\nlease_ttl = \"5s\"\nprimary_lease_ttl = \"4s\"\n",
            "etcd.primary_lease_ttl",
            "primary_lease_ttl (4s) is shorter than lease_ttl (5s)",
            (4, 21),
        ),
        // --- validation: services ---
        case(
            "endpoint in undeclared region",
            SERVICE.replace("region = \"us-east\"", "region = \"mars\""),
            "services[0].endpoints[0].region",
            "region \"mars\" is not declared; declared regions: us-east, eu-west, ap-south",
            (7, 10),
        ),
        case(
            "duplicate endpoint region",
            format!(
                "{SERVICE}\n[[services.endpoints]]\nregion = \"us-east\"\nvalue = \"192.0.2.2\"\ntarget = \"10.0.0.2:80\"\n"
            ),
            "services[0].endpoints[1].region",
            "duplicate endpoint region \"us-east\"",
            (17, 10),
        ),
        case(
            "timeout not below interval",
            SERVICE.replace("timeout = \"2s\"", "timeout = \"5s\""),
            "services[0].checks[0].timeout",
            "timeout (5s) must be below interval (5s)",
            (14, 11),
        ),
        case(
            "record without trailing dot",
            SERVICE.replace("\"api.example.com.\"", "\"api.example.com\""),
            "services[0].record",
            "must be fully qualified and end with '.': write \"api.example.com.\"",
            (3, 10),
        ),
        case(
            "A record with an IPv6 value",
            SERVICE.replace("192.0.2.1", "2001:db8::1"),
            "services[0].endpoints[0].value",
            "is not an IPv4 address",
            (8, 9),
        ),
        case(
            "duplicate service name",
            format!(
                "{SERVICE}\n{}",
                SERVICE.replace("api.example.com.", "www.example.com.")
            ),
            "services[1].name",
            "duplicate service name \"api\"",
            (17, 8),
        ),
        case(
            "duplicate service record",
            format!(
                "{SERVICE}\n{}",
                SERVICE
                    .replace("name = \"api\"", "name = \"web\"")
                    .replace("api.example.com.", "API.example.com.")
            ),
            "services[1].record",
            "duplicate service record \"API.example.com.\"",
            (18, 10),
        ),
        case(
            "record outside the embedded zone",
            format!(
                "{second_service}\n[dns]\nbackend = \"embedded\"\nlisten = \"127.0.0.1:5353\"\nzone = \"example.org.\"\n"
            ),
            "services[0].record",
            "outside the embedded DNS zone \"example.org.\"",
            (3, 10),
        ),
        // --- validation: databases ---
        case(
            "member in undeclared region",
            DATABASE.replace("region = \"eu-west\"", "region = \"mars\""),
            "databases[0].members[1].region",
            "region \"mars\" is not declared; declared regions: us-east, eu-west, ap-south",
            (14, 10),
        ),
        case(
            "duplicate member id",
            DATABASE.replace("id = \"m2\"", "id = \"m1\""),
            "databases[0].members[1].id",
            "duplicate member id \"m1\"",
            (13, 6),
        ),
        case(
            "undefined credentials",
            DATABASE.replace("credentials = \"admin\"", "credentials = \"nope\""),
            "databases[0].credentials",
            "credentials \"nope\" are not defined; defined credentials: admin",
            (5, 15),
        ),
        case(
            "dead-man switch on mongodb",
            DATABASE
                .replace("kind = \"mariadb\"", "kind = \"mongodb\"")
                .replace("max_lag = \"5s\"", "max_lag = \"5s\"\ndead_man = true"),
            "databases[0].dead_man",
            "dead_man applies to mariadb; a MongoDB primary steps down by itself once it cannot see a majority",
            (5, 12),
        ),
        case(
            "dead-man switch with a short primary lease",
            format!(
                "[etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\nprimary_lease_ttl = \"5s\"\n\n{}",
                DATABASE.replace("max_lag = \"5s\"", "max_lag = \"5s\"\ndead_man = true")
            ),
            "databases[0].dead_man",
            "dead_man needs etcd.primary_lease_ttl of at least 6s (it is 5s)",
            (9, 12),
        ),
        case(
            "database with no members",
            "[[databases]]\nname = \"x\"\nkind = \"mysql\"\nmax_lag = \"1s\"\n",
            "databases[0].members",
            "the database has no members",
            (1, 1),
        ),
        case(
            "every member must_not",
            DATABASE
                .replace(
                    "address = \"10.0.0.1:3306\"",
                    "address = \"10.0.0.1:3306\"\npromotion = \"must_not\"",
                )
                .replace(
                    "address = \"10.0.0.2:3306\"",
                    "address = \"10.0.0.2:3306\"\npromotion = \"must_not\"",
                ),
            "databases[0].members[0].promotion",
            "every member is must_not",
            (11, 13),
        ),
        // --- validation: policy ---
        case(
            "quorum above regions",
            "[policy]\nquorum = 4\n",
            "policy.quorum",
            "quorum 4 is more than the 3 regions",
            (2, 10),
        ),
        case(
            "quorum zero",
            "[policy]\nquorum = 0\n",
            "policy.quorum",
            "quorum must be at least 1",
            (2, 10),
        ),
        case(
            "max_evacuated too high",
            "[policy]\nmax_evacuated = 3\n",
            "policy.max_evacuated",
            "must be below the number of regions (3)",
            (2, 17),
        ),
        case(
            "ramp not increasing",
            "[policy]\nramp = [50, 25, 100]\n",
            "policy.ramp[1]",
            "ramp steps must strictly increase: 25 follows 50",
            (2, 13),
        ),
        case(
            "ramp not ending at 100",
            "[policy]\nramp = [25, 50]\n",
            "policy.ramp[1]",
            "ramp must end at 100",
            (2, 13),
        ),
        case(
            "fall zero",
            "[policy]\nfall = 0\n",
            "policy.fall",
            "fall must be at least 1",
            (2, 8),
        ),
        case(
            "ramp_step zero",
            "[policy]\nramp_step = \"0s\"\n",
            "policy.ramp_step",
            "ramp_step must be above 0",
            (2, 13),
        ),
        case(
            "file backend with an unknown key",
            "[dns]\nbackend = \"file\"\npath = \"/tmp/w.json\"\nzone = \"x.\"\n",
            "dns.zone",
            "unknown field `zone`, expected `path`",
            (4, 1),
        ),
        case(
            "rise zero",
            "[policy]\nrise = 0\n",
            "policy.rise",
            "rise must be at least 1",
            (2, 8),
        ),
        // --- validation: staleness and the settle window against the checks ---
        case(
            "stale_after not above a check's interval plus timeout",
            format!("{SERVICE}\n[policy]\nstale_after = \"7s\"\n"),
            "policy.stale_after",
            "stale_after (7s) must exceed every check's interval plus timeout, or a vantage goes \
             stale between two of its reports and verdicts flicker: services[0].checks[0] runs \
             every 5s with a 2s timeout (up to 7s between reports)",
            (17, 15),
        ),
        case(
            "stale_after below the default database check",
            format!("{DATABASE}\n[policy]\nstale_after = \"3s\"\n"),
            "policy.stale_after",
            "databases[0].check (the default) runs every 5s with a 2s timeout",
            (22, 15),
        ),
        case(
            "stale_after zero",
            "[policy]\nstale_after = \"0s\"\n",
            "policy.stale_after",
            "stale_after must be above 0",
            (2, 15),
        ),
        case(
            "settle_window shorter than fall intervals",
            format!("{SERVICE}\n[policy]\nsettle_window = \"10s\"\n"),
            "policy.settle_window",
            "settle_window (10s) must be at least (fall + 1) × the longest check interval (4 × 5s = 20s",
            (17, 17),
        ),
        case(
            "settle_window zero",
            "[policy]\nsettle_window = \"0s\"\n",
            "policy.settle_window",
            "settle_window (0s) must be at least",
            (2, 17),
        ),
        // --- validation: witnesses ---
        case(
            "witness named like a region",
            "[[witnesses]]\nname = \"us-east\"\n",
            "witnesses[0].name",
            "witness \"us-east\" has the name of a region",
            (2, 8),
        ),
        case(
            "duplicate witness",
            "[[witnesses]]\nname = \"w\"\n\n[[witnesses]]\nname = \"w\"\n",
            "witnesses[1].name",
            "duplicate witness name \"w\": already used by witnesses[0].name",
            (5, 8),
        ),
        case(
            "bad witness name",
            "[[witnesses]]\nname = \"a b\"\n",
            "witnesses[0].name",
            "",
            (2, 8),
        ),
        case(
            "unknown witness key",
            "[[witnesses]]\nname = \"w\"\nweight = 10\n",
            "witnesses[0].weight",
            "unknown field `weight`, expected `name`",
            (3, 1),
        ),
        case(
            "endpoint at a witness",
            format!(
                "[[witnesses]]\nname = \"w\"\n\n{}",
                SERVICE.replace("region = \"us-east\"", "region = \"w\"")
            ),
            "services[0].endpoints[0].region",
            "\"w\" is a witness: it votes but hosts no endpoints or database members; declared \
             regions: us-east, eu-west, ap-south",
            (10, 10),
        ),
        case(
            "member at a witness",
            format!(
                "[[witnesses]]\nname = \"w\"\n\n{}",
                DATABASE.replace("region = \"eu-west\"", "region = \"w\"")
            ),
            "databases[0].members[1].region",
            "\"w\" is a witness",
            (17, 10),
        ),
        case(
            "quorum above regions and witnesses",
            "[[witnesses]]\nname = \"w\"\n\n[policy]\nquorum = 5\n",
            "policy.quorum",
            "quorum 5 is more than the 4 regions and witnesses that can vote",
            (5, 10),
        ),
    ]
}

#[test]
fn bad_configs_are_reported_at_the_right_place() {
    let mut failures = Vec::new();
    for c in cases() {
        let found = errors(&c.snippet);
        let want = Location {
            line: line(c.at.0),
            column: c.at.1,
        };
        let hit = found.iter().any(|d| {
            d.path.to_string() == c.path && d.message.contains(c.fragment) && d.location == want
        });
        if !hit {
            failures.push(format!(
                "{}: want {} at {}:{} containing {:?}; got {:#?}",
                c.name, c.path, want.line, want.column, c.fragment, found
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_base_config_is_valid_without_warnings() {
    let checked = parse(&doc("")).expect("base config is valid");
    assert!(checked.warnings.is_empty(), "{:#?}", checked.warnings);
    let checked = parse(&doc(&format!("{SERVICE}\n{DATABASE}"))).expect("valid");
    assert!(checked.warnings.is_empty(), "{:#?}", checked.warnings);
}

#[test]
fn validation_reports_every_problem_not_just_the_first() {
    let snippet = format!(
        "{}\n[policy]\nfall = 0\nquorum = 9\n",
        SERVICE
            .replace("region = \"us-east\"", "region = \"mars\"")
            .replace("timeout = \"2s\"", "timeout = \"9s\"")
    );
    let paths: Vec<String> = errors(&snippet)
        .iter()
        .map(|d| d.path.to_string())
        .collect();
    assert_eq!(
        paths,
        [
            "services[0].endpoints[0].region",
            "services[0].checks[0].timeout",
            "policy.fall",
            "policy.quorum"
        ]
    );
}

#[test]
fn errors_render_as_file_line_column_severity_path_message() {
    let d = &errors(&DATABASE.replace("region = \"eu-west\"", "region = \"mars\""))[0];
    assert_eq!(
        d.render(std::path::Path::new("bad.toml")),
        format!(
            "bad.toml:{}:10: error: databases[0].members[1].region: region \"mars\" is not declared; declared regions: us-east, eu-west, ap-south",
            line(14)
        )
    );
}

#[test]
fn warns_about_a_region_with_promotable_members_and_no_controller() {
    let region = "[[regions]]\nname = \"sa-east\"\nweight = 10\npriority = 4\n\n";
    let member = |promotion: &str| {
        format!(
            "{region}{DATABASE}\n[[databases.members]]\nid = \"m3\"\nregion = \"sa-east\"\naddress = \"10.0.0.3:3306\"\npromotion = \"{promotion}\"\n"
        )
    };
    let w = warnings(&member("neutral"));
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(w[0].path.to_string(), "databases[0].members[2].region");
    assert!(
        w[0].message
            .contains("region \"sa-east\" holds promotable members")
    );
    assert!(
        w[0].message
            .contains("nothing there could fence its own primary")
    );
    assert_eq!(
        w[0].location,
        Location {
            line: line(28),
            column: 10
        }
    );
    // A member that may never be promoted needs no fencing.
    assert!(warnings(&member("must_not")).is_empty());
}

/// Two regions, a controller in each, a service and a database across both;
/// `extra` is appended (and `[etcd]`, `[dns]` after it).
fn two_regions(extra: &str) -> String {
    format!(
        "cluster = \"two\"\n\n[[regions]]\nname = \"a\"\nweight = 100\npriority = 1\n\n\
         [[regions]]\nname = \"b\"\nweight = 100\npriority = 2\n\n\
         [[controllers]]\nid = \"ca\"\nregion = \"a\"\nlisten = \"127.0.0.1:7401\"\n\n\
         [[controllers]]\nid = \"cb\"\nregion = \"b\"\nlisten = \"127.0.0.1:7402\"\n\n\
         {}\n{}\n{extra}{ETCD}{DNS}",
        SERVICE.replace("us-east", "a"),
        DATABASE.replace("us-east", "a").replace("eu-west", "b")
    )
}

#[test]
fn two_regions_warn_unless_a_witness_can_vote() {
    // No witness: a region lost with its probe leaves 1 vantage of a quorum of 2.
    let checked = parse(&two_regions("")).expect("valid, with a warning");
    let w = &checked.warnings;
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(w[0].path.to_string(), "regions");
    assert_eq!(w[0].location, Location { line: 3, column: 1 });
    assert!(
        w[0].message.starts_with(
            "with 2 regions and no witness, a region lost together with its probe leaves 1 \
             vantage(s), below the quorum of 2: its targets can never be found Down, so nothing \
             is evacuated and no database fails over"
        ),
        "{}",
        w[0].message
    );
    assert!(w[0].hint.as_deref().unwrap_or("").contains("[[witnesses]]"));
    assert_eq!(checked.config.quorum(), 2);

    // A witness: three vantages, quorum 2, no warning.
    let checked = parse(&two_regions("[[witnesses]]\nname = \"w\"\n")).expect("valid");
    assert!(checked.warnings.is_empty(), "{:#?}", checked.warnings);
    let c = &checked.config;
    assert_eq!((c.vantage_count(), c.quorum()), (3, 2));
    assert!(c.is_vantage("w") && c.is_vantage("a") && !c.is_vantage("x"));
    assert!(c.region("w").is_none(), "a witness is no region");

    // An explicit quorum of 2 without a witness: the warning is on it.
    let checked = parse(&two_regions("[policy]\nquorum = 2\n")).expect("valid");
    let paths: Vec<String> = checked
        .warnings
        .iter()
        .map(|d| d.path.to_string())
        .collect();
    assert_eq!(paths, ["policy.quorum"]);

    // Two witnesses: four vantages, a majority of 3, still met without a region.
    let two = "[[witnesses]]\nname = \"w1\"\n\n[[witnesses]]\nname = \"w2\"\n";
    let checked = parse(&two_regions(two)).expect("valid");
    assert!(checked.warnings.is_empty(), "{:#?}", checked.warnings);
    assert_eq!(checked.config.quorum(), 3);
}

#[test]
fn three_regions_with_a_quorum_of_three_warn_too() {
    let w = warnings("[policy]\nquorum = 3\n");
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(w[0].path.to_string(), "policy.quorum");
    assert!(
        w[0].message.contains("with 3 regions and no witness"),
        "{}",
        w[0].message
    );
    assert!(
        w[0].message
            .contains("leaves 2 vantage(s), below the quorum of 3")
    );
}

#[test]
fn a_controller_may_run_at_a_witness() {
    let snippet = "[[witnesses]]\nname = \"w\"\n\n[[controllers]]\nid = \"cw\"\nregion = \"w\"\nlisten = \"127.0.0.1:7404\"\n";
    let checked = parse(&doc(snippet)).expect("valid");
    assert!(checked.warnings.is_empty(), "{:#?}", checked.warnings);
    // Four vantages: a majority of 3.
    assert_eq!(checked.config.quorum(), 3);
}

#[test]
fn stale_after_defaults_to_three_longest_intervals_and_may_be_set_above_them() {
    // Only the service's 5s check: 15s.
    let c = parse(&doc(SERVICE)).expect("valid").config;
    assert_eq!(c.stale_after(), Duration::from_secs(15));
    // No check at all: 3s.
    let c = parse(&doc("")).expect("valid").config;
    assert_eq!(c.stale_after(), Duration::from_secs(3));
    // Explicit and above 5s + 2s: taken as written.
    let c = parse(&doc(&format!(
        "{SERVICE}\n[policy]\nstale_after = \"8s\"\n"
    )))
    .expect("valid")
    .config;
    assert_eq!(c.stale_after(), Duration::from_secs(8));
    // A database check of its own is counted, not the default.
    let db = DATABASE.replace(
        "[credentials.admin]",
        "[databases.check]\ninterval = \"1s\"\ntimeout = \"500ms\"\n\n[credentials.admin]",
    );
    let c = parse(&doc(&format!("{db}\n[policy]\nstale_after = \"2s\"\n")))
        .expect("valid")
        .config;
    assert_eq!(c.stale_after(), Duration::from_secs(2));
}

#[test]
fn a_long_settle_window_warns() {
    let w = warnings("[policy]\nsettle_window = \"10m\"\n");
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(w[0].path.to_string(), "policy.settle_window");
    assert!(
        w[0].message.contains("5m or less is usual"),
        "{}",
        w[0].message
    );
}

#[test]
fn warns_about_allow_data_loss_outside_mongodb() {
    let w = warnings(&DATABASE.replace(
        "max_lag = \"5s\"",
        "max_lag = \"5s\"\nallow_data_loss = true",
    ));
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(w[0].path.to_string(), "databases[0].allow_data_loss");
    let mongo = DATABASE
        .replace(
            "max_lag = \"5s\"",
            "max_lag = \"5s\"\nallow_data_loss = true",
        )
        .replace("mariadb", "mongodb");
    assert!(warnings(&mongo).is_empty());
}

#[test]
fn secrets_are_not_read_by_the_check() {
    let snippet = DATABASE.replace(
        "{ env = \"PW\" }",
        "{ file = \"/definitely/not/here/switchyard-pw\" }",
    );
    assert!(parse(&doc(&snippet)).is_ok());
}

#[test]
fn defaults_are_filled_in() {
    let checked = parse(&doc(&format!("{SERVICE}\n{DATABASE}"))).expect("valid");
    let c = checked.config;
    assert_eq!(c.etcd.lease_ttl, Duration::from_secs(5));
    assert_eq!(c.etcd.primary_lease_ttl, None);
    assert_eq!(c.etcd.primary_lease_ttl(), Duration::from_secs(10));
    assert_eq!(c.etcd.tls, None);
    let p = &c.policy;
    assert_eq!((p.fall, p.rise, p.quorum), (3, 2, None));
    assert_eq!(p.stale_after, None);
    // Three times the longest interval: the service's and the database's
    // default check both run every 5s.
    assert_eq!(c.stale_after(), Duration::from_secs(15));
    assert_eq!(p.settle_window, Duration::from_secs(30));
    assert_eq!(p.failback, Mode::Manual);
    assert_eq!(p.failback_after, Duration::from_secs(600));
    assert_eq!(p.ramp, [25, 50, 100]);
    assert_eq!(p.ramp_step, Duration::from_secs(60));
    assert_eq!(p.db_failover, Mode::Manual);
    assert_eq!(p.anti_flap, Duration::from_secs(1800));
    assert_eq!(p.max_evacuated, 1);
    assert_eq!(c.quorum(), 2);
    let s = &c.services[0];
    assert_eq!(s.record_type, RecordType::A);
    let db = &c.databases[0];
    assert!(!db.allow_data_loss);
    assert_eq!(db.members[0].promotion, Promotion::Neutral);
    assert_eq!(db.check, DatabaseCheck::default());
    assert_eq!(db.check.interval, Duration::from_secs(5));
    let Dns::Route53(r) = &c.dns else {
        panic!("route53 expected")
    };
    assert_eq!(r.aws_region, "us-east-1");
    assert_eq!(r.max_requests_per_second, 10);
    assert_eq!(r.endpoint, None);
    let user = c
        .member_credentials(db, &db.members[0])
        .expect("default credentials apply");
    assert_eq!(user.password, Secret::Env("PW".into()));
}

#[test]
fn the_file_backend_needs_only_a_path() {
    let snippet = "[dns]\nbackend = \"file\"\npath = \"/tmp/weights.json\"\n";
    let c = parse(&doc(snippet)).expect("valid").config;
    assert_eq!(
        c.dns,
        Dns::File(FileDns {
            path: "/tmp/weights.json".into()
        })
    );
    assert_eq!(c.dns.backend(), "file");
}

#[test]
fn http_check_defaults() {
    let snippet = SERVICE.replace("kind = \"tcp\"", "kind = \"https\"");
    let c = parse(&doc(&snippet)).expect("valid").config;
    let Check::Https(http) = &c.services[0].checks[0] else {
        panic!("https check expected")
    };
    assert_eq!(http.path, "/");
    assert_eq!(http.expect_status, 200);
    assert_eq!(http.max_latency, None);
}

#[test]
fn default_quorum_is_a_majority_of_at_least_two() {
    let p = Policy::default();
    let q: Vec<usize> = (1..=6).map(|n| p.quorum_for(n)).collect();
    assert_eq!(q, [1, 2, 2, 3, 3, 4]);
    let explicit = Policy {
        quorum: Some(1),
        ..Policy::default()
    };
    assert_eq!(explicit.quorum_for(3), 1);
}

#[test]
fn the_example_config_is_valid_without_warnings() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/switchyard.toml");
    let checked = load(std::path::Path::new(path)).expect("the example is valid");
    assert!(checked.warnings.is_empty(), "{:#?}", checked.warnings);
    let c = checked.config;
    let regions: Vec<&str> = c.regions.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(regions, ["us-east", "eu-west", "ap-south"]);
    assert_eq!(c.controllers.len(), 3);
    assert_eq!(c.databases[0].kind, DatabaseKind::Mariadb);
    assert_eq!(c.databases[0].members.len(), 3);
    assert!(matches!(c.dns, Dns::Route53(_)));
}

#[test]
fn an_unreadable_file_names_the_file() {
    let err = load(std::path::Path::new("/no/such/switchyard.toml")).unwrap_err();
    assert!(matches!(err, LoadError::Read { .. }));
    assert!(
        err.to_string()
            .starts_with("/no/such/switchyard.toml: cannot read config file")
    );
}

#[test]
fn operators_need_one_well_formed_token_and_unique_names() {
    let hash = "a".repeat(64);
    let ok = format!(
        "[[operators]]\nname = \"vera\"\nrole = \"viewer\"\ntoken_sha256 = \"{hash}\"\n\n\
         [[operators]]\nname = \"ada\"\nrole = \"admin\"\ntoken_file = \"/etc/switchyard/ada.token\"\n"
    );
    let w = warnings(&ok);
    assert!(
        w.len() == 1 && w[0].message.contains("without [tls]"),
        "tokens in plaintext are worth a warning: {w:#?}"
    );
    // (snippet, key path, message fragment)
    let cases = [
        (
            "[[operators]]\nname = \"x\"\nrole = \"viewer\"\n".to_string(),
            "operators[0]",
            "no token",
        ),
        (
            format!(
                "[[operators]]\nname = \"x\"\nrole = \"viewer\"\ntoken_sha256 = \"{hash}\"\ntoken_file = \"/t\"\n"
            ),
            "operators[0]",
            "not both",
        ),
        (
            "[[operators]]\nname = \"x\"\nrole = \"viewer\"\ntoken_sha256 = \"abc\"\n".to_string(),
            "operators[0].token_sha256",
            "64 hex digits",
        ),
        (
            format!(
                "[[operators]]\nname = \"x\"\nrole = \"viewer\"\ntoken_sha256 = \"{hash}\"\n\n\
                 [[operators]]\nname = \"x\"\nrole = \"admin\"\ntoken_file = \"/t\"\n"
            ),
            "operators[1].name",
            "duplicate operator name",
        ),
        (
            format!("[[operators]]\nname = \"x\"\nrole = \"root\"\ntoken_sha256 = \"{hash}\"\n"),
            "operators[0].role",
            "unknown variant",
        ),
        (
            format!(
                "[[operators]]\nname = \"x\"\nrole = \"viewer\"\ntoken_sha256 = \"{hash}\"\n\n\
                 [[operators]]\nname = \"y\"\nrole = \"admin\"\ntoken_sha256 = \"{hash}\"\n"
            ),
            "operators[1].token_sha256",
            "duplicate operator token",
        ),
        (
            "[[operators]]\nname = \"x\"\nrole = \"viewer\"\ntoken_sha256 = \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"\n".to_string(),
            "operators[0].token_sha256",
            "empty token",
        ),
    ];
    for (snippet, path, fragment) in cases {
        let errs = errors(&snippet);
        assert!(
            errs.iter()
                .any(|d| d.path.to_string() == path && d.message.contains(fragment)),
            "{path} / {fragment}: {errs:#?}"
        );
    }
}
