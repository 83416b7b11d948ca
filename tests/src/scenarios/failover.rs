//! Failover scenarios with a worker pool on a reliable queue: every one checks that no job is
//! lost, none runs twice, none starts while the workers are paused, and the workers run on the
//! new master afterwards.

use super::pool::{Pool, PoolOptions, attach};
use super::startup::addr;
use super::{TestRuntime, Timeline, WAIT, config_for, serial, start, wait_for};
use crate::harness::{Deployment, DeploymentOptions, NodeId};
use dramatiq_sentinel_supervisor::{Event, Supervisor};

fn switched(e: &Event) -> bool {
    matches!(e, Event::SwitchCompleted { old: Some(_), .. })
}

/// Waits until the supervisor uses `node`.
fn wait_master<R: TestRuntime>(sup: &Supervisor<R::Rt>, d: &Deployment, node: NodeId) {
    let want = addr(d.addr(node));
    wait_for("the supervisor to use the new master", WAIT, || {
        let now = sup.current_master();
        if now.as_ref() == Some(&want) {
            Ok(())
        } else {
            Err(format!("{now:?}, want {want}"))
        }
    });
}

/// The end of every failover scenario: more jobs on the new master, then the checks.
fn finish<R: TestRuntime>(
    rt: &R,
    sup: Supervisor<R::Rt>,
    d: &Deployment,
    mut pool: Pool,
    timeline: &Timeline,
) {
    pool.produce(d, "after", 200);
    let requeued = pool.finish_and_check(d);
    assert!(pool.ledger.pauses() >= 1, "the workers were paused");
    assert_eq!(timeline.count(|e| matches!(e, Event::Stopped { .. })), 0);
    eprintln!(
        "{}: {} jobs, {} requeued, {} pauses, worker errors: {:?}",
        R::NAME,
        pool.ledger.completed(),
        requeued,
        pool.ledger.pauses(),
        pool.errors()
    );
    let completed: Vec<_> = timeline.events().into_iter().filter(switched).collect();
    eprintln!("{}: switches: {completed:#?}", R::NAME);
    rt.block_on(sup.shutdown()).expect("clean shutdown");
}

/// `SENTINEL FAILOVER` while the pool works.
pub fn graceful_failover_with_a_worker_pool<R: TestRuntime>() {
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default()).expect("deployment");
    let rt = R::new();
    let timeline = Timeline::default();
    let ledger = Pool::ledger();
    let config = config_for(&d).build().expect("valid config");
    let sup = start(
        &rt,
        attach(&ledger, Supervisor::<R::Rt>::builder(config)),
        &timeline,
    );
    let mut pool = Pool::start(&rt, ledger, &sup, PoolOptions::default());
    pool.produce(&d, "before", 3000);
    pool.wait_completed(100);
    let (_old, new) = d.failover_and_wait(WAIT).expect("failover");
    timeline.wait_count("the switch", 1, switched);
    wait_master::<R>(&sup, &d, d.master().unwrap_or(new));
    finish(&rt, sup, &d, pool, &timeline);
}

/// The master is killed (SIGKILL) while the pool works; the pool acknowledges durably
/// (`WAIT 1`), as an application must to survive losing a master.
pub fn master_killed_with_a_worker_pool<R: TestRuntime>() {
    let _serial = serial();
    let d = Deployment::start(DeploymentOptions::default()).expect("deployment");
    let rt = R::new();
    let timeline = Timeline::default();
    let ledger = Pool::ledger();
    let config = config_for(&d).build().expect("valid config");
    let sup = start(
        &rt,
        attach(&ledger, Supervisor::<R::Rt>::builder(config)),
        &timeline,
    );
    let options = PoolOptions {
        durable: true,
        ..PoolOptions::default()
    };
    let mut pool = Pool::start(&rt, ledger, &sup, options);
    pool.produce(&d, "before", 3000);
    pool.wait_completed(100);
    let killed = d.kill_master().expect("kill");
    let new = d.wait_for_new_master(killed, WAIT).expect("new master");
    timeline.wait_count("the switch", 1, switched);
    wait_master::<R>(&sup, &d, d.master().unwrap_or(new));
    finish(&rt, sup, &d, pool, &timeline);
}
