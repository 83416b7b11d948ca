//! The `failover-drill` binary end to end: a local deployment with a short story, and its
//! errors for bad options.

use dramatiq_sentinel_tests::harness::{Deployment, DeploymentOptions};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::channel;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// One local drill at a time: each starts six Redis processes, and the machine has few cores.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

fn drill(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_failover-drill"))
        .args(args)
        .output()
        .expect("the failover-drill binary runs")
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
fn local_graceful_failover(runtime: &str) {
    let _serial = serial();
    let output = drill(&[
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
    ]);
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
    local_graceful_failover("tokio");
}

#[test]
fn local_drill_with_a_graceful_failover_on_smol() {
    local_graceful_failover("smol");
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
        stderr.contains("`no_such_setting`: unknown setting"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_deployment_is_a_clear_error() {
    // Port 1 on loopback: nothing listens there.
    let output = drill(&["--sentinels", "127.0.0.1:1", "--startup-timeout", "1"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("did not start") && stderr.contains("127.0.0.1:1"),
        "{stderr}"
    );
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_failover-drill"))
        .args(["--sentinels", &sentinels.join(","), "--service", "mymaster"])
        .args(["--sentinel-password", "watch-pw"])
        .args(["--redis-user", "worker", "--redis-password", "work-pw"])
        .args(["--failovers", "1", "--json", "--progress", "0"])
        .args(["--min-backoff", "0.2", "--concurrency", "4", "--rate", "50"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the failover-drill binary runs");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let ready = loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.contains(r#""event":"ready""#) => break true,
            Ok(line) => lines.push(line),
            Err(_) => break false,
        }
    };
    if !ready {
        let _ = child.kill();
        panic!("the drill did not get ready: {lines:#?}");
    }
    d.failover_and_wait(Duration::from_secs(60))
        .expect("a failover");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the drill") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the drill did not stop after the failover");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    reader.join().expect("the reader thread");
    lines.extend(rx.try_iter());
    let s: Value = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "summary")
        .unwrap_or_else(|| panic!("no summary: {lines:#?}"));
    assert_eq!(status.code(), Some(0), "{s:#}");
    assert_eq!(s["stopped"], "1 failover(s) observed", "{s:#}");
    assert_eq!(s["lost"], 0, "{s:#}");
    assert_eq!(s["run_twice"], 0, "{s:#}");
    assert_eq!(s["done"], s["produced"], "{s:#}");
    assert_eq!(s["durable"], false, "{s:#}");
}
