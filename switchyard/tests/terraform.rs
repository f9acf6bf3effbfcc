//! The Terraform modules (`terraform/`), checked without a Terraform
//! provider: none can be had on these machines (no registry access), so
//! `terraform validate` and `plan` never run here. Instead:
//!
//! - every `.tf` and `.tfvars` file parses with python-hcl2, and the
//!   modules keep their conventions (typed, described variables; described
//!   outputs; pinned providers; a README);
//! - checkov passes, and each of its skips carries a reason;
//! - the config template, rendered with the example's variables by
//!   `terraform/tests/render.py`, passes `switchyard config check`;
//! - the controller's IAM policy grants exactly the three Route 53 calls
//!   the controller makes, on exactly the hosted zone and its changes;
//! - where a `terraform` binary is on `PATH` (it needs no provider for
//!   this), render.py agrees with `templatefile` and the example's values
//!   pass its validation blocks.
//!
//! The Python tools come from the project virtualenv that `scripts/setup`
//! makes (python-hcl2 and checkov pinned there); without it the tests are
//! skipped with a message.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

/// The repository root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the controller crate lives in the workspace")
        .to_path_buf()
}

/// `terraform/` in the repository.
fn terraform_dir() -> PathBuf {
    root().join("terraform")
}

/// A program of the project virtualenv, or `None` (with a message saying
/// the test is skipped) when `scripts/setup` has not made it.
fn venv_bin(name: &str) -> Option<PathBuf> {
    let path = root().join(".venv/bin").join(name);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED: {} is missing; run scripts/setup (it makes the venv with python-hcl2 and checkov)",
            path.display()
        );
        None
    }
}

/// Runs a command, panicking with its output unless it succeeds; returns
/// stdout.
fn run_ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs a command and returns its output, whatever its exit status.
fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// Every Terraform file under `terraform/`, parsed by `terraform/tests/hcl.py`
/// into `{relative path: file}`; parsed once per test binary.
fn parsed() -> Option<&'static Value> {
    static PARSED: OnceLock<Value> = OnceLock::new();
    let python = venv_bin("python")?;
    Some(PARSED.get_or_init(|| {
        let json = run_ok(
            Command::new(python)
                .arg(terraform_dir().join("tests/hcl.py"))
                .arg(terraform_dir()),
        );
        serde_json::from_str(&json).expect("hcl.py prints JSON")
    }))
}

/// python-hcl2 wraps each attribute's value in a one-element list; this is
/// the value itself.
fn attr<'a>(block: &'a Value, name: &str) -> Option<&'a Value> {
    match block.get(name)? {
        Value::Array(items) if items.len() == 1 => Some(&items[0]),
        other => panic!("attribute {name} is not a one-element list: {other}"),
    }
}

/// A string attribute.
fn attr_str<'a>(block: &'a Value, name: &str) -> Option<&'a str> {
    attr(block, name).map(|v| {
        v.as_str()
            .unwrap_or_else(|| panic!("{name} is not a string: {v}"))
    })
}

/// A list-of-strings attribute, as a set.
fn attr_set(block: &Value, name: &str) -> BTreeSet<String> {
    match attr(block, name) {
        None => BTreeSet::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().expect("a string").to_owned())
            .collect(),
        Some(other) => panic!("{name} is not a literal list of strings: {other}"),
    }
}

/// The blocks of `kind` (`variable`, `output`, `module`, ...) in one parsed
/// file, as (label, body) pairs; `resource` and `data` are (type.name, body).
fn blocks<'a>(file: &'a Value, kind: &str) -> Vec<(String, &'a Value)> {
    let mut out = Vec::new();
    for entry in file
        .get(kind)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for (label, body) in entry.as_object().expect("a block map") {
            if matches!(kind, "resource" | "data") {
                for (name, inner) in body.as_object().expect("named blocks") {
                    out.push((format!("{label}.{name}"), inner));
                }
            } else {
                out.push((label.clone(), body));
            }
        }
    }
    out
}

/// The parsed files whose path starts with `prefix`.
fn files<'a>(all: &'a Value, prefix: &str) -> Vec<(&'a str, &'a Value)> {
    all.as_object()
        .expect("a map of files")
        .iter()
        .filter(|(path, _)| path.starts_with(prefix))
        .map(|(path, file)| (path.as_str(), file))
        .collect()
}

const MODULES: [&str; 3] = ["switchyard-region", "switchyard-dns", "etcd-cluster"];

