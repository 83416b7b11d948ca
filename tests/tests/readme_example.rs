//! The README's example program (`runtime-tokio/examples/worker.rs`, shown in full under *Use
//! it*) is the file the workspace compiles, and it runs through a failover: started against a
//! real deployment, it runs every job pushed before and after a `SENTINEL FAILOVER` exactly
//! once, prints the switch, and ends with status 0 on Ctrl-C (SIGINT).
//!
//! The test builds the example program itself (`cargo build --workspace --example worker`, the
//! features of a workspace build, so after `cargo test --workspace` only the example is
//! compiled and linked) and runs the binary cargo reports.
//!
//! Also: every Rust fragment of the READMEs is compiled (`src/readme.rs` makes them doc tests).

use dramatiq_sentinel_harness::{Deployment, DeploymentOptions, NodeId, redis};
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
        readme.contains(&format!("```rust,no_run\n{example}```\n")),
        "README.md must show {EXAMPLE} in full, as it is, in a ```rust,no_run block: copy it again"
    );
}

/// The READMEs compiled as doc tests, by `src/readme.rs`.
const COMPILED_READMES: [&str; 3] = [
    "README.md",
    "integrations/apalis/README.md",
    "integrations/deadpool/README.md",
];

/// Every README.md of the workspace: the top one and one per crate directory (at most two
/// levels down, as `integrations/apalis`).
fn readmes() -> Vec<String> {
    let mut found = vec!["README.md".to_owned()];
    let mut dirs = vec![(PathBuf::new(), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        let entries = std::fs::read_dir(repo().join(&dir)).expect("a directory of the repository");
        for entry in entries {
            let entry = entry.expect("a directory entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = dir.join(&name);
            if !entry.file_type().expect("a file type").is_dir()
                || name.starts_with('.')
                || name == "target"
            {
                continue;
            }
            if repo().join(&path).join("Cargo.toml").is_file()
                && repo().join(&path).join("README.md").is_file()
            {
                found.push(path.join("README.md").to_string_lossy().into_owned());
            }
            if depth < 1 {
                dirs.push((path, depth + 1));
            }
        }
    }
    found.sort();
    found
}

/// A Rust fragment in a README is compiled: not marked `ignore`, and in a README that
/// `src/readme.rs` compiles as doc tests.
#[test]
fn every_readme_fragment_is_compiled() {
    let readmes = readmes();
    assert!(readmes.len() > 5, "READMEs found: {readmes:?}");
    for readme in readmes {
        let text = std::fs::read_to_string(repo().join(&readme)).expect("a README");
        let rust: Vec<&str> = text
            .lines()
            .filter_map(|line| line.trim_start().strip_prefix("```"))
            .filter(|info| {
                let lang = info.split(',').next().unwrap_or_default().trim();
                lang == "rust" || info.contains("ignore")
            })
            .collect();
        for info in &rust {
            assert!(
                !info.contains("ignore"),
                "{readme}: a ```{info} fragment is not compiled; make it compile (`no_run` if it \
                 needs a live deployment)"
            );
        }
        assert!(
            rust.is_empty() || COMPILED_READMES.contains(&readme.as_str()),
            "{readme} has Rust fragments: add it to tests/src/readme.rs and COMPILED_READMES"
        );
    }
}

/// Builds the example program (the README's, as a program: `cargo test` builds examples as
/// test harnesses, or not at all for another package) with the cargo that runs this test, in
/// the same target directory and profile, and returns the binary cargo reports.
fn example_binary() -> PathBuf {
    // target/<profile>/deps/<this test>: the profile's directory is named after the profile,
    // except `dev`'s.
    let exe = std::env::current_exe().expect("the test binary");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .and_then(|dir| dir.file_name())
        .and_then(|name| name.to_str())
        .map(|name| if name == "debug" { "dev" } else { name })
        .expect("target/<profile>/deps/<test>")
        .to_owned();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut build = Command::new(cargo);
    // Without the variables cargo sets for this test (`CARGO_MANIFEST_DIR`, ...): build scripts
    // that watch one (ring's) would run again, and rebuild their dependents twice, here and in
    // the next cargo command.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let set_for_tests = ["CARGO_MANIFEST_", "CARGO_PKG_", "CARGO_BIN_"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
            || [
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ]
            .contains(&name.as_ref());
        if set_for_tests {
            build.env_remove(name.as_ref());
        }
    }
    let output = build
        .current_dir(repo())
        .args(["build", "--workspace", "--example", "worker", "--profile"])
        .arg(&profile)
        .arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo build");
    assert!(
        output.status.success(),
        "cargo build --workspace --example worker failed ({})",
        output.status
    );
    let binary = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == "worker")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .expect("cargo reports the example's executable");
    assert!(binary.is_file(), "{} is missing", binary.display());
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
