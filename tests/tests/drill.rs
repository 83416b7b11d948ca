//! The `failover-drill` binary end to end: a local deployment with a short story, and its
//! errors for bad options.

use serde_json::Value;
use std::process::{Command, Output};

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