#[test]
fn every_terraform_file_parses_and_follows_the_module_conventions() {
    let Some(all) = parsed() else { return };
    for dir in MODULES
        .iter()
        .map(|m| format!("modules/{m}"))
        .chain(["examples/three-region".to_owned()])
    {
        for name in ["versions.tf", "variables.tf", "main.tf", "outputs.tf"] {
            let path = format!("{dir}/{name}");
            assert!(
                all.get(&path).is_some(),
                "{path} is missing or did not parse"
            );
        }
        assert!(
            terraform_dir().join(&dir).join("README.md").exists(),
            "{dir} has no README.md"
        );
        // Pinned providers and Terraform version.
        let versions = &all[&format!("{dir}/versions.tf")];
        let terraform = &versions["terraform"][0];
        let required = attr_str(terraform, "required_version").expect("required_version");
        assert!(
            required.starts_with(">= 1.9"),
            "{dir}: required_version {required}"
        );
        let providers = attr(terraform, "required_providers").expect("required_providers");
        let aws = attr(providers, "aws").expect("the aws provider");
        assert_eq!(aws["source"], "hashicorp/aws", "{dir}");
        let names = providers.as_object().expect("a map").keys();
        for name in names.filter(|n| !n.starts_with("__")) {
            let provider = attr(providers, name).expect("a provider");
            assert!(
                provider["version"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("~> ")),
                "{dir}: provider {name} is not pinned with ~>: {provider}"
            );
        }
        assert!(
            aws["version"]
                .as_str()
                .is_some_and(|v| v.starts_with("~> 5.")),
            "{dir}: the AWS provider is pinned with ~> 5.x, not {}",
            aws["version"]
        );
    }
    // Every variable typed and described, every output described,
    // everywhere.
    let mut variables = 0;
    for (path, file) in files(all, "") {
        for (name, body) in blocks(file, "variable") {
            variables += 1;
            assert!(
                attr(body, "type").is_some(),
                "{path}: variable {name} has no type"
            );
            let text = attr_str(body, "description").unwrap_or("");
            assert!(text.len() > 10, "{path}: variable {name} is not described");
            for v in body
                .get("validation")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                assert!(
                    attr_str(v, "error_message").is_some_and(|m| m.ends_with('.')),
                    "{path}: variable {name}: a validation without a sentence for error_message"
                );
            }
        }
        for (name, body) in blocks(file, "output") {
            let text = attr_str(body, "description").unwrap_or("");
            assert!(text.len() > 10, "{path}: output {name} is not described");
        }
    }
    assert!(
        variables >= 30,
        "only {variables} variables found: did parsing miss files?"
    );
}

#[test]
fn checkov_passes_and_every_skip_says_why() {
    let Some(checkov) = venv_bin("checkov") else {
        return;
    };
    // `--skip-download`: no Prisma Cloud look-ups (CI has no network); the
    // run happens in a temporary directory so nothing is left behind.
    let cwd = tempfile::tempdir().expect("temp dir");
    let out = output(
        Command::new(checkov)
            .args(["-d"])
            .arg(terraform_dir())
            .args(["--quiet", "--compact", "--skip-download"])
            .current_dir(cwd.path()),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "checkov found problems ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Failed checks: 0"),
        "checkov printed no clean summary:\n{stdout}"
    );
    // Each inline skip names a check and gives a reason.
    let mut skips = 0;
    for entry in walk(&terraform_dir()) {
        if entry.extension().is_some_and(|e| e == "tf") {
            let text = std::fs::read_to_string(&entry).expect("readable .tf");
            for line in text.lines().filter(|l| l.contains("checkov:skip")) {
                skips += 1;
                let rest = line
                    .trim()
                    .strip_prefix("#checkov:skip=")
                    .unwrap_or_else(|| panic!("{}: malformed skip {line:?}", entry.display()));
                let (id, reason) = rest.split_once(':').unwrap_or((rest, ""));
                assert!(
                    id.starts_with("CKV") && reason.trim().len() >= 20,
                    "{}: skip {line:?} needs CKV_...:reason",
                    entry.display()
                );
            }
        }
    }
    assert!(skips > 0, "no skips found: did the walk miss the modules?");
}

