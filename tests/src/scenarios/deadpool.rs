//! A deadpool pool of dedicated master handles used by concurrent tasks through a failover
//! (issue 14): no write the pool's connections acknowledged is lost, and the tasks write on
//! the new master after the switch.

use super::failover::{switched, wait_master};
use super::{Timeline, serial, start};
use apalis_core::timer::Delay;
use dramatiq_sentinel_harness::runtime::{TestRuntime, spawn};
use dramatiq_sentinel_harness::sync::lock;
use dramatiq_sentinel_harness::{Deployment, DeploymentOptions, redis};
use dramatiq_sentinel_harness::{WAIT, config_for, wait_for};
use dramatiq_sentinel_supervisor::Supervisor;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Tasks sharing the pool, and its size (fewer connections than tasks: they wait for one).
const TASKS: usize = 12;
const POOL_SIZE: usize = 4;
/// The set every acknowledged write lands in.
const ACKED: &str = "pool-acked";

#[derive(Default)]
struct Writes {
    acked: Mutex<BTreeSet<String>>,
    errors: Mutex<Vec<String>>,
    stop: AtomicBool,
    ended: AtomicUsize,
}

/// Twelve tasks write through a pool of four connections (each write a
/// `MULTI`/`SADD`/`INCR`/`EXEC` transaction on the connection taken from the pool) through
/// `SENTINEL FAILOVER`.
pub fn deadpool_pool_through_a_failover<R: TestRuntime>() {
    let _serial = serial();
    let errors_before = super::logs::errors();
    let d = Deployment::start(DeploymentOptions::default()).expect("deployment");
    let rt = R::new();
    let timeline = Timeline::default();
    let config = config_for(&d).build().expect("valid config");
    let sup = start(&rt, Supervisor::<R::Rt>::builder(config), &timeline);
    let pool = dramatiq_sentinel_deadpool::pool(&sup.master(), POOL_SIZE).expect("pool");
    let writes = Arc::new(Writes::default());
    rt.block_on(async {
        for task in 0..TASKS {
            let (pool, writes) = (pool.clone(), Arc::clone(&writes));
            spawn::<R>(async move {
                let mut n = 0_u64;
                while !writes.stop.load(Ordering::SeqCst) {
                    n += 1;
                    let value = format!("{task}-{n}");
                    let written: Result<(), String> = async {
                        let mut conn = pool.get().await.map_err(|e| format!("get: {e}"))?;
                        redis::pipe()
                            .atomic()
                            .sadd(ACKED, &value)
                            .incr("pool-count", 1)
                            .query_async::<()>(&mut conn)
                            .await
                            .map_err(|e| format!("write: {e}"))
                    }
                    .await;
                    match written {
                        Ok(()) => {
                            lock(&writes.acked).insert(value);
                        }
                        Err(e) => lock(&writes.errors).push(e),
                    }
                    Delay::new(Duration::from_millis(2)).await;
                }
                writes.ended.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    let acked = || lock(&writes.acked).len();
    wait_for("writes through the pool", WAIT, || {
        let n = acked();
        if n >= 200 {
            Ok(())
        } else {
            Err(format!("{n} acknowledged"))
        }
    });
    // Everything written so far reaches both replicas before the failover (right after a
    // start a replica may be linked but not streaming yet: promoting it would lose what it
    // missed, which no client can prevent without `WAIT`). `WAIT` on a connection of our own
    // after a write of our own covers every earlier write.
    let master = d.master().expect("master");
    let mut conn = d.connect(master).expect("connect to the master");
    wait_for("the writes so far to reach both replicas", WAIT, || {
        redis::cmd("SET")
            .arg("pool-marker")
            .arg(1)
            .query::<()>(&mut conn)
            .map_err(|e| e.to_string())?;
        let replicas: usize = redis::cmd("WAIT")
            .arg(2)
            .arg(1000)
            .query(&mut conn)
            .map_err(|e| e.to_string())?;
        if replicas >= 2 {
            Ok(())
        } else {
            Err(format!("{replicas} of 2 replicas"))
        }
    });
    let (old, new) = d.failover_and_wait(WAIT).expect("failover");
    timeline.wait_count("the switch", 1, switched);
    let new = d.master().unwrap_or(new);
    wait_master::<R>(&sup, &d, new);
    let at_switch = acked();
    wait_for("writes through the pool on the new master", WAIT, || {
        let n = acked();
        if n >= at_switch + 200 {
            Ok(())
        } else {
            Err(format!("{n} acknowledged"))
        }
    });
    writes.stop.store(true, Ordering::SeqCst);
    wait_for("the tasks to stop", WAIT, || {
        let n = writes.ended.load(Ordering::SeqCst);
        if n == TASKS {
            Ok(())
        } else {
            Err(format!("{n} of {TASKS}"))
        }
    });
    let stored: BTreeSet<String> = d
        .query(new, redis::cmd("SMEMBERS").arg(ACKED))
        .expect("SMEMBERS");
    let acked = lock(&writes.acked).clone();
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "acknowledged writes lost: {} of {}: {lost:?}",
        lost.len(),
        acked.len()
    );
    let status = pool.status();
    assert!(status.size <= POOL_SIZE, "{status:?}");
    let errors = lock(&writes.errors).clone();
    eprintln!(
        "{}: {} writes acknowledged through the pool ({:?}), none lost; {} errors: {:?}; old {old}, new {new}",
        R::NAME,
        acked.len(),
        status,
        errors.len(),
        errors.iter().take(3).collect::<Vec<_>>()
    );
    drop(pool);
    rt.block_on(sup.shutdown()).expect("clean shutdown");
    assert_eq!(super::logs::errors(), errors_before, "no error-level log");
}
