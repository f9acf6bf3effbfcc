//! The lab server (`switchyard lab serve --dir D`, started by `lab up`): it
//! runs the deployment, answers the verbs on `D/control.sock` one at a
//! time, keeps `D/lab.json` current, and stops everything on `lab down`,
//! SIGTERM or SIGINT.
//!
//! Every fixture process is started, killed and restarted from the
//! runtime's `block_on` future, on the main thread: the fixtures' parent-
//! death signal follows the thread that spawned a child, so a child spawned
//! from a worker thread could outlive nothing, or die with the thread.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use switchyard_labkit::HttpMode;
use switchyard_labkit::wait::wait_for;

use super::verbs::{Part, Reply, Request, SOCKET, STATE};
use super::{Lab, LabDir, Network, REGIONS, say};

/// What `lab fail` broke, by region index.
type Broken = BTreeMap<usize, BTreeSet<Part>>;

/// Runs the lab in `dir` until `lab down` or a termination signal.
/// Returns the exit code.
pub async fn serve(dir: &Path, out: &mut dyn Write) -> anyhow::Result<i32> {
    use tokio::signal::unix::{SignalKind, signal};
    // Registered first: a `down` racing the start-up is a SIGTERM we must
    // not miss.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let bin = std::env::current_exe()?;
    let mut lab = Lab::up_in(&bin, LabDir::Kept(dir.to_path_buf()), out).await?;
    let leader = leader(&lab).await?;
    say(out, &format!("leader elected: controller at {leader}"))?;
    steady(&lab).await?;
    say(
        out,
        "steady: every region Healthy, the orders primary's lease taken",
    )?;
    let sock = dir.join(SOCKET);
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock)?;
    let mut broken = Broken::new();
    write_state(&mut lab, &broken)?;
    say(out, "ready")?;
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        let Ok((stream, _)) = conn else { continue };
        match handle(stream, &mut lab, &mut broken, out).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => say(out, &format!("request failed: {e:#}"))?,
        }
        write_state(&mut lab, &broken)?;
    }
    say(out, "stopping")?;
    let _ = std::fs::remove_file(dir.join(STATE));
    let _ = std::fs::remove_file(&sock);
    drop(lab);
    say(out, "stopped")?;
    Ok(0)
}

/// Serves one request; `Ok(true)` when it was `down`.
async fn handle(
    stream: UnixStream,
    lab: &mut Lab,
    broken: &mut Broken,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    switchyard_host::time::timeout(
        Duration::from_secs(10),
        BufReader::new(read).read_line(&mut line),
    )
    .await??;
    let (reply, stop) = match serde_json::from_str::<Request>(&line) {
        Err(e) => (refuse(format!("not a lab request ({e}): {line:?}")), false),
        Ok(Request::Down) => (
            Reply {
                ok: true,
                text: "lab: stopping every process".into(),
            },
            true,
        ),
        Ok(req) => {
            say(out, &format!("request: {req:?}"))?;
            let reply = match execute(&req, lab, broken).await {
                Ok(text) => Reply { ok: true, text },
                Err(e) => refuse(format!("{e:#}")),
            };
            say(out, &format!("reply: {}", reply.text.trim_end()))?;
            (reply, false)
        }
    };
    let mut bytes = serde_json::to_vec(&reply)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    write.shutdown().await?;
    Ok(stop)
}

fn refuse(text: String) -> Reply {
    Reply { ok: false, text }
}

