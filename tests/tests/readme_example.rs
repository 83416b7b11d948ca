//! The README's example program (`runtime-tokio/examples/worker.rs`, shown in full under *Use
//! it*) is the file the workspace compiles, and it runs through a failover: started against a
//! real deployment, it runs every job pushed before and after a `SENTINEL FAILOVER` exactly
//! once, prints the switch, and ends with status 0 on Ctrl-C (SIGINT).
//!
//! The example program is built by `cargo build --workspace --examples`, which
//! `scripts/test.sh` runs first (`cargo test` builds examples as test harnesses, not as the
//! programs); on its own, build it with `cargo build -p dramatiq-sentinel-tokio --example
//! worker`.

use dramatiq_sentinel_tests::harness::{Deployment, DeploymentOptions, NodeId, redis};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);
const EXAMPLE: &str = "runtime-tokio/examples/worker.rs";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace")
        .to_owned()
}

#[test]
fn the_readme_shows_the_compiled_example() {
    let example = std::fs::read_to_string(repo().join(EXAMPLE)).expect("the example");
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    assert!(
        readme.contains(&format!("```rust\n{example}```\n")),
        "README.md must show {EXAMPLE} in full, as it is, in a ```rust block: copy it again"
    );
}

/// The example's binary, next to this test's own in the target directory.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let binary = profile.join("examples").join("worker");
    assert!(
        binary.is_file(),
        "{} is missing: build it with `cargo build -p dramatiq-sentinel-tokio --example worker` \
         (`scripts/test.sh` does, with `cargo build --workspace --examples`)",
        binary.display()
    );
    binary
}

/// Kills the example if the test fails before it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {WAIT:?} waiting for {what}; last: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn push(d: &Deployment, master: NodeId, jobs: std::ops::Range<u32>) {
    for n in jobs {
        let _: i64 = d
            .query(
                master,
                redis::cmd("LPUSH").arg("queue").arg(format!("job-{n}")),
            )
            .expect("LPUSH");
    }
}

/// Every job done, none left queued or in processing.
fn settled(d: &Deployment, jobs: u32) -> Result<(), String> {
    let master = d.master().map_err(|e| e.to_string())?;
    let done: i64 = d
        .query(master, redis::cmd("SCARD").arg("done"))
        .map_err(|e| e.to_string())?;
    let left: i64 = d
        .query(master, redis::cmd("LLEN").arg("queue"))
        .map_err(|e| e.to_string())?;
    let processing: i64 = d
        .query(master, redis::cmd("LLEN").arg("processing"))
        .map_err(|e| e.to_string())?;
    if done == i64::from(jobs) && left == 0 && processing == 0 {
        Ok(())
    } else {
        Err(format!(
            "{done} of {jobs} done, {left} queued, {processing} processing"
        ))
    }
}

#[test]
fn the_readme_example_runs_through_a_failover() {
    let binary = example_binary();
    let d = Deployment::start(DeploymentOptions::default()).expect("deployment");
    let sentinels: Vec<String> = d.sentinel_addrs().iter().map(|a| a.to_string()).collect();
    let mut child = Command::new(&binary)
        .arg(sentinels.join(","))
        .arg(d.service_name())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    let output = Arc::new(Mutex::new(String::new()));
    for stream in [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ] {
        let output = Arc::clone(&output);
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let mut all = output.lock().unwrap_or_else(|e| e.into_inner());
                all.push_str(&line);
                all.push('\n');
            }
        });
    }
    let mut running = Running(child);
    let printed = || output.lock().unwrap_or_else(|e| e.into_inner()).clone();

    let old = d.master().expect("master");
    wait_for("the example's first master", || {
        let out = printed();
        if out.contains("connection moved: None ->") {
            Ok(())
        } else {
            Err(out)
        }
    });
    push(&d, old, 0..100);
    wait_for("the first jobs to run", || settled(&d, 100));
    let (_, new) = d.failover_and_wait(WAIT).expect("failover");
    wait_for("the example's switch", || {
        let out = printed();
        if out.contains(&format!("switched {} -> {}", d.addr(old), d.addr(new))) {
            Ok(())
        } else {
            Err(out)
        }
    });
    push(&d, new, 100..200);
    wait_for("every job to run on the new master", || settled(&d, 200));

    // Ctrl-C: a clean shutdown, status 0.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(running.0.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    let status = wait_for("the example to exit", || match running.0.try_wait() {
        Ok(Some(status)) => Ok(status),
        other => Err(format!("{other:?}")),
    });
    let out = printed();
    assert!(status.success(), "{status}\n{out}");
    assert!(out.contains("shutting down"), "{out}");
    assert!(
        !out.contains("not acknowledged") && !out.contains("fetch failed"),
        "a graceful failover surfaces no error to the workers:\n{out}"
    );
}
