//! `dramatiq-sentinel status` and `watch` end to end, against real deployments started by the
//! harness: their JSON through a graceful failover, the exit statuses of each error.

use dramatiq_sentinel_harness::{Deployment, DeploymentOptions, NodeId, redis};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// Generous: the machine may be loaded.
const DEADLINE: Duration = Duration::from_secs(120);

fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dramatiq-sentinel"));
    c.args(args);
    c
}

fn run(args: &[&str]) -> Output {
    command(args)
        .output()
        .expect("the dramatiq-sentinel binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `--sentinel A --sentinel B ...` for every sentinel of `d`.
fn sentinel_flags(d: &Deployment) -> Vec<String> {
    d.sentinel_addrs()
        .iter()
        .flat_map(|a| ["--sentinel".to_owned(), a.to_string()])
        .collect()
}

fn addr(d: &Deployment, node: NodeId) -> String {
    d.addr(node).to_string()
}

/// `status --json` with `args`; the parsed object (panics with stderr on a failure).
fn status_json(args: &[String]) -> Value {
    let mut all: Vec<&str> = vec!["status", "--json"];
    all.extend(args.iter().map(String::as_str));
    let o = run(&all);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            stderr(&o)
        )
    })
}

/// A `watch` child whose JSON lines a thread collects.
struct Watch {
    child: Child,
    rx: Receiver<String>,
    lines: Vec<Value>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Watch {
    fn start(args: &[String]) -> Self {
        let mut child = command(&["watch", "--json"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the dramatiq-sentinel binary runs");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            rx,
            lines: Vec::new(),
        }
    }

    /// Waits until the lines seen so far satisfy `done`; panics with every line after the
    /// deadline or when the watch ends first.
    fn wait_until(&mut self, what: &str, done: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !done(&self.lines) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => self.lines.push(
                    serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}")),
                ),
                Err(_) => panic!("no {what} (timed out, or watch ended): {:#?}", self.lines),
            }
        }
    }

    /// SIGINT, then waits for the exit; its status code.
    fn interrupt(&mut self) -> Option<i32> {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("a pid"));
        kill(pid, Signal::SIGINT).expect("SIGINT to watch");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for watch") {
                self.lines.extend(
                    self.rx
                        .try_iter()
                        .filter_map(|l| serde_json::from_str(&l).ok()),
                );
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "watch did not stop: {:#?}",
                self.lines
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn of_type<'a>(lines: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    lines.iter().filter(move |l| l["type"] == kind)
}

/// Sentinels (distinct) that sent a message of `kind` whose field `field` is `value`.
fn senders(lines: &[Value], kind: &str, field: &str, value: &str) -> usize {
    let mut s: Vec<&str> = of_type(lines, "message")
        .filter(|l| l["kind"] == kind && l[field] == value)
        .filter_map(|l| l["sentinel"].as_str())
        .collect();
    s.sort_unstable();
    s.dedup();
    s.len()
}