async fn execute(req: &Request, lab: &mut Lab, broken: &mut Broken) -> anyhow::Result<String> {
    match req {
        Request::Status => status(lab, broken).await,
        Request::Fail { region, parts } => {
            let i = Lab::region_index(region)?;
            let parts: Vec<Part> = if parts.is_empty() {
                Part::ALL.to_vec()
            } else {
                parts.clone()
            };
            let mut done = Vec::new();
            for p in parts {
                match p {
                    Part::Endpoint => {
                        lab.endpoints[i].set_mode(HttpMode::Refuse).await?;
                        done.push(format!(
                            "endpoint {} refuses connections",
                            lab.endpoints[i].addr()
                        ));
                    }
                    Part::Controller => {
                        lab.controllers[i].kill();
                        done.push(format!("controller {} killed", lab.controllers[i].id()));
                    }
                    Part::Probe => {
                        lab.probes[i].kill();
                        done.push(format!("probe {} killed", lab.probes[i].id));
                    }
                    Part::Database => {
                        lab.db.kill9(i);
                        done.push(format!("orders-{} (mariadbd) killed with -9", i + 1));
                    }
                    Part::Etcd => {
                        lab.etcd.kill(i);
                        done.push(format!("etcd member m{i} killed"));
                    }
                    Part::Network => match &mut lab.net {
                        Network::Namespaces(n) => {
                            n.partition(i).map_err(|e| anyhow::anyhow!("{e}"))?;
                            done.push(format!(
                                "cut off: every packet into or out of {} ({}) is dropped; its processes still run",
                                n.name(i),
                                n.addr(i)
                            ));
                        }
                        Network::Loopback { why } => anyhow::bail!(
                            "cannot partition {region}: this lab runs every region on loopback ({why}); \
                             run it as root with iproute2 and iptables (scripts/setup installs them)"
                        ),
                    },
                }
                broken.entry(i).or_default().insert(p);
            }
            Ok(format!("{region}: {}\n", done.join("; ")))
        }
        Request::Heal { region } => {
            let i = Lab::region_index(region)?;
            let mut done = Vec::new();
            // The links first, then etcd and the database: a controller
            // that starts needs them.
            if let Network::Namespaces(n) = &mut lab.net
                && n.is_partitioned(i)
            {
                n.heal(i).map_err(|e| anyhow::anyhow!("{e}"))?;
                done.push(format!("links of {} restored", n.name(i)));
            }
            if lab.etcd.pid(i).is_none() {
                lab.etcd.restart(i).await?;
                done.push(format!("etcd member m{i} restarted"));
            }
            if !lab.db.is_running(i) {
                lab.db.restart(i).await?;
                done.push(format!(
                    "orders-{} restarted (read-only, as a crashed primary must come back)",
                    i + 1
                ));
            }
            if !lab.controllers[i].is_running() {
                lab.controllers[i].restart().await?;
                done.push(format!("controller {} restarted", lab.controllers[i].id()));
            }
            if !lab.probes[i].is_running() {
                let dir = lab.dir().to_path_buf();
                lab.probes[i].restart(&dir).await?;
                done.push(format!("probe {} restarted", lab.probes[i].id));
            }
            if lab.endpoints[i].mode() != HttpMode::Healthy {
                lab.endpoints[i].set_mode(HttpMode::Healthy).await?;
                done.push(format!("endpoint {} healthy", lab.endpoints[i].addr()));
            }
            broken.remove(&i);
            if done.is_empty() {
                done.push("nothing was broken".into());
            }
            Ok(format!("{region}: {}\n", done.join("; ")))
        }
        Request::RenewCerts { days } => {
            let valid_for = Duration::from_secs(u64::from(*days) * 86_400);
            let files = lab.renew_certificates(valid_for)?;
            let mut t = format!(
                "renewed {} certificates, valid for {days} days from now (new keys, same files); \
                 the processes reload them within seconds:\n",
                files.len()
            );
            for f in files {
                writeln!(t, "  {}", f.display())?;
            }
            Ok(t)
        }
        Request::Down => Ok(String::new()),
    }
}