/// Every file under `dir`, recursively.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Renders the config template with `vars` (`None`: the example's
/// terraform.tfvars) and runs `switchyard config check` on it; returns the
/// check's output.
fn render_and_check(python: &Path, vars: Option<&Value>) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let template =
        terraform_dir().join("modules/switchyard-region/templates/switchyard.toml.tftpl");
    let mut cmd = Command::new(python);
    cmd.arg(terraform_dir().join("tests/render.py"));
    match vars {
        None => {
            cmd.arg("--example")
                .arg(terraform_dir().join("examples/three-region"))
                .arg(&template);
        }
        Some(vars) => {
            let path = dir.path().join("vars.json");
            std::fs::write(&path, vars.to_string()).expect("write vars");
            cmd.arg(&template).arg(&path);
        }
    }
    let config = run_ok(&mut cmd);
    let path = dir.path().join("switchyard.toml");
    std::fs::write(&path, &config).expect("write config");
    let out = output(
        Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["config", "check"])
            .arg(&path),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.starts_with("ok\n"),
        "the rendered config does not pass `switchyard config check`:\n{text}\n--- config ---\n{config}"
    );
    assert!(
        !text.contains(": warning: "),
        "the rendered config draws warnings:\n{text}"
    );
    text
}

#[test]
fn the_rendered_config_passes_config_check() {
    let (Some(python), Some(all)) = (venv_bin("python"), parsed()) else {
        return;
    };
    // render.py gives the template {cluster, hosted_zone_id}: check that
    // this is what the module passes, and that the example hands its
    // `cluster` variable to every region unchanged.
    let main = &all["modules/switchyard-region/main.tf"];
    let config = main["locals"]
        .as_array()
        .expect("locals")
        .iter()
        .find_map(|l| attr_str(l, "config"))
        .expect("local.config");
    assert!(
        config.contains("templatefile(\"${path.module}/templates/switchyard.toml.tftpl\"")
            && config.contains(
                "{'cluster': '${var.cluster}', 'hosted_zone_id': '${var.hosted_zone_id}'}"
            ),
        "local.config no longer passes exactly {{cluster, hosted_zone_id}}: update render.py\n{config}"
    );
    let example = &all["examples/three-region/main.tf"];
    let regions: Vec<_> = blocks(example, "module")
        .into_iter()
        .filter(|(_, m)| attr_str(m, "source") == Some("../../modules/switchyard-region"))
        .collect();
    assert_eq!(regions.len(), 3, "three switchyard-region calls");
    for (name, m) in &regions {
        assert_eq!(
            attr_str(m, "cluster"),
            Some("${var.cluster}"),
            "module.{name}"
        );
    }

    let text = render_and_check(&python, None);
    for line in [
        "ctl-us-east",
        "ctl-eu-west",
        "ctl-ap-south",
        "mutual TLS",
        "route53 zone",
    ] {
        assert!(text.contains(line), "the summary lacks {line:?}:\n{text}");
    }

    // The embedded backend renders a valid config too.
    let tfvars = &all["examples/three-region/terraform.tfvars"];
    let mut cluster = attr(tfvars, "cluster")
        .expect("cluster in terraform.tfvars")
        .clone();
    cluster["dns"]["backend"] = "embedded".into();
    let vars = serde_json::json!({ "cluster": cluster, "hosted_zone_id": null });
    let text = render_and_check(&python, Some(&vars));
    assert!(text.contains("embedded"), "{text}");
}

/// One (action, resource) pair that the controller's policy allows.
type Grant = (String, String);

