//! `redis-deployment`: the test harness's [`Deployment`] as a command, for test suites in
//! other languages (the Python package's pytest suite).
//!
//! It starts a deployment with the options given on the command line, prints one JSON line
//! describing it, then reads commands from stdin, one per line, and answers each with one
//! JSON line (`{"ok": true, ...}` or `{"ok": false, "error": "..."}`). When stdin closes (or
//! on `quit`, SIGINT or SIGTERM) it kills every process of the deployment and exits.
//!
//! Options: `--service-name NAME`, `--replicas N`, `--sentinels N`, `--down-after-ms N`, `--failover-timeout-ms N`,
//! `--sentinel-password P`, `--data-password P`, `--nat`, `--second-service NAME`, `--tls`
//! (TLS only, client certificates required: the description's `tls` names the PEM files).
//!
//! Commands (addresses are `host:port` as the client reaches them):
//! - `master`: the master the sentinels agree on;
//! - `failover`: `SENTINEL FAILOVER` (answers with the old master, without waiting);
//! - `wait-new-master OLD`: waits (60 s at most) until the sentinels agree on a master other
//!   than `OLD` that says `ROLE` master;
//! - `kill-master`, `freeze-master`: SIGKILL / SIGSTOP the agreed master (answers with it);
//! - `thaw ADDR`, `revive ADDR`: SIGCONT / restart that data node;
//! - `stop-sentinel I`, `start-sentinel I`: stop / start the sentinel with index `I`;
//! - `wait-healthy`: waits (60 s at most) until the deployment is healthy again;
//! - `quit`.

use dramatiq_sentinel_harness::{Deployment, DeploymentOptions, NodeId, SentinelId};
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// How long waiting commands wait.
const WAIT: Duration = Duration::from_secs(60);

fn options(args: &[String]) -> Result<DeploymentOptions, String> {
    let mut o = DeploymentOptions::default().own_process_groups(true);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let number = |v: String| v.parse::<u64>().map_err(|_| format!("{flag}: `{v}`"));
        o = match flag.as_str() {
            "--service-name" => o.service_name(value()?),
            "--replicas" => o.replicas(number(value()?)? as usize),
            "--sentinels" => o.sentinels(number(value()?)? as usize),
            "--down-after-ms" => o.down_after(Duration::from_millis(number(value()?)?)),
            "--failover-timeout-ms" => o.failover_timeout(Duration::from_millis(number(value()?)?)),
            "--sentinel-password" => o.sentinel_password(value()?),
            "--data-password" => o.data_password(value()?),
            "--nat" => o.nat(true),
            "--tls" => o.tls(true),
            "--second-service" => o.second_service(value()?),
            other => return Err(format!("unknown option `{other}`")),
        };
    }
    Ok(o)
}

fn describe(d: &Deployment) -> Value {
    let nodes: Vec<Value> = d
        .nodes()
        .into_iter()
        .map(|n| {
            json!({"index": n.index(), "addr": d.addr(n).to_string(),
                   "announced": d.announced_addr(n).to_string(),
                   "service": d.node_service(n)})
        })
        .collect();
    let sentinels: Vec<String> = d.sentinel_addrs().iter().map(ToString::to_string).collect();
    json!({
        "ok": true,
        "service": d.service_name(),
        "second_service": d.second_service_name(),
        "sentinels": sentinels,
        "nodes": nodes,
        "master": d.master().ok().map(|m| d.addr(m).to_string()),
        "nat": d.nat_map(),
        "dir": d.dir().display().to_string(),
        "redis_version": d.redis_version(),
        "tls": d.tls().map(|t| json!({"ca": t.ca_file, "cert": t.cert_file, "key": t.key_file})),
    })
}

fn node(d: &Deployment, text: &str) -> Result<NodeId, String> {
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| format!("`{text}` is not host:port"))?;
    d.node_at(addr)
        .ok_or_else(|| format!("no data node at {addr}"))
}

fn sentinel(d: &Deployment, text: &str) -> Result<SentinelId, String> {
    let i: usize = text
        .parse()
        .map_err(|_| format!("`{text}` is not an index"))?;
    d.sentinels()
        .into_iter()
        .find(|s| s.index() == i)
        .ok_or_else(|| format!("no sentinel {i}"))
}

fn run(d: &Deployment, line: &str) -> Result<Value, String> {
    let mut words = line.split_whitespace();
    let command = words.next().unwrap_or_default();
    let arg = words.next().unwrap_or_default();
    let e = |e: dramatiq_sentinel_harness::HarnessError| e.to_string();
    let addr = |n: NodeId| d.addr(n).to_string();
    Ok(match command {
        "master" => json!({"master": addr(d.master().map_err(e)?)}),
        "failover" => json!({"old": addr(d.failover().map_err(e)?)}),
        "wait-new-master" => {
            json!({"master": addr(d.wait_for_new_master(node(d, arg)?, WAIT).map_err(e)?)})
        }
        "kill-master" => json!({"killed": addr(d.kill_master().map_err(e)?)}),
        "freeze-master" => {
            let m = d.master().map_err(e)?;
            d.freeze(m).map_err(e)?;
            json!({"frozen": addr(m)})
        }
        "thaw" => {
            d.thaw(node(d, arg)?).map_err(e)?;
            json!({})
        }
        "revive" => {
            d.revive(node(d, arg)?).map_err(e)?;
            json!({})
        }
        "stop-sentinel" => {
            d.stop_sentinel(sentinel(d, arg)?);
            json!({})
        }
        "start-sentinel" => {
            d.start_sentinel(sentinel(d, arg)?).map_err(e)?;
            json!({})
        }
        "wait-healthy" => {
            d.wait_healthy(WAIT).map_err(e)?;
            json!({})
        }
        other => return Err(format!("unknown command `{other}`")),
    })
}

fn answer(value: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match options(&args) {
        Ok(o) => o,
        Err(message) => {
            answer(&json!({"ok": false, "error": message}));
            return ExitCode::from(2);
        }
    };
    // The Redis processes run in process groups of their own: on SIGINT/SIGTERM, kill them.
    let _ = ctrlc::set_handler(|| {
        dramatiq_sentinel_harness::kill_detached();
        std::process::exit(130);
    });
    let deployment = match Deployment::start(options) {
        Ok(d) => d,
        Err(error) => {
            answer(&json!({"ok": false, "error": error.to_string()}));
            return ExitCode::FAILURE;
        }
    };
    answer(&describe(&deployment));
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "quit" {
            answer(&json!({"ok": true}));
            break;
        }
        answer(&match run(&deployment, line) {
            Ok(Value::Object(mut map)) => {
                map.insert("ok".into(), Value::Bool(true));
                Value::Object(map)
            }
            Ok(other) => json!({"ok": true, "value": other}),
            Err(error) => json!({"ok": false, "error": error}),
        });
    }
    drop(deployment);
    ExitCode::SUCCESS
}
