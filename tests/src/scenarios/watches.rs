//! What the replica watches cost at rest: one connection per replica of the master in use,
//! opened with one `ROLE` and silent afterwards (a promotion closes it; nothing is polled);
//! one per replica for all the supervisors of a process that share their connections.

use super::failover::{switched, wait_master};
use super::{Timeline, serial, start};
use dramatiq_sentinel_harness::runtime::TestRuntime;
use dramatiq_sentinel_harness::{Deployment, DeploymentOptions, NodeId, redis};
use dramatiq_sentinel_harness::{WAIT, config_for, wait_for};
use dramatiq_sentinel_supervisor::{Event, SharedConnections, Supervisor};

/// Seconds a watch connection must have been idle to count as silent at rest: longer than any
/// period the supervisor polls or pings at.
const SILENT_FOR: u64 = 5;

/// The `idle` seconds of every normal client connection of `node` whose last command was
/// `ROLE` (the watches; the sentinels send `PING` and `INFO`, the harness `CLIENT`).
fn role_connections(d: &Deployment, node: NodeId) -> Result<Vec<u64>, String> {
    let list: String = d
        .query(
            node,
            redis::cmd("CLIENT").arg("LIST").arg("TYPE").arg("normal"),
        )
        .map_err(|e| e.to_string())?;
    Ok(list
        .lines()
        .filter(|l| l.split(' ').any(|f| f == "cmd=role"))
        .filter_map(|l| {
            l.split(' ')
                .find_map(|f| f.strip_prefix("idle="))
                .and_then(|n| n.parse().ok())
        })
        .collect())
}

/// Each replica holds exactly one connection of the supervisor's, silent for seconds at rest;
/// shutdown closes them.
pub fn replica_watches_are_one_silent_connection_per_replica<R: TestRuntime>() {
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default()).expect("deployment");
    let rt = R::new();
    let timeline = Timeline::default();
    let config = config_for(&d).build().expect("valid config");
    let sup = start(&rt, Supervisor::<R::Rt>::builder(config), &timeline);
    timeline.wait_count("ready", 1, |e| matches!(e, Event::Ready { .. }));
    let master = d.master().expect("master");
    let replicas: Vec<NodeId> = d.nodes().into_iter().filter(|n| *n != master).collect();
    assert!(!replicas.is_empty(), "the deployment has replicas");
    wait_for("one silent watch per replica", WAIT, || {
        for &r in &replicas {
            let idle = role_connections(&d, r)?;
            match idle.as_slice() {
                [s] if *s >= SILENT_FOR => {}
                other => return Err(format!("{r:?}: ROLE connections idle for {other:?} s")),
            }
        }
        Ok(())
    });
    rt.block_on(sup.shutdown()).expect("clean shutdown");
    wait_for("the watches to close", WAIT, || {
        for &r in &replicas {
            let idle = role_connections(&d, r)?;
            if !idle.is_empty() {
                return Err(format!("{r:?} still has {} watch(es)", idle.len()));
            }
        }
        Ok(())
    });
}

/// Waits until every replica of the master in use holds `n` watch connections.
fn wait_watches(d: &Deployment, n: usize, what: &str) {
    wait_for(what, WAIT, || {
        let master = d.master().map_err(|e| e.to_string())?;
        for r in d.nodes().into_iter().filter(|r| *r != master) {
            let watches = role_connections(d, r)?.len();
            if watches != n {
                return Err(format!("{r:?}: {watches} watch connection(s)"));
            }
        }
        Ok(())
    });
}

/// Three supervisors of one process given the same [`SharedConnections`] hold one watch
/// connection per replica between them (not three), all switch through a graceful failover
/// and then watch the new master's replicas the same way; the shared connections stay open
/// while any of them runs and close with the last one.
pub fn supervisors_sharing_connections_watch_each_replica_once<R: TestRuntime>() {
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default()).expect("deployment");
    let rt = R::new();
    let shared = SharedConnections::new();
    let sups: Vec<_> = (0..3)
        .map(|_| {
            let timeline = Timeline::default();
            let config = config_for(&d).build().expect("valid config");
            let builder = Supervisor::<R::Rt>::builder(config).shared_connections(&shared);
            (start(&rt, builder, &timeline), timeline)
        })
        .collect();
    wait_watches(&d, 1, "one watch per replica for the three supervisors");
    let (_old, new) = d.failover_and_wait(WAIT).expect("failover");
    for (sup, timeline) in &sups {
        timeline.wait_count("the switch", 1, switched);
        wait_master::<R>(sup, &d, new);
        let mut master = sup.master();
        rt.block_on(async move {
            redis::cmd("INCR")
                .arg("shared:after")
                .query_async::<i64>(&mut master)
                .await
        })
        .expect("a command on the new master");
    }
    wait_watches(&d, 1, "one watch per replica of the new master");
    let mut sups = sups.into_iter().map(|(sup, _)| sup);
    let first = sups.next().expect("three supervisors");
    rt.block_on(first.shutdown()).expect("clean shutdown");
    // The others still watch: the connection stays (a failover would still be heard).
    wait_watches(&d, 1, "the watches kept for the other two supervisors");
    for sup in sups {
        rt.block_on(sup.shutdown()).expect("clean shutdown");
    }
    wait_watches(&d, 0, "the watches to close with the last supervisor");
}