/// One deployment with passwords (sentinels: a password; data nodes: an ACL user): `status`
/// before and after a graceful failover, `watch` through it (each sentinel's `+switch-master`
/// decoded, the core's fence and switch), Ctrl-C ending the watch with 0; a service the
/// sentinels do not monitor (4) and a wrong password (3).
#[test]
fn status_and_watch_through_a_graceful_failover() {
    let d = Deployment::start(
        DeploymentOptions::default()
            .sentinel_password("watch-pw")
            .data_acl_user("worker", "work-pw"),
    )
    .expect("a deployment");
    let mut args = sentinel_flags(&d);
    args.extend(["--service", "mymaster", "--sentinel-password", "watch-pw"].map(str::to_owned));
    let old = d.master().expect("a master");

    // Right after start-up a sentinel may still flag its link to another one `disconnected`
    // for a moment: wait until the status says healthy (what is asserted is its content).
    let deadline = Instant::now() + DEADLINE;
    let s = loop {
        let s = status_json(&args);
        if s["healthy"] == true || Instant::now() >= deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(s["service"], "mymaster", "{s:#}");
    assert_eq!(s["master"]["addr"], addr(&d, old), "{s:#}");
    assert!(
        s["master"]["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "master")),
        "{s:#}"
    );
    assert_eq!(s["replicas"].as_array().map(Vec::len), Some(2), "{s:#}");
    assert_eq!(s["sentinels"].as_array().map(Vec::len), Some(2), "{s:#}");
    assert_eq!(s["quorum"]["reachable"], true, "{s:#}");
    assert_eq!(s["unreachable"], Value::Array(Vec::new()), "{s:#}");
    assert_eq!(s["healthy"], true, "{s:#}");

    let mut text_args = vec!["status".to_owned()];
    text_args.extend(args.iter().cloned());
    let text: Vec<&str> = text_args.iter().map(String::as_str).collect();
    let o = run(&text);
    let table = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        table.contains("ROLE") && table.contains(&format!("master    {}", addr(&d, old))),
        "{table}"
    );

    let mut watch_args = args.clone();
    watch_args.extend(["--redis-user", "worker", "--redis-password", "work-pw"].map(str::to_owned));
    let mut watch = Watch::start(&watch_args);
    watch.wait_until("status, 3 listeners and the core ready", |lines| {
        of_type(lines, "status").count() == 1
            && of_type(lines, "listener")
                .filter(|l| l["state"] == "subscribed")
                .count()
                >= 3
            && lines.iter().any(|l| l["event"] == "ready")
    });
    let (old, new) = d
        .failover_and_wait(Duration::from_secs(60))
        .expect("a graceful failover");
    let (old_addr, new_addr) = (addr(&d, old), addr(&d, new));
    watch.wait_until(
        "+switch-master from every sentinel and the core's switch",
        |lines| {
            senders(lines, "switch-master", "new", &new_addr) == 3
                && lines
                    .iter()
                    .any(|l| l["event"] == "resumed" && l["new"] == new_addr.as_str())
        },
    );
    let lines = &watch.lines;
    assert!(
        of_type(lines, "message").any(|l| (l["kind"] == "failover" || l["kind"] == "candidate")
            && l["master"] == old_addr.as_str()),
        "the failover's early signals are decoded: {lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l["event"] == "fenced"),
        "the core fenced on an early signal: {lines:#?}"
    );
    assert!(
        of_type(lines, "message").all(|l| l["meaning"].as_str().is_some_and(|m| !m.is_empty())),
        "every message is explained: {lines:#?}"
    );
    assert_eq!(watch.interrupt(), Some(0), "{:#?}", watch.lines);
    assert_eq!(
        watch.lines.last().map(|l| l["type"].clone()),
        Some(Value::from("stop")),
        "{:#?}",
        watch.lines
    );
    // An observer writes nothing: its core switched away from the old master, which still
    // answers, without pausing its writes (an application's supervisor would have).
    let stats: String = d
        .query(old, redis::cmd("INFO").arg("commandstats"))
        .expect("INFO commandstats of the old master");
    assert!(
        !stats.contains("cmdstat_client|pause"),
        "watch paused the deposed master's writes: {stats}"
    );

    let s = status_json(&args);
    assert_eq!(s["master"]["addr"], new_addr, "{s:#}");

    // A service the sentinels do not monitor: 4, naming the sentinels.
    let mut unknown: Vec<String> = vec!["status".into()];
    unknown.extend(sentinel_flags(&d));
    unknown.extend(["--service", "nosuch", "--sentinel-password", "watch-pw"].map(str::to_owned));
    let o = run(&unknown.iter().map(String::as_str).collect::<Vec<_>>());
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(4), "{e}");
    let first = d.sentinel_addrs()[0].to_string();
    assert!(e.contains("`nosuch`") && e.contains(&first), "{e}");

    // A wrong sentinel password: 3, naming each sentinel and the cause.
    let mut wrong: Vec<String> = vec!["status".into()];
    wrong.extend(sentinel_flags(&d));
    wrong.extend(["--service", "mymaster", "--sentinel-password", "nope"].map(str::to_owned));
    let o = run(&wrong.iter().map(String::as_str).collect::<Vec<_>>());
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{e}");
    assert!(
        d.sentinel_addrs()
            .iter()
            .all(|a| e.contains(&format!("sentinel {a}: "))),
        "{e}"
    );
}

