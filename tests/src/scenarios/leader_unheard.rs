//! Failovers led by a sentinel this process does not hear: only the leader publishes a
//! failover's early signals, and the others learn of the promotion from it about a second
//! later. The promoted replica closes its connections at the promotion (Sentinel's `CLIENT
//! KILL` in the promotion's transaction), so the supervisor's watch on it fences at once, and
//! whatever the old master acknowledged after the promotion is read back from its backlog and
//! handed to the pool before the switch resumes. Every job runs exactly once, from the pool's
//! own records, with durable acknowledgements (`WAIT 1`).

use super::failover::{Running, switched, wait_master};
use super::serial;
use super::startup::addr;
use dramatiq_sentinel_harness::pool::PoolOptions;
use dramatiq_sentinel_harness::runtime::TestRuntime;
use dramatiq_sentinel_harness::{Deployment, DeploymentOptions, SentinelId, dead_port};
use dramatiq_sentinel_harness::{WAIT, wait_for};
use dramatiq_sentinel_supervisor::{ConfigBuilder, DetectionPath, Event};
use std::net::SocketAddr;
use std::time::Duration;

/// How the leader is not heard.
#[derive(Debug, Clone, Copy)]
enum Unheard {
    /// Restarted a moment before: its listener waits its backoff (made long here, so the
    /// failover always comes first).
    Restarted,
    /// This process is cut off from it: its listener cannot connect (its address leads to a
    /// port that resets every connection), while the other sentinels are fine.
    CutOff,
}

/// The supervisor's settings: a listener backoff far longer than the story, and, cut off, the
/// leader's address (configured and as the other sentinels announce it) mapped to a dead port.
fn settings(
    d: &Deployment,
    leader: SentinelId,
    unheard: Unheard,
) -> impl FnOnce(ConfigBuilder) -> ConfigBuilder + use<> {
    let real = d.addr(leader);
    let sentinels: Vec<SocketAddr> = d.sentinel_addrs();
    let dead = matches!(unheard, Unheard::CutOff).then(|| dead_port().expect("a dead port"));
    move |b| {
        let b = b
            .min_backoff(Duration::from_secs(20))
            .max_backoff(Duration::from_secs(40));
        match dead {
            None => b,
            Some(dead) => b
                .sentinels(
                    sentinels
                        .iter()
                        .map(|s| if *s == real { dead } else { *s })
                        .map(|s| s.to_string()),
                )
                .nat(real.to_string(), dead.to_string()),
        }
    }
}

/// `failovers` graceful failovers in a row, each led by a sentinel the supervisor does not hear.
fn led_by_an_unheard_sentinel<R: TestRuntime>(unheard: Unheard, failovers: usize) {
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default()).expect("deployment");
    let leader = d.sentinels()[0];
    let durable = PoolOptions {
        durable: true,
        ..PoolOptions::default()
    };
    let run = Running::<R>::start(&d, durable, settings(&d, leader, unheard));
    let leader_addr = addr(d.addr(leader));
    for n in 1..=failovers {
        if let Unheard::Restarted = unheard {
            let downs_before = run.timeline.count(|e| waiting(e, &leader_addr));
            d.stop_sentinel(leader);
            // Its listener reconnects at once, fails (the sentinel is down), and waits.
            run.timeline
                .wait_count("the listener to wait its backoff", downs_before + 1, |e| {
                    waiting(e, &leader_addr)
                });
            d.start_sentinel(leader).expect("the sentinel starts again");
        }
        let old = d.failover_led_by(leader).expect("SENTINEL FAILOVER");
        let new = d.wait_for_new_master(old, WAIT).expect("promoted");
        run.timeline.wait_count("the switch", n, switched);
        wait_master::<R>(&run.sup, &d, new);
        // The next failover waits until the other sentinels agree on the new master (and so
        // the supervisor watches its replicas).
        wait_for("the sentinels to agree", WAIT, || {
            d.master().map(|m| m == new).map_err(|e| e.to_string())
        });
    }
    let events = run.timeline.events();
    let paths: Vec<DetectionPath> = events
        .iter()
        .filter_map(|e| match e {
            Event::SwitchCompleted {
                old: Some(_), path, ..
            } => Some(*path),
            _ => None,
        })
        .collect();
    let timeline: Vec<String> = events.iter().map(ToString::to_string).collect();
    assert_eq!(
        paths,
        vec![DetectionPath::ReplicaWatch; failovers],
        "every promotion fenced at the promoted replica's closing: {timeline:#?}"
    );
    // Whatever the old master acknowledged after the promotion was read back and handed back.
    for e in &events {
        if let Event::WritesLost {
            commands, unread, ..
        } = e
        {
            assert!(commands.is_some(), "not read back: {unread:?} in {e:?}");
        }
    }
    let (handed_back, reapplied) = run.pool.ledger.handed_back();
    eprintln!(
        "{}: {unheard:?} leader, {failovers} failover(s): {handed_back} lost writes handed back, \
         {reapplied} re-applied",
        R::NAME
    );
    run.finish(&d);
}

/// A listener to `sentinel` went down and waits before its next attempt.
fn waiting(e: &Event, sentinel: &dramatiq_sentinel_supervisor::Addr) -> bool {
    matches!(e, Event::ListenerDown { sentinel: s, retry_in, .. }
        if s == sentinel && !retry_in.is_zero())
}

/// A graceful failover led by a sentinel restarted a moment before, whose listener waits its
/// reconnection backoff.
pub fn leader_unheard_restarted_sentinel<R: TestRuntime>() {
    led_by_an_unheard_sentinel::<R>(Unheard::Restarted, 1);
}

/// A graceful failover led by a sentinel this process is cut off from, the others fine.
pub fn leader_unheard_cut_off_sentinel<R: TestRuntime>() {
    led_by_an_unheard_sentinel::<R>(Unheard::CutOff, 1);
}

/// Two such failovers back to back (the second promotes a replica of the first's new master,
/// watched since the switch).
pub fn leader_unheard_twice<R: TestRuntime>() {
    led_by_an_unheard_sentinel::<R>(Unheard::CutOff, 2);
}