#[test]
fn the_controller_policy_grants_exactly_the_route53_calls_it_makes() {
    let Some(all) = parsed() else { return };
    let zone =
        "arn:${data.aws_partition.current.partition}:route53:::hostedzone/${var.hosted_zone_id}";
    let change = "arn:${data.aws_partition.current.partition}:route53:::change/*";
    let expected: BTreeSet<Grant> = [
        ("route53:ChangeResourceRecordSets", zone),
        ("route53:ListResourceRecordSets", zone),
        ("route53:GetChange", change),
    ]
    .into_iter()
    .map(|(a, r)| (a.to_owned(), r.to_owned()))
    .collect();

    let iam = &all["modules/switchyard-region/iam.tf"];
    let docs = blocks(iam, "data");
    let policy = docs
        .iter()
        .find(|(name, _)| name == "aws_iam_policy_document.route53")
        .map(|(_, body)| *body)
        .expect("data.aws_iam_policy_document.route53");
    // Nothing merged in from elsewhere.
    for key in policy.as_object().expect("a block").keys() {
        assert!(
            ["statement", "count", "__start_line__", "__end_line__"].contains(&key.as_str()),
            "the policy document has `{key}`, which can add grants"
        );
    }
    let mut granted = BTreeSet::new();
    for statement in policy["statement"].as_array().expect("statements") {
        for key in statement.as_object().expect("a statement").keys() {
            assert!(
                ["sid", "effect", "actions", "resources", "condition"].contains(&key.as_str()),
                "a statement has `{key}` (not_actions, not_resources and principals widen a grant)"
            );
        }
        assert_eq!(attr_str(statement, "effect"), Some("Allow"));
        let actions = attr_set(statement, "actions");
        let resources = attr_set(statement, "resources");
        assert!(!actions.is_empty() && !resources.is_empty(), "{statement}");
        for a in &actions {
            for r in &resources {
                granted.insert((a.clone(), r.clone()));
            }
        }
        // Conditions may only narrow ChangeResourceRecordSets.
        for c in statement
            .get("condition")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let test = attr_str(c, "test").expect("condition test");
            let variable = attr_str(c, "variable").expect("condition variable");
            assert!(
                ["StringEquals", "ForAllValues:StringEquals"].contains(&test)
                    && !test.contains("IfExists"),
                "condition test {test} does not only narrow"
            );
            assert!(
                variable.starts_with("route53:ChangeResourceRecordSets")
                    && actions == BTreeSet::from(["route53:ChangeResourceRecordSets".to_owned()]),
                "condition on {variable} for {actions:?}"
            );
        }
    }
    assert_eq!(granted, expected, "the controller's Route 53 grants");

    // That document is the role's only policy, and the role only lets EC2
    // assume it; no other IAM anywhere in terraform/.
    let resources = blocks(iam, "resource");
    let names: BTreeSet<_> = resources.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "aws_iam_instance_profile.controller",
            "aws_iam_role.controller",
            "aws_iam_role_policy.route53",
        ])
    );
    for (name, body) in &resources {
        if name == "aws_iam_role_policy.route53" {
            assert_eq!(
                attr_str(body, "policy"),
                Some("${data.aws_iam_policy_document.route53[0].json}")
            );
        }
        if name == "aws_iam_role.controller" {
            for key in [
                "managed_policy_arns",
                "inline_policy",
                "permissions_boundary",
            ] {
                assert!(body.get(key).is_none(), "the role sets {key}");
            }
            assert_eq!(
                attr_str(body, "assume_role_policy"),
                Some("${data.aws_iam_policy_document.assume_role.json}")
            );
        }
    }
    let assume = docs
        .iter()
        .find(|(name, _)| name == "aws_iam_policy_document.assume_role")
        .map(|(_, body)| *body)
        .expect("assume_role document");
    let statements = assume["statement"].as_array().expect("statements");
    assert_eq!(statements.len(), 1);
    assert_eq!(
        attr_set(&statements[0], "actions"),
        BTreeSet::from(["sts:AssumeRole".to_owned()])
    );
    let principal = &statements[0]["principals"][0];
    assert_eq!(attr_str(principal, "type"), Some("Service"));
    assert_eq!(
        attr_set(principal, "identifiers"),
        BTreeSet::from(["ec2.amazonaws.com".to_owned()])
    );
    for (path, file) in files(all, "") {
        if path == "modules/switchyard-region/iam.tf" {
            continue;
        }
        for kind in ["resource", "data"] {
            for (name, _) in blocks(file, kind) {
                assert!(
                    !name.starts_with("aws_iam_"),
                    "{path}: {kind} {name}: IAM belongs in switchyard-region/iam.tf, where this test looks"
                );
            }
        }
    }
    // The controller is the one thing with an instance profile.
    let mut with_profile = Vec::new();
    for (path, file) in files(all, "") {
        for (name, body) in blocks(file, "resource") {
            if body.get("iam_instance_profile").is_some() {
                with_profile.push(format!("{path}: {name}"));
            }
        }
    }
    assert_eq!(
        with_profile,
        ["modules/switchyard-region/main.tf: aws_instance.controller"]
    );
}

/// `terraform` on `PATH`, if any.
fn terraform_bin() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("terraform"))
        .find(|p| p.is_file())
}