/// Nothing listens on port 1: `status` and `watch` exit with 3 and name the sentinel and the
/// cause; usage errors exit with 2 and name the option or the field.
#[test]
fn unreachable_sentinels_and_usage_errors() {
    for command in ["status", "watch"] {
        let o = run(&[
            command,
            "--sentinel",
            "127.0.0.1:1",
            "--service",
            "mymaster",
            "--connect-timeout",
            "2",
        ]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{command}: {e}");
        assert!(
            e.contains("sentinel 127.0.0.1:1: ") && e.to_lowercase().contains("refused"),
            "{command}: {e}"
        );
    }
    for (args, needle) in [
        (
            &["status", "--service", "s"][..],
            "--sentinel HOST:PORT is required",
        ),
        (
            &[
                "watch",
                "--sentinel",
                "127.0.0.1:1",
                "--service",
                "s",
                "--query-timeout",
                "-1",
            ][..],
            "`query_timeout`",
        ),
        (
            &[
                "status",
                "--sentinel",
                "127.0.0.1:1",
                "--service",
                "s",
                "--bogus",
                "1",
            ][..],
            "unexpected argument '--bogus'",
        ),
        (
            &["status", "--sentinel", "nohost", "--service", "s"][..],
            "invalid --sentinel (setting `sentinels[0]`): `nohost` is not `host:port`",
        ),
        (
            &[
                "watch",
                "--sentinel",
                "127.0.0.1:1",
                "--service",
                "s",
                "--json=1",
            ][..],
            "unexpected value '1' for '--json'",
        ),
        (&["explode"][..], "unrecognized subcommand 'explode'"),
        (
            &["help", "explode"][..],
            "unrecognized subcommand 'explode'",
        ),
        (&[][..], "Usage: dramatiq-sentinel <COMMAND>"),
    ] {
        let o = run(args);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        assert!(e.contains(needle), "{args:?}: {e}");
    }
    for args in [
        &["--help"][..],
        &["status", "--help"],
        &["watch", "--help"],
        &["help", "drill"],
        &["drill", "--help"],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("EXIT STATUS"),
            "{args:?}"
        );
    }
}

/// A TLS-only deployment that requires client certificates: `status` with the CA and a client
/// certificate reads it; without the client certificate, 3 naming the sentinel.
#[test]
fn status_over_tls_with_client_certificates() {
    let d = Deployment::start(DeploymentOptions::default().tls(true)).expect("a TLS deployment");
    let tls = d.tls().expect("TLS files").clone();
    let mut args = sentinel_flags(&d);
    args.extend(["--service".to_owned(), "mymaster".to_owned()]);
    args.extend(["--tls-ca".to_owned(), tls.ca_file.display().to_string()]);
    let mut with_cert = args.clone();
    with_cert.extend([
        "--tls-cert".to_owned(),
        tls.cert_file.display().to_string(),
        "--tls-key".to_owned(),
        tls.key_file.display().to_string(),
    ]);
    let s = status_json(&with_cert);
    let master = d.master().expect("a master");
    assert_eq!(s["master"]["addr"], addr(&d, master), "{s:#}");
    assert_eq!(s["replicas"].as_array().map(Vec::len), Some(2), "{s:#}");

    let mut without: Vec<String> = vec!["status".into()];
    without.extend(args);
    let o = run(&without.iter().map(String::as_str).collect::<Vec<_>>());
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{e}");
    assert!(
        e.contains(&format!("sentinel {}: ", d.sentinel_addrs()[0])),
        "{e}"
    );
}