/// The current leader's gRPC address, waiting for one.
async fn leader(lab: &Lab) -> anyhow::Result<String> {
    let etcd = lab.etcd().client().await?;
    wait_for("a leader", super::STEP_TIMEOUT, || {
        let mut c = etcd.clone();
        async move {
            let r = c
                .leader("/switchyard/lab/leader")
                .await
                .map_err(|e| e.to_string())?;
            r.kv()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
                .ok_or_else(|| "no leader yet".to_string())
        }
    })
    .await
}

/// Waits until the lab is steady: every region Healthy at its base weight
/// and the primary's lease taken by its region's controller. Before that a
/// failure is judged on no evidence: with no fresh vantages nothing is
/// Down, and a primary its region never vouched for is not replaced.
async fn steady(lab: &Lab) -> anyhow::Result<()> {
    let etcd = lab.etcd().client().await?;
    let keys = crate::store::keys::Keys::new("lab");
    wait_for("the lab to be steady", super::STEP_TIMEOUT * 2, || {
        let mut c = etcd.clone();
        let keys = &keys;
        async move {
            for r in REGIONS {
                let key = keys.region(r);
                let kv = c.get(key.as_str(), None).await.map_err(|e| e.to_string())?;
                let v: serde_json::Value = kv
                    .kvs()
                    .first()
                    .and_then(|kv| serde_json::from_slice(kv.value()).ok())
                    .ok_or_else(|| format!("no state for {r} yet"))?;
                if v["status"] != "Healthy" {
                    return Err(format!("{r} is {}", v["status"]));
                }
            }
            for key in [keys.primary_lease("orders"), keys.vouched("orders")] {
                let kv = c.get(key.as_str(), None).await.map_err(|e| e.to_string())?;
                if kv.kvs().is_empty() {
                    return Err(format!("nothing at {key} yet"));
                }
            }
            Ok::<(), String>(())
        }
    })
    .await
}

/// The leader's address right now, if any (no waiting).
async fn leader_now(lab: &Lab) -> Option<String> {
    let mut c = lab.etcd().client().await.ok()?;
    let r =
        switchyard_host::time::timeout(Duration::from_secs(2), c.leader("/switchyard/lab/leader"))
            .await
            .ok()?
            .ok()?;
    r.kv()
        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
}

fn broken_text(broken: &Broken, i: usize, part: Part) -> &'static str {
    if broken.get(&i).is_some_and(|b| b.contains(&part)) {
        "FAILED"
    } else {
        "up"
    }
}

async fn status(lab: &mut Lab, broken: &Broken) -> anyhow::Result<String> {
    let mut t = String::new();
    writeln!(t, "lab in {}", lab.dir().display())?;
    writeln!(t, "config: {}", lab.config.display())?;
    writeln!(t, "network: {}", lab.net.describe())?;
    let cut: Vec<&str> = REGIONS
        .iter()
        .enumerate()
        .filter(|(i, _)| matches!(&lab.net, Network::Namespaces(n) if n.is_partitioned(*i)))
        .map(|(_, r)| *r)
        .collect();
    if !cut.is_empty() {
        writeln!(t, "PARTITIONED: {}", cut.join(", "))?;
    }
    let etcd: Vec<String> = (0..lab.etcd.len())
        .map(|i| {
            let state = if lab.etcd.pid(i).is_some() {
                "up"
            } else {
                "FAILED"
            };
            format!("m{i} ({}) {} {state}", REGIONS[i], lab.etcd.endpoint(i))
        })
        .collect();
    writeln!(t, "etcd: {}", etcd.join(", "))?;
    let leader = leader_now(lab).await;
    writeln!(
        t,
        "leader: {}",
        leader.as_deref().unwrap_or("none (no controller leads)")
    )?;
    writeln!(
        t,
        "{:<9} {:<22} {:<44} {:<26} database",
        "region", "endpoint", "controller", "probe"
    )?;
    for (i, r) in REGIONS.iter().enumerate() {
        let c = &mut lab.controllers[i];
        let ctl = if c.is_running() {
            format!("{} grpc={} metrics={}", c.id(), c.grpc(), c.metrics_addr())
        } else {
            format!("{} FAILED", c.id())
        };
        let p = &mut lab.probes[i];
        let probe = match (p.is_running(), p.metrics) {
            (true, Some(m)) => format!("metrics={m}"),
            (true, None) => "starting".into(),
            (false, _) => "FAILED".into(),
        };
        let db = if lab.db.is_running(i) {
            format!("orders-{} {}", i + 1, lab.db.address(i))
        } else {
            format!("orders-{} FAILED", i + 1)
        };
        writeln!(
            t,
            "{r:<9} {:<22} {ctl:<44} {probe:<26} {db}",
            format!(
                "{} {}",
                lab.endpoints[i].addr(),
                broken_text(broken, i, Part::Endpoint)
            ),
        )?;
    }
    Ok(t)
}