#[test]
fn render_py_agrees_with_terraform_templatefile_where_terraform_exists() {
    let (Some(python), Some(all)) = (venv_bin("python"), parsed()) else {
        return;
    };
    let Some(terraform) = terraform_bin() else {
        eprintln!(
            "SKIPPED: no terraform on PATH, so render.py is not compared with templatefile here \
             (the other tests still check what it renders)"
        );
        return;
    };
    let template =
        terraform_dir().join("modules/switchyard-region/templates/switchyard.toml.tftpl");
    let tfvars = &all["examples/three-region/terraform.tfvars"];
    let mut cluster = attr(tfvars, "cluster").expect("cluster").clone();
    // The module's type constraint gives left-out optional attributes the
    // value null; jsondecode does not, so add them as Terraform would.
    for service in cluster["services"].as_array_mut().expect("services") {
        for check in service["checks"].as_array_mut().expect("checks") {
            check
                .as_object_mut()
                .expect("a check")
                .entry("path")
                .or_insert(Value::Null);
        }
    }
    for database in cluster["databases"].as_array_mut().expect("databases") {
        let database = database.as_object_mut().expect("a database");
        database.entry("writer_record").or_insert(Value::Null);
    }
    for (backend, zone) in [
        ("route53", Value::from("Z0PLACEHOLDER0ZONE0ID")),
        ("embedded", Value::Null),
    ] {
        cluster["dns"]["backend"] = backend.into();
        let dir = tempfile::tempdir().expect("temp dir");
        let vars = dir.path().join("vars.json");
        let json = serde_json::json!({ "cluster": cluster, "hosted_zone_id": zone });
        std::fs::write(&vars, json.to_string()).expect("write vars");
        let ours = run_ok(
            Command::new(&python)
                .arg(terraform_dir().join("tests/render.py"))
                .arg(&template)
                .arg(&vars),
        );
        let expr = format!(
            "jsonencode(templatefile({}, jsondecode(file({}))))",
            Value::from(template.display().to_string()),
            Value::from(vars.display().to_string())
        );
        let (stdout, stderr) = terraform_console(&terraform, dir.path(), &expr);
        assert!(
            !stderr.contains("Error:"),
            "templatefile failed:\n{stdout}{stderr}"
        );
        // console prints the JSON text as a quoted string; the rendered
        // config has no `${` or `%{`, the only sequences it would escape
        // differently from JSON.
        let json_text: String = serde_json::from_str(stdout.trim()).expect("a quoted string");
        let theirs: String = serde_json::from_str(&json_text).expect("JSON of a string");
        assert_eq!(
            ours, theirs,
            "render.py and templatefile differ ({backend})"
        );
    }
}

/// Runs `terraform console` in `dir` on one expression; returns (stdout,
/// stderr). console exits 0 even when a variable fails its validation: the
/// error is on stderr and stdout gets a warning before the value.
fn terraform_console(terraform: &Path, dir: &Path, expr: &str) -> (String, String) {
    let mut child = Command::new(terraform)
        .args(["console", "-no-color"])
        .current_dir(dir)
        .env("CHECKPOINT_DISABLE", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("terraform console starts");
    std::io::Write::write_all(
        &mut child.stdin.take().expect("stdin"),
        format!("{expr}\n").as_bytes(),
    )
    .expect("write the expression");
    let out = child.wait_with_output().expect("terraform console");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "terraform console failed:\n{stdout}{stderr}"
    );
    (stdout, stderr)
}

#[test]
fn the_examples_values_pass_its_variable_validations_where_terraform_exists() {
    let Some(terraform) = terraform_bin() else {
        eprintln!("SKIPPED: no terraform on PATH, so the validation blocks are not evaluated here");
        return;
    };
    // `terraform console` needs no provider when the directory declares
    // none: the example's variables.tf and terraform.tfvars alone let it
    // evaluate every validation block against the example's values.
    let dir = tempfile::tempdir().expect("temp dir");
    let example = terraform_dir().join("examples/three-region");
    std::fs::copy(
        example.join("variables.tf"),
        dir.path().join("variables.tf"),
    )
    .expect("copy");
    let tfvars = std::fs::read_to_string(example.join("terraform.tfvars")).expect("tfvars");
    std::fs::write(dir.path().join("terraform.tfvars"), &tfvars).expect("write tfvars");
    let (stdout, stderr) = terraform_console(&terraform, dir.path(), "length(var.cluster.regions)");
    assert!(
        !stderr.contains("Error:") && stdout.trim() == "3",
        "the example's values fail its validations:\n{stdout}{stderr}"
    );
    // And a value a validation forbids is caught (dns.zone no longer the
    // domain), so the check above can fail.
    let bad = tfvars.replace(
        "zone                    = \"example.com.\"",
        "zone = \"example.net.\"",
    );
    assert_ne!(bad, tfvars, "the example's dns.zone line moved");
    std::fs::write(dir.path().join("terraform.tfvars"), bad).expect("write tfvars");
    let (stdout, stderr) = terraform_console(&terraform, dir.path(), "length(var.cluster.regions)");
    assert!(
        stderr.contains("Error: Invalid value for variable"),
        "a zone other than the domain passed validation:\n{stdout}{stderr}"
    );
}
