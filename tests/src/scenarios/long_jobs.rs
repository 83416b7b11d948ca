//! Long jobs through a failover (issue 12): by default a switch does not drain the workers, so
//! jobs longer than `pause_timeout` neither stall nor stop the process, new jobs start on the
//! new master while the long ones still run, and no command reaches the old master after the
//! fence.

use super::failover::{Running, switched, wait_master};
use super::serial;
use super::startup::addr;
use dramatiq_sentinel_harness::pool::PoolOptions;
use dramatiq_sentinel_harness::runtime::TestRuntime;
use dramatiq_sentinel_harness::{Deployment, DeploymentOptions, Monitor, unix_now};
use dramatiq_sentinel_harness::{WAIT, wait_for};
use dramatiq_sentinel_supervisor::{Event, PauseTimeoutPolicy};
use std::time::{Duration, Instant};

/// How long a long job works.
const LONG: Duration = Duration::from_secs(5);

/// What happens to the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Graceful,
    Kill,
    Freeze,
}

fn long_jobs<R: TestRuntime>(fault: Fault) {
    let _serial = serial();
    // Sentinels that notice a dead or frozen master after 1 s leave most of a long job to run
    // after the switch.
    let d = Deployment::start(DeploymentOptions::default().down_after(Duration::from_millis(1000)))
        .expect("deployment");
    let options = PoolOptions {
        durable: true,
        long_jobs: 2,
        long_time: LONG,
        ..PoolOptions::default()
    };
    // A pause timeout far shorter than the long jobs, with the policy that would stop the
    // supervisor: it must not matter without a drain.
    let run = Running::<R>::start(&d, options, |b| {
        b.pause_timeout(Duration::from_secs(1))
            .on_pause_timeout(PauseTimeoutPolicy::Fail)
            .hold_timeout(WAIT)
    });
    assert!(!run.sup.config().drain(), "no drain by default");
    wait_for("both long jobs to run", WAIT, || {
        let running = (0..2)
            .filter(|i| run.pool.ledger.job(&format!("long-{i}")).0.is_some())
            .count();
        if running == 2 {
            Ok(())
        } else {
            Err(format!("{running} of 2"))
        }
    });
    let old = d.master().expect("master");
    let monitor = (fault == Fault::Graceful).then(|| {
        let m = Monitor::start(&d, old).expect("MONITOR");
        // The monitor sees the pool at work before the failover (else the check below proves
        // nothing).
        wait_for("the monitor to see the pool's fetches", WAIT, || {
            if m.seen().iter().any(|e| e.command == "lmove") {
                Ok(())
            } else {
                Err("no LMOVE seen yet".into())
            }
        });
        m
    });
    let new = match fault {
        Fault::Graceful => d.failover_and_wait(WAIT).expect("failover").1,
        Fault::Kill => {
            d.kill(old);
            d.wait_for_new_master(old, WAIT).expect("new master")
        }
        Fault::Freeze => {
            d.freeze(old).expect("freeze");
            let new = d.wait_for_new_master(old, WAIT).expect("new master");
            d.thaw(old).expect("thaw");
            new
        }
    };
    run.timeline.wait_count("the switch", 1, switched);
    wait_master::<R>(&run.sup, &d, d.master().unwrap_or(new));
    let new_addr = addr(d.addr(d.master().unwrap_or(new)));
    let moved = run
        .timeline
        .timed(|e| matches!(e, Event::AfterReset { old: Some(_), .. }))
        .first()
        .map(|(t, _)| *t)
        .expect("moved");
    // New jobs were fetched from the new master while a long one was still running (durable
    // workers first retry their acknowledgement until a replica follows the new master).
    let long_end = || {
        let ends: Vec<Instant> = (0..2)
            .filter_map(|i| run.pool.ledger.job(&format!("long-{i}")).1)
            .collect();
        (ends.len() == 2)
            .then(|| ends.into_iter().max())
            .flatten()
            .unwrap_or_else(|| Instant::now() + WAIT)
    };
    wait_for(
        "a new job fetched from the new master during the long ones",
        WAIT,
        || {
            let long_end = long_end();
            let fetched = run.pool.ledger.fetched_between(&new_addr, moved, long_end);
            if !fetched.is_empty() {
                Ok(())
            } else if Instant::now() > long_end {
                let mut fetches = run.pool.ledger.fetches();
                fetches.sort_by_key(|(_, t, _)| *t);
                let around: Vec<String> = fetches
                    .iter()
                    .filter(|(_, t, _)| *t + Duration::from_secs(3) > moved)
                    .take(20)
                    .map(|(j, t, n)| {
                        let at = t.saturating_duration_since(moved).as_millis() as i64
                            - moved.saturating_duration_since(*t).as_millis() as i64;
                        format!("{j} at {at} ms from {n:?}")
                    })
                    .collect();
                Err(format!(
                    "none before the long jobs ended ({} ms after the move); fetches around: {around:#?}",
                    long_end.saturating_duration_since(moved).as_millis()
                ))
            } else {
                Err("none yet".into())
            }
        },
    );
    // The long jobs finish, once each, on the new master.
    wait_for("the long jobs to end", WAIT, || {
        let ended = (0..2)
            .filter(|i| run.pool.ledger.job(&format!("long-{i}")).1.is_some())
            .count();
        if ended == 2 {
            Ok(())
        } else {
            Err(format!("{ended} of 2"))
        }
    });
    assert_eq!(
        run.timeline
            .count(|e| matches!(e, Event::PauseTimedOut { .. } | Event::Stopped { .. })),
        0,
        "no escalation without a drain"
    );
    if let Some(monitor) = monitor {
        let fence = run
            .timeline
            .timed(|e| matches!(e, Event::Fenced { .. }))
            .first()
            .map(|(t, _)| *t)
            .expect("fenced");
        // The fence's wall-clock time: now minus how long ago it was.
        let fence_unix = unix_now() - fence.elapsed().as_secs_f64();
        let late: Vec<_> = monitor
            .stop()
            .into_iter()
            .filter(|e| e.at > fence_unix + 0.005)
            .filter(|e| ["lmove", "sadd", "lrem", "wait", "set"].contains(&e.command.as_str()))
            .collect();
        assert!(
            late.is_empty(),
            "commands on the old master after the fence: {late:#?}"
        );
    }
    run.finish(&d);
}

/// Two 5 s jobs through `SENTINEL FAILOVER` (pause timeout 1 s, no drain).
pub fn long_jobs_through_a_graceful_failover<R: TestRuntime>() {
    long_jobs::<R>(Fault::Graceful);
}

/// Two 5 s jobs through a master kill.
pub fn long_jobs_through_a_master_kill<R: TestRuntime>() {
    long_jobs::<R>(Fault::Kill);
}

/// Two 5 s jobs through a frozen master.
pub fn long_jobs_through_a_frozen_master<R: TestRuntime>() {
    long_jobs::<R>(Fault::Freeze);
}