/// Writes `lab.json`: every part's address and whether it runs, for
/// scripts and tests (a restarted controller has new metrics and DNS
/// ports). Written to a temp file and renamed, so a reader never sees half.
fn write_state(lab: &mut Lab, broken: &Broken) -> anyhow::Result<()> {
    let mut controllers = Vec::new();
    for (i, c) in lab.controllers.iter_mut().enumerate() {
        controllers.push(json!({
            "id": c.id(),
            "region": REGIONS[i],
            "running": c.is_running(),
            "pid": c.pid(),
            "grpc": c.grpc().to_string(),
            "metrics": c.metrics_addr().to_string(),
            "dns": c.dns().map(|d| d.to_string()),
        }));
    }
    let mut probes = Vec::new();
    for p in &mut lab.probes {
        probes.push(json!({
            "id": p.id,
            "region": p.region,
            "running": p.is_running(),
            "pid": p.pid(),
            "metrics": p.metrics.map(|m| m.to_string()),
        }));
    }
    let mut members = Vec::new();
    for (i, r) in REGIONS.iter().enumerate() {
        members.push(json!({
            "id": format!("orders-{}", i + 1),
            "region": r,
            "running": lab.db.is_running(i),
            "address": lab.db.address(i),
            "socket": lab.db.socket_path(i).display().to_string(),
        }));
    }
    let endpoints: Vec<_> = REGIONS
        .iter()
        .enumerate()
        .map(|(i, r)| {
            json!({
                "region": r,
                "address": lab.endpoints[i].addr().to_string(),
                "failed": broken_text(broken, i, Part::Endpoint) == "FAILED",
            })
        })
        .collect();
    let state = json!({
        "server_pid": std::process::id(),
        "config": lab.config.display().to_string(),
        "etcd": (0..lab.etcd.len())
            .map(|i| json!({
                "member": format!("m{i}"),
                "region": REGIONS[i],
                "url": lab.etcd.endpoint(i),
                "running": lab.etcd.pid(i).is_some(),
            }))
            .collect::<Vec<_>>(),
        "controllers": controllers,
        "probes": probes,
        "endpoints": endpoints,
        "database": { "name": "orders", "members": members },
        "network": match &lab.net {
            Network::Namespaces(n) => json!({
                "kind": "namespaces",
                "namespaces": (0..n.len()).map(|i| json!({
                    "region": REGIONS[i],
                    "name": n.name(i),
                    "address": n.addr(i).to_string(),
                    "partitioned": n.is_partitioned(i),
                })).collect::<Vec<_>>(),
            }),
            Network::Loopback { why } => json!({ "kind": "loopback", "why": why }),
        },
        "broken": broken
            .iter()
            .map(|(i, parts)| (REGIONS[*i].to_string(), parts.iter().copied().collect::<Vec<_>>()))
            .collect::<BTreeMap<_, _>>(),
    });
    let path = lab.dir().join(STATE);
    let tmp = lab.dir().join(format!("{STATE}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(&state)?)?;
    std::fs::rename(tmp, path)?;
    Ok(())
}
