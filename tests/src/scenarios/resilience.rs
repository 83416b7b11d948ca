//! Sentinels going away and coming back, and failovers nobody announced to the supervisor.

use super::Timeline;
use super::failover::{Running, switched, wait_master};
use super::startup::addr;
use super::{serial, start};
use dramatiq_sentinel_harness::pool::PoolOptions;
use dramatiq_sentinel_harness::runtime::TestRuntime;
use dramatiq_sentinel_harness::runtime::spawn;
use dramatiq_sentinel_harness::{Deployment, DeploymentOptions, redis};
use dramatiq_sentinel_harness::{WAIT, config_for, wait_for};
use dramatiq_sentinel_supervisor::{DetectionPath, Event, Failure, Supervisor};
use std::time::{Duration, Instant};

/// A sentinel is stopped: its listener retries with exponential backoff (200 ms doubling up to
/// 1.6 s, as configured, each delay jittered within [base / 2, base]), observed between
/// consecutive failures; restarted, it is listened to
/// again; a failover afterwards works as usual.
pub fn sentinel_restart_with_backoff<R: TestRuntime>() {
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default()).expect("deployment");
    let run = Running::<R>::start(&d, PoolOptions::default(), |b| {
        b.min_backoff(Duration::from_millis(200))
            .max_backoff(Duration::from_millis(1600))
    });
    run.timeline.wait_count("every listener up", 3, |e| {
        matches!(e, Event::ListenerUp { .. })
    });
    let stopped = d.sentinels()[0];
    let sentinel = addr(d.addr(stopped));
    let down = |e: &Event| matches!(e, Event::ListenerDown { sentinel: s, .. } if *s == sentinel);
    d.stop_sentinel(stopped);
    run.timeline.wait_count("six listener failures", 6, down);
    let failures: Vec<(Instant, Duration)> = run
        .timeline
        .timed(down)
        .into_iter()
        .filter_map(|(t, e)| match e {
            Event::ListenerDown { retry_in, .. } => Some((t, retry_in)),
            _ => None,
        })
        .collect();
    let delays: Vec<u64> = failures
        .iter()
        .take(6)
        .map(|(_, d)| d.as_millis() as u64)
        .collect();
    // The subscribed listener reconnects at once; after that, each delay is drawn from
    // [base / 2, base] (jitter), bases doubling from 200 ms to 1.6 s.
    assert_eq!(delays.first(), Some(&0), "at once first: {delays:?}");
    for (delay, base) in delays.iter().skip(1).zip([200, 400, 800, 1600, 1600]) {
        assert!(
            (base / 2..=base).contains(delay),
            "delays {delays:?}: {delay} is outside [{}, {base}]",
            base / 2
        );
    }
    for pair in failures.windows(2).take(5) {
        let (at, retry_in) = pair[0];
        let gap = pair[1].0 - at;
        assert!(
            gap >= retry_in && gap <= retry_in + Duration::from_secs(3),
            "next failure {gap:?} after one that waits {retry_in:?}"
        );
    }
    let ups_before = run
        .timeline
        .count(|e| matches!(e, Event::ListenerUp { sentinel: s } if *s == sentinel));
    d.start_sentinel(stopped).expect("restart");
    run.timeline.wait_count(
        "the listener back up",
        ups_before + 1,
        |e| matches!(e, Event::ListenerUp { sentinel: s } if *s == sentinel),
    );
    d.wait_healthy(WAIT).expect("healthy");
    let (_, new) = d.failover_and_wait(WAIT).expect("failover");
    run.timeline.wait_count("the switch", 1, switched);
    wait_master::<R>(&run.sup, &d, d.master().unwrap_or(new));
    run.finish(&d);
}

/// Breaks every listener connection (`CLIENT KILL TYPE pubsub` on each sentinel).
fn kill_listeners(d: &Deployment) {
    for s in d.sentinels() {
        d.query::<i64>(
            s,
            redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub"),
        )
        .expect("CLIENT KILL");
    }
}

fn missed<R: TestRuntime>(
    tweak: fn(
        dramatiq_sentinel_supervisor::ConfigBuilder,
    ) -> dramatiq_sentinel_supervisor::ConfigBuilder,
    paths: &[DetectionPath],
) {
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default()).expect("deployment");
    // Idle workers poll rarely, so that their `READONLY` (another detection path) does not
    // come first; the pool drains its jobs before the failover, because while no event
    // arrives the old master accepts writes for a while after the promotion, which no client
    // can make safe.
    let options = PoolOptions {
        idle: Duration::from_secs(10),
        ..PoolOptions::default()
    };
    let run = Running::<R>::start(&d, options, tweak);
    run.pool.wait_completed(3000);
    run.timeline.wait_count("every listener up", 3, |e| {
        matches!(e, Event::ListenerUp { .. })
    });
    let ups = |e: &Event| matches!(e, Event::ListenerUp { .. });
    let ups_before = run.timeline.count(ups);
    kill_listeners(&d);
    run.timeline.wait_count("every listener down", 3, |e| {
        matches!(e, Event::ListenerDown { .. })
    });
    let (_, new) = d.failover_and_wait(WAIT).expect("failover");
    let reconnected_during_failover = run.timeline.count(ups) > ups_before;
    run.timeline.wait_count("the switch", 1, switched);
    wait_master::<R>(&run.sup, &d, d.master().unwrap_or(new));
    let path = run
        .timeline
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::SwitchCompleted {
                old: Some(_), path, ..
            } => Some(path),
            _ => None,
        })
        .expect("a switch");
    if reconnected_during_failover {
        // The machine was too slow for the listeners to stay down for the whole failover.
        eprintln!(
            "{}: a listener reconnected during the failover; detected by {path}",
            R::NAME
        );
    } else {
        assert!(
            paths.contains(&path),
            "detected by {path}, expected one of {paths:?}"
        );
    }
    run.finish(&d);
}

