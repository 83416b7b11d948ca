//! Workers that never pause: the supervisor stops them and exits the process with 69 (tested
//! in a child process), or, with the `Fail` policy, stops with an error.

use super::{Timeline, serial, start};
use dramatiq_sentinel_harness::runtime::{TestRuntime, spawn};
use dramatiq_sentinel_harness::{Deployment, DeploymentOptions, redis};
use dramatiq_sentinel_harness::{WAIT, config_for, wait_for};
use dramatiq_sentinel_supervisor::{
    BoxFuture, Config, Event, FatalError, PauseTimeoutPolicy, Supervisor, SupervisorError, Workers,
};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set in the child process of [`pause_timeout_exits_the_process`].
const CHILD_ENV: &str = "DRAMATIQ_SENTINEL_PAUSE_CHILD";
const SENTINELS_ENV: &str = "DRAMATIQ_SENTINEL_PAUSE_CHILD_SENTINELS";
const SERVICE_ENV: &str = "DRAMATIQ_SENTINEL_PAUSE_CHILD_SERVICE";
const READY: &str = "pause-child: ready";
const BEFORE_EXIT: &str = "pause-child: before exit";

/// Records that the supervisor stopped the pool.
#[derive(Clone, Default)]
struct Stopped(Arc<AtomicBool>);

impl Workers for Stopped {
    fn stop(&self, _grace: Duration) -> BoxFuture<'_, ()> {
        self.0.store(true, Ordering::SeqCst);
        Box::pin(async {})
    }
}

/// A job that never ends: holds a gate permit until the supervisor stops.
fn stuck_job<R: TestRuntime>(sup: &Supervisor<R::Rt>) {
    let gate = sup.gate();
    let sup = sup.clone();
    spawn::<R>(async move {
        let _permit = gate.enter().await.expect("open");
        let _ = sup.wait().await;
    });
}

fn short_pause(
    b: dramatiq_sentinel_supervisor::ConfigBuilder,
) -> dramatiq_sentinel_supervisor::ConfigBuilder {
    b.drain(true)
        .pause_timeout(Duration::from_secs(2))
        .stop_grace(Duration::from_millis(300))
}

/// With the `Fail` policy, a pause that never completes stops the supervisor with
/// `PauseTimedOut`: the pool is stopped, the gate closed for good, commands fail.
pub fn pause_timeout_fails_with_the_fail_policy<R: TestRuntime>() {
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default()).expect("deployment");
    let rt = R::new();
    let timeline = Timeline::default();
    let stopped = Stopped::default();
    let config = short_pause(config_for(&d))
        .on_pause_timeout(PauseTimeoutPolicy::Fail)
        .build()
        .expect("valid");
    let sup = start(
        &rt,
        Supervisor::<R::Rt>::builder(config).workers(stopped.clone()),
        &timeline,
    );
    rt.block_on(async { stuck_job::<R>(&sup) });
    wait_for("the stuck job to hold its permit", WAIT, || {
        if sup.gate().in_flight() == 1 {
            Ok(())
        } else {
            Err("no permit yet".into())
        }
    });
    let started = Instant::now();
    d.failover().expect("failover");
    let result = rt.block_on(sup.wait());
    match result {
        Err(SupervisorError::Fatal(FatalError::PauseTimedOut { waited })) => {
            assert!(waited >= Duration::from_secs(2), "{waited:?}")
        }
        other => panic!("expected PauseTimedOut, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(stopped.0.load(Ordering::SeqCst), "the pool was stopped");
    assert!(sup.gate().is_stopped());
    assert_eq!(
        timeline.count(|e| matches!(e, Event::PauseTimedOut { .. })),
        1
    );
    assert_eq!(timeline.count(|e| matches!(e, Event::Stopped { .. })), 1);
    let err = rt
        .block_on(redis::cmd("PING").query_async::<String>(&mut sup.master()))
        .expect_err("stopped");
    assert!(err.to_string().contains("stopped"), "{err}");
}

/// The child process: a supervisor with the default `Exit { code: 69 }` policy and a job that
/// never ends. It prints [`READY`], then the parent triggers a failover; the process must exit
/// with 69 and never return here.
pub fn pause_timeout_child<R: TestRuntime>() {
    let (Ok(_), Ok(sentinels), Ok(service)) = (
        std::env::var(CHILD_ENV),
        std::env::var(SENTINELS_ENV),
        std::env::var(SERVICE_ENV),
    ) else {
        panic!("only runs as the child process of `pause_timeout_exits_the_process`");
    };
    let config = short_pause(Config::builder())
        .set("sentinels", &sentinels)
        .expect("sentinels")
        .service_name(service)
        .build()
        .expect("valid");
    let rt = R::new();
    let sup = start(
        &rt,
        Supervisor::<R::Rt>::builder(config).before_exit(|code| println!("{BEFORE_EXIT} {code}")),
        &Timeline::default(),
    );
    rt.block_on(async { stuck_job::<R>(&sup) });
    wait_for("the stuck job to hold its permit", WAIT, || {
        if sup.gate().in_flight() == 1 {
            Ok(())
        } else {
            Err("no permit yet".into())
        }
    });
    println!("{READY}");
    let result = rt.block_on(sup.wait());
    panic!("the process should have exited, but the supervisor returned {result:?}");
}

/// A pause that never completes makes the process exit with 69 (the default policy), after the
/// before-exit hook ran. Runs [`pause_timeout_child`] in a child process of this test binary.
pub fn pause_timeout_exits_the_process<R: TestRuntime>() {
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default()).expect("deployment");
    let sentinels: Vec<String> = d.sentinel_addrs().iter().map(ToString::to_string).collect();
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--ignored",
            "--exact",
            "pause_timeout_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .env(SENTINELS_ENV, sentinels.join(","))
        .env(SERVICE_ENV, d.service_name())
        .stdout(Stdio::piped())
        .spawn()
        .expect("child");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + WAIT;
    while !lines.iter().any(|l: &String| l.contains(READY)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("the child never got ready: {lines:#?}");
            }
        }
    }
    let old = d.failover().expect("failover");
    let status = wait_for("the child to exit", WAIT, || match child.try_wait() {
        Ok(Some(status)) => Ok(status),
        Ok(None) => Err("still running".into()),
        Err(e) => Err(e.to_string()),
    });
    lines.extend(rx.try_iter());
    assert_eq!(status.code(), Some(69), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("{BEFORE_EXIT} 69"))),
        "{lines:#?}"
    );
    // The deployment itself went on with the failover.
    d.wait_for_new_master(old, WAIT).expect("new master");
}
