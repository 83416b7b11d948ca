//! `dramatiq-sentinel drill` end to end: a local deployment with a short story, and its
//! errors for bad options.

use dramatiq_sentinel_harness::{Deployment, DeploymentOptions};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One local drill at a time: each starts six Redis processes, and the machine has few cores.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `dramatiq-sentinel drill`, ready for its options.
fn drill_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dramatiq-sentinel"));
    command.arg("drill");
    command
}

fn drill(args: &[&str]) -> Output {
    drill_command()
        .args(args)
        .output()
        .expect("the dramatiq-sentinel binary runs")
}

/// The JSON lines the drill printed, and its summary.
fn summary(output: &Output) -> (Vec<Value>, Value) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let summary = lines
        .iter()
        .find(|v| v["type"] == "summary")
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no summary; status {:?}\nstdout:\n{stdout}\nstderr:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        });
    (lines, summary)
}

/// `--local` with one graceful failover: the pool loses no job and runs none twice.
fn local_graceful_failover(runtime: &str, extra: &[&str]) {
    let _serial = serial();
    let mut args = vec![
        "--local",
        "--runtime",
        runtime,
        "--story",
        "graceful",
        "--act-interval",
        "1",
        "--progress",
        "0",
        "--json",
    ];
    args.extend_from_slice(extra);
    let output = drill(&args);
    let (lines, s) = summary(&output);
    let context = format!(
        "{s:#}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(s["runtime"], runtime, "{context}");
    assert_eq!(s["checked"], true, "{context}");
    assert_eq!(s["lost"], 0, "{context}");
    assert_eq!(s["run_twice"], 0, "{context}");
    assert_eq!(s["unfinished"], 0, "{context}");
    assert!(s["produced"].as_u64() > Some(0), "{context}");
    assert_eq!(s["done"], s["produced"], "{context}");
    let failovers = s["failovers"].as_array().expect("failovers");
    assert!(
        failovers.iter().any(|f| f["outcome"] == "switched"),
        "{context}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "event" && l["event"] == "resumed"),
        "the timeline shows the resume"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "deployment" && l["state"] == "stopped"),
        "the deployment is cleaned up"
    );
    assert_eq!(output.status.code(), Some(0), "{context}");
}

#[test]
fn local_drill_with_a_graceful_failover_on_tokio() {
    local_graceful_failover("tokio", &[]);
}

#[test]
fn local_drill_with_a_graceful_failover_on_smol() {
    local_graceful_failover("smol", &[]);
}

/// Long jobs: one worker, 20 s jobs, one job produced every 25 s. The story starts once the
/// worker is busy (it used to wait for 20 completed jobs, which took minutes and timed out),
/// and the failover does not wait for the job in flight.
#[test]
fn local_drill_with_long_jobs() {
    local_graceful_failover(
        "tokio",
        &["--job-ms", "20000", "--concurrency", "1", "--rate", "0.04"],
    );
}