/// A failover while every listener is disconnected (reconnecting only after 30 s) is caught by
/// the periodic check.
pub fn missed_failover_caught_by_the_poll<R: TestRuntime>() {
    missed::<R>(
        |b| {
            b.min_backoff(Duration::from_secs(30))
                .max_backoff(Duration::from_secs(30))
                .periodic_check(Some(Duration::from_millis(500)))
        },
        &[DetectionPath::Poll, DetectionPath::AppError],
    );
}

/// A failover while every listener is disconnected (for 5 s) is caught when a listener
/// reconnects.
pub fn missed_failover_caught_on_reconnect<R: TestRuntime>() {
    missed::<R>(
        |b| {
            b.min_backoff(Duration::from_secs(5))
                .max_backoff(Duration::from_secs(5))
        },
        &[DetectionPath::ListenerReconnect, DetectionPath::AppError],
    );
}

impl Timeline {
    /// The matching events with the time each was emitted.
    pub fn timed(&self, pred: impl Fn(&Event) -> bool) -> Vec<(Instant, Event)> {
        self.lock()
            .iter()
            .filter(|(_, e)| pred(e))
            .cloned()
            .collect()
    }
}

/// The master dies and no failover can follow (every sentinel is stopped first): a command
/// that must connect is held, retrying, for `hold_timeout`, then fails with an error naming
/// the master and the setting; a command held while the master comes back is served.
pub fn unreachable_master_holds_commands_for_the_hold_timeout<R: TestRuntime>() {
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default()).expect("deployment");
    let rt = R::new();
    let timeline = Timeline::default();
    let hold = Duration::from_secs(1);
    let config = config_for(&d).hold_timeout(hold).build().expect("config");
    let sup = start(&rt, Supervisor::<R::Rt>::builder(config), &timeline);
    let master = d.master().expect("the master");
    for s in d.sentinels() {
        d.stop_sentinel(s);
    }
    d.kill(master);
    let node = addr(d.addr(master));
    let conn = sup.master().dedicated();
    let started = Instant::now();
    let mut first = conn.clone();
    let failed = rt
        .block_on(async move { redis::cmd("PING").query_async::<String>(&mut first).await })
        .expect_err("no master to reach");
    let waited = started.elapsed();
    let text = failed.to_string();
    assert!(
        waited >= hold,
        "held {waited:?}, less than hold_timeout {hold:?}"
    );
    assert!(
        text.contains(&node.to_string()) && text.contains("hold_timeout"),
        "{text}"
    );
    assert!(failed.is_connection_refusal(), "{failed:?}");
    assert_eq!(Failure::of(&failed), Some(Failure::NotSent), "{failed}");
    // Issued while the master is still dead, held, and served once it is back within the hold.
    let (tx, rx) = std::sync::mpsc::channel();
    let mut again = conn.clone();
    rt.block_on(async move {
        spawn::<R>(async move {
            let _ = tx.send(redis::cmd("PING").query_async::<String>(&mut again).await);
        });
    });
    d.revive(master).expect("revive the master");
    let pong = rx.recv_timeout(WAIT).expect("the held PING ends");
    assert_eq!(
        pong.ok().as_deref(),
        Some("PONG"),
        "the revived master answers"
    );
    rt.block_on(sup.shutdown()).expect("clean shutdown");
}

/// A command in flight when the master is killed (a `BLPOP` blocked on it) fails with an I/O
/// error of kind `ConnectionAborted` that names the old master, which [`Failure::of`] tells
/// apart as `InFlight` (it may have run), not a raw `Connection reset by peer`; the supervisor
/// then switches and the same handle works on the new master.
pub fn a_command_in_flight_when_the_master_dies_may_have_run<R: TestRuntime>() {
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default()).expect("deployment");
    let rt = R::new();
    let timeline = Timeline::default();
    let sup = start(
        &rt,
        Supervisor::<R::Rt>::builder(config_for(&d).build().expect("config")),
        &timeline,
    );
    let master = d.master().expect("the master");
    let conn = sup.master().dedicated();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut blocked = conn.clone();
    rt.block_on(async move {
        spawn::<R>(async move {
            let reply = redis::cmd("BLPOP")
                .arg("nothing-comes")
                .arg(60)
                .query_async::<Option<(String, String)>>(&mut blocked)
                .await;
            let _ = tx.send(reply);
        });
    });
    wait_for("the BLPOP to block on the master", WAIT, || {
        let info: String = d
            .query(master, redis::cmd("INFO").arg("clients"))
            .map_err(|e| e.to_string())?;
        if info.contains("blocked_clients:0") {
            Err(info)
        } else {
            Ok(())
        }
    });
    d.kill(master);
    let failed = rx
        .recv_timeout(WAIT)
        .expect("the BLPOP ends")
        .expect_err("its master died");
    let text = failed.to_string();
    assert_eq!(Failure::of(&failed), Some(Failure::InFlight), "{text}");
    assert!(Failure::InFlight.may_have_run());
    assert!(text.contains(&addr(d.addr(master)).to_string()), "{text}");
    assert!(failed.is_connection_dropped(), "{failed:?}");
    timeline.wait_count("the switch", 1, switched);
    let mut again = conn.clone();
    let pong = rt
        .block_on(async move { redis::cmd("PING").query_async::<String>(&mut again).await })
        .expect("the handle works on the new master");
    assert_eq!(pong, "PONG");
    rt.block_on(sup.shutdown()).expect("clean shutdown");
}
