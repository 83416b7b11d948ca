//! A deposed master stops taking writes from the whole fleet: the first process to switch
//! away from a master that still answers pauses its writes (`deposed_pause`), so a process
//! whose fence comes later is not acknowledged there.

use super::failover::switched;
use super::{Timeline, serial, start};
use dramatiq_sentinel_harness::runtime::TestRuntime;
use dramatiq_sentinel_harness::{Deployment, DeploymentOptions, redis};
use dramatiq_sentinel_harness::{WAIT, config_for, wait_for};
use dramatiq_sentinel_supervisor::Supervisor;
use std::time::Duration;

/// A client of the old master that has not fenced (another process of the fleet, slower to
/// notice) writes right after the supervisor switched: the write waits (or, once Sentinel
/// has reconfigured the old master, is refused), it is never acknowledged, and after the
/// client gives up and closes, it never ran.
pub fn a_deposed_master_makes_late_writers_wait<R: TestRuntime>() {
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default()).expect("deployment");
    let rt = R::new();
    let timeline = Timeline::default();
    let config = config_for(&d).build().expect("valid config");
    let sup = start(&rt, Supervisor::<R::Rt>::builder(config), &timeline);
    let old = d.master().expect("master");
    let mut late = d.connect(old).expect("a connection to the master");
    late.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("read timeout");
    d.failover().expect("SENTINEL FAILOVER");
    timeline.wait_count("the switch", 1, switched);
    let reply = redis::cmd("SET")
        .arg("late-write")
        .arg("1")
        .query::<String>(&mut late);
    assert!(
        reply.is_err(),
        "a write the deposed master acknowledged after the switch: {reply:?}"
    );
    drop(late);
    let new = d.wait_for_new_master(old, WAIT).expect("promoted");
    // Once the old master follows the new one (its pause over), the write is nowhere.
    wait_for("the old master to follow the new one", WAIT, || {
        let role: Vec<redis::Value> = d
            .query(old, &redis::cmd("ROLE"))
            .map_err(|e| e.to_string())?;
        match role.first() {
            Some(redis::Value::BulkString(r)) if r == b"slave" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    for node in [old, new] {
        let got: Option<String> = d
            .query(node, redis::cmd("GET").arg("late-write"))
            .expect("GET");
        assert_eq!(got, None, "the late write ran on {node:?}");
    }
    rt.block_on(sup.shutdown()).expect("clean shutdown");
}