#[test]
fn an_invalid_setting_is_rejected_naming_the_field() {
    let output = drill(&["--local", "--pause-timeout", "-1"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`pause_timeout`"), "{stderr}");
    let output = drill(&["--local", "--no-such-setting", "1"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unexpected argument '--no-such-setting'"),
        "{stderr}"
    );
    let output = drill(&["--sentinels", "127.0.0.1:1", "--query-timeout", "0"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("invalid --query-timeout (setting `query_timeout`)"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_deployment_is_a_clear_error() {
    // Port 1 on loopback: nothing listens there.
    let output = drill(&["--sentinels", "127.0.0.1:1", "--startup-timeout", "1"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("did not start") && stderr.contains("127.0.0.1:1"),
        "{stderr}"
    );
}

/// A drill started as a child, its JSON lines collected by a reader thread.
struct Watched {
    child: Child,
    lines: Vec<String>,
    rx: Receiver<String>,
    reader: Option<JoinHandle<()>>,
}

impl Drop for Watched {
    /// A drill still running when the test fails gets SIGTERM (it drains and removes its
    /// deployment), then SIGKILL if it takes more than a minute.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX));
            let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(60);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Watched {
    fn new(mut child: Child) -> Self {
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            lines: Vec::new(),
            rx,
            reader: Some(reader),
        }
    }

    /// Waits (at most 2 minutes) for a line containing `needle`; panics without one.
    fn wait_for(&mut self, needle: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while let Ok(line) = self
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            let found = line.contains(needle);
            self.lines.push(line);
            if found {
                return;
            }
        }
        panic!(
            "no line for {what} (timed out, or the drill ended): {:#?}",
            self.lines
        );
    }

    /// Waits (at most 2 minutes) for the drill to exit.
    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the drill") {
                return status;
            }
            if Instant::now() > deadline {
                panic!("the drill did not stop: {:#?}", self.lines);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (at most 2 minutes) for the drill to exit; its status and summary.
    fn finish(mut self) -> (ExitStatus, Value) {
        let status = self.wait_exit();
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the reader thread");
        }
        self.lines.extend(self.rx.try_iter());
        let summary = self
            .lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["type"] == "summary")
            .unwrap_or_else(|| panic!("no summary ({status}): {:#?}", self.lines));
        (status, summary)
    }
}

/// The child processes of `parent` with their process groups (from `/proc/<pid>/stat`).
fn children_groups(parent: i32) -> Vec<(i32, i32)> {
    let entries = std::fs::read_dir("/proc").expect("/proc");
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let (_, ppid, pgrp) = stat(pid)?;
            (ppid == parent).then_some((pid, pgrp))
        })
        .collect()
}

/// State, parent pid and process group of `pid`, from `/proc/<pid>/stat`.
fn stat(pid: i32) -> Option<(String, i32, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the `(comm)` field: state, ppid, pgrp, ...
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.to_owned();
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, ppid, pgrp))
}

/// A local drill with a story whose first act is a minute away, in a process group of its own
/// like a shell job (the group a terminal's Ctrl-C signals).
fn local_drill_in_own_group(extra: &[&str]) -> (Pid, Watched) {
    let child = drill_command()
        .args(["--local", "--story", "graceful", "--act-interval", "60"])
        .args(extra)
        .args([
            "--json",
            "--progress",
            "1",
            "--concurrency",
            "4",
            "--rate",
            "50",
        ])
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the dramatiq-sentinel binary runs");
    let group = Pid::from_raw(i32::try_from(child.id()).expect("a pid"));
    (group, Watched::new(child))
}

/// Ctrl-C in a terminal signals the whole foreground process group. The local deployment's
/// Redis processes run in groups of their own, so only the drill stops: it drains, settles
/// every job against the still running Redis, and removes the deployment.
#[test]
fn ctrl_c_in_local_mode_reaches_only_the_drill() {
    let _serial = serial();
    let (group, mut run) = local_drill_in_own_group(&[]);
    // Interrupted while jobs flow, before the story's first act (60 s away).
    run.wait_for(r#""type":"progress""#, "the pool to work");
    let redis = children_groups(group.as_raw());
    assert!(redis.len() >= 6, "the drill's Redis processes: {redis:?}");
    assert!(
        redis.iter().all(|&(_, pgrp)| pgrp != group.as_raw()),
        "a Redis process is in the drill's process group: {redis:?}"
    );
    killpg(group, Signal::SIGINT).expect("SIGINT to the drill's process group");
    let (status, s) = run.finish();
    assert_eq!(status.code(), Some(0), "{s:#}");
    assert!(
        s["stopped"]
            .as_str()
            .is_some_and(|r| r.contains("interrupted")),
        "{s:#}"
    );
    assert_eq!(s["checked"], true, "Redis still answered: {s:#}");
    assert_eq!(s["lost"], 0, "{s:#}");
    assert_eq!(s["run_twice"], 0, "{s:#}");
    assert_eq!(s["done"], s["produced"], "{s:#}");
    assert!(s["produced"].as_u64() > Some(0), "{s:#}");
    assert_gone(&redis);
}

/// A second Ctrl-C exits at once (130), and the local deployment's Redis processes, which the
/// terminal's signal does not reach, are killed anyway.
#[test]
fn a_second_ctrl_c_exits_at_once_and_leaves_no_redis() {
    let _serial = serial();
    // Jobs of 3 s: after the first signal the drain waits for the jobs in flight.
    let (group, mut run) = local_drill_in_own_group(&["--job-ms", "3000"]);
    run.wait_for(r#""type":"progress""#, "the pool to work");
    let redis = children_groups(group.as_raw());
    assert!(redis.len() >= 6, "the drill's Redis processes: {redis:?}");
    killpg(group, Signal::SIGINT).expect("SIGINT");
    run.wait_for(r#""type":"draining""#, "the drain after the first signal");
    killpg(group, Signal::SIGINT).expect("a second SIGINT");
    let status = run.wait_exit();
    assert_eq!(status.code(), Some(130), "{status}");
    assert_gone(&redis);
}

/// Whether `pid` runs (a zombie does not).
fn alive(pid: i32) -> bool {
    stat(pid).is_some_and(|(state, _, _)| state != "Z")
}

/// Waits (at most a minute) until none of `processes` runs.
fn assert_gone(processes: &[(i32, i32)]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left: Vec<i32> = processes
            .iter()
            .map(|&(pid, _)| pid)
            .filter(|&p| alive(p))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Redis processes left running: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Against a deployment it did not start (passwords and an ACL user), the drill stops by itself
/// after the requested number of failovers, with every job accounted for.
#[test]
fn against_a_given_deployment_it_stops_after_the_requested_failovers() {
    let _serial = serial();
    let d = Deployment::start(
        DeploymentOptions::default()
            .sentinel_password("watch-pw")
            .data_acl_user("worker", "work-pw"),
    )
    .expect("a deployment");
    let sentinels: Vec<String> = d.sentinel_addrs().iter().map(ToString::to_string).collect();
    let mut sentinel_flags = Vec::new();
    for s in &sentinels {
        sentinel_flags.extend(["--sentinel", s.as_str()]);
    }
    let child = drill_command()
        .args(&sentinel_flags)
        .args(["--service", "mymaster"])
        .args(["--sentinel-password", "watch-pw"])
        .args(["--redis-user", "worker", "--redis-password", "work-pw"])
        .args(["--failovers", "1", "--json", "--progress", "0"])
        .args(["--min-backoff", "0.2", "--concurrency", "4", "--rate", "50"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the dramatiq-sentinel binary runs");
    let mut run = Watched::new(child);
    run.wait_for(r#""event":"ready""#, "the drill to get ready");
    d.failover_and_wait(Duration::from_secs(60))
        .expect("a failover");
    let (status, s) = run.finish();
    assert_eq!(status.code(), Some(0), "{s:#}");
    assert_eq!(s["stopped"], "1 failover(s) observed", "{s:#}");
    assert_eq!(s["lost"], 0, "{s:#}");
    assert_eq!(s["run_twice"], 0, "{s:#}");
    assert_eq!(s["done"], s["produced"], "{s:#}");
    assert_eq!(s["durable"], false, "{s:#}");
}
