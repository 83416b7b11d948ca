//! apalis workers on apalis-redis storage through a failover (issue 14): several workers,
//! each running several tasks at once, consume a backlog and a steady stream through a
//! graceful failover, a master kill and a frozen master. Every task pushed runs exactly once
//! (counted from the tasks' own records in Redis), no task is left in apalis's queue,
//! in-flight or dead sets, no worker stops with an error, and (with the drain) no task
//! starts while the workers are paused.

use super::failover::{switched, wait_master};
use super::{Timeline, serial, start};
use apalis::layers::WorkerBuilderExt;
use apalis_core::backend::TaskSink;
use apalis_core::backend::ext::BackendExt;
use apalis_core::error::BoxDynError;
use apalis_core::task::data::Data;
use apalis_core::timer::Delay;
use apalis_core::worker::builder::WorkerBuilder;
use dramatiq_sentinel_apalis::{ApalisWorkers, Storage, apalis_redis, storage};
use dramatiq_sentinel_harness::runtime::{TestRuntime, spawn};
use dramatiq_sentinel_harness::sync::lock;
use dramatiq_sentinel_harness::{Deployment, DeploymentOptions, NodeId, redis};
use dramatiq_sentinel_harness::{WAIT, config_for, wait_for};
use dramatiq_sentinel_supervisor::{
    BoxFuture, Event, LostWrites, MasterConnection, Supervisor, Workers,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The apalis queue.
const QUEUE: &str = "apalis-tasks";
/// The tasks' own records: one member `<task>#<run>` per run of a task.
const RUNS: &str = "apalis-runs";
/// Workers, and tasks each runs at once.
const WORKERS: usize = 3;
const CONCURRENCY: usize = 4;
/// Tasks queued before the workers start, and the stream's rate.
const BACKLOG: usize = 400;
const RATE: u64 = 100;
/// How long a task works.
const TASK_TIME: Duration = Duration::from_millis(5);

/// What the tasks and workers did.
#[derive(Default)]
struct Ledger {
    /// Every task start: task, when.
    starts: Mutex<Vec<(String, Instant)>>,
    /// Runs whose record is written.
    recorded: AtomicUsize,
    /// Numbers runs, so that each run writes a record of its own (retries of one run write
    /// the same one).
    runs: AtomicU64,
    /// Workers that ended with an error, and how.
    worker_errors: Mutex<Vec<String>>,
    workers_ended: AtomicUsize,
    /// Pauses of the pool: from the end of `pause` to the start of `resume`.
    pauses: Mutex<Vec<(Instant, Option<Instant>)>>,
    /// Errors the tasks' own record writes saw (retried).
    record_errors: AtomicUsize,
}

/// The data every task gets: the ledger and a master handle for its record.
struct TaskCtx {
    ledger: Arc<Ledger>,
    redis: MasterConnection,
}

/// One task: note its start, work, then write its record durably (`SADD` and `WAIT 1`,
/// retried until a replica has it: a killed master must not lose the proof of a run).
async fn task(id: String, ctx: Data<Arc<TaskCtx>>) -> Result<(), BoxDynError> {
    let run = ctx.ledger.runs.fetch_add(1, Ordering::SeqCst);
    lock(&ctx.ledger.starts).push((id.clone(), Instant::now()));
    Delay::new(TASK_TIME).await;
    let record = format!("{id}#{run}");
    let mut redis = ctx.redis.clone();
    let deadline = Instant::now() + WAIT;
    loop {
        let written: redis::RedisResult<i64> = async {
            redis::cmd("SADD")
                .arg(RUNS)
                .arg(&record)
                .query_async::<i64>(&mut redis)
                .await?;
            redis::cmd("WAIT")
                .arg(1)
                .arg(2000)
                .query_async::<i64>(&mut redis)
                .await
        }
        .await;
        match written {
            Ok(n) if n >= 1 => break,
            _ if Instant::now() > deadline => return Err(format!("{record}: not recorded").into()),
            _ => {
                ctx.ledger.record_errors.fetch_add(1, Ordering::SeqCst);
                Delay::new(Duration::from_millis(5)).await;
            }
        }
    }
    ctx.ledger.recorded.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// The pool as the supervisor sees it, recording pauses and resumes.
struct Recorded {
    pool: ApalisWorkers,
    ledger: Arc<Ledger>,
}

impl Workers for Recorded {
    fn needs_drain(&self) -> bool {
        self.pool.needs_drain()
    }

    fn pause(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {
            self.pool.pause().await;
            lock(&self.ledger.pauses).push((Instant::now(), None));
        })
    }

    fn resume(&self) -> BoxFuture<'_, ()> {
        if let Some(p) = lock(&self.ledger.pauses).last_mut()
            && p.1.is_none()
        {
            p.1 = Some(Instant::now());
        }
        self.pool.resume()
    }

    fn stop(&self, grace: Duration) -> BoxFuture<'_, ()> {
        self.pool.stop(grace)
    }

    fn writes_lost(&self, lost: LostWrites) -> BoxFuture<'_, ()> {
        self.pool.writes_lost(lost)
    }
}

fn config() -> apalis_redis::Config {
    apalis_redis::Config::default().queue(QUEUE)
}

/// Pushes `ids` through apalis and waits until a replica has them; returns those confirmed
/// (the others may exist or not: a failover may have cut the push or its confirmation).
async fn push(
    storage: &mut Storage<String>,
    conn: &mut MasterConnection,
    ids: Vec<String>,
) -> Vec<String> {
    let mut confirmed = Vec::new();
    for id in ids {
        if storage.push(id.clone()).await.is_err() {
            continue;
        }
        let replicas: redis::RedisResult<i64> =
            redis::cmd("WAIT").arg(1).arg(2000).query_async(conn).await;
        if matches!(replicas, Ok(n) if n >= 1) {
            confirmed.push(id);
        }
    }
    confirmed
}

/// What happens to the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Graceful,
    Kill,
    Freeze,
}

/// The apalis keys that must be empty once every task is done: the queue, the scheduled set,
/// the dead set, and every worker's in-flight set.
fn leftovers(d: &Deployment, master: NodeId) -> Result<Vec<String>, String> {
    let c = config();
    let mut left = Vec::new();
    let len: usize = d
        .query(master, redis::cmd("LLEN").arg(c.active_jobs_list()))
        .map_err(|e| e.to_string())?;
    if len > 0 {
        left.push(format!("{len} queued"));
    }
    for (what, key) in [
        ("dead", c.dead_jobs_set()),
        ("failed", c.failed_jobs_set()),
        ("scheduled", c.scheduled_jobs_set()),
    ] {
        let n: usize = d
            .query(master, redis::cmd("ZCARD").arg(&key))
            .or_else(|_| d.query(master, redis::cmd("SCARD").arg(&key)))
            .map_err(|e| e.to_string())?;
        if n > 0 {
            left.push(format!("{n} {what}"));
        }
    }
    let inflight: Vec<String> = d
        .query(
            master,
            redis::cmd("KEYS").arg(format!("{}:*", c.inflight_jobs_set())),
        )
        .map_err(|e| e.to_string())?;
    for key in inflight {
        let members: Vec<String> = d
            .query(master, redis::cmd("SMEMBERS").arg(&key))
            .map_err(|e| e.to_string())?;
        if !members.is_empty() {
            left.push(format!("{key}: {members:?}"));
        }
    }
    Ok(left)
}

/// Waits until every replica of `master` has its replication stream up to where it is now,
/// so that whichever replica Sentinel promotes has every write made so far. Right after
/// start-up a replica is linked (`ROLE` says `connected`) before it gets the stream: after a
/// diskless full sync Redis streams to a replica only from its next `REPLCONF ACK`, up to a
/// second later, and Sentinel may promote that replica at offset 0: the new master then has
/// none of the writes since start-up (the backlog, and apalis's worker registrations, so that
/// every worker stops with "worker not registered" at its next fetch or acknowledgement).
fn wait_replicas_in_sync(d: &Deployment, master: NodeId) {
    d.wait_replicas_caught_up(master, WAIT)
        .expect("every replica caught up with the master");
}

/// What the workers, the pool and the supervisor are doing, for a wait's failure message: a
/// stall then says which part stopped (tasks not starting, starting but not recording, workers
/// ended or errored, still paused, no resume after the pause).
fn progress(
    ledger: &Ledger,
    pool: &ApalisWorkers,
    timeline: &Timeline,
    d: &Deployment,
    errors_before: usize,
) -> String {
    let now = Instant::now();
    let ago = |t: Instant| format!("{}ms ago", now.saturating_duration_since(t).as_millis());
    let recorded = ledger.recorded.load(Ordering::SeqCst);
    let (started, last_start) = {
        let starts = lock(&ledger.starts);
        (
            starts.len(),
            starts.last().map(|(t, at)| format!("{t} {}", ago(*at))),
        )
    };
    let workers: Vec<String> = pool
        .contexts()
        .iter()
        .map(|c| {
            format!(
                "{} {} ready={} in-flight={}",
                c.name(),
                c.state(),
                c.is_ready(),
                c.task_count()
            )
        })
        .collect();
    let pauses: Vec<String> = lock(&ledger.pauses)
        .iter()
        .map(|(from, to)| match to {
            Some(to) => format!("paused {} resumed {}", ago(*from), ago(*to)),
            None => format!("paused {}, not resumed", ago(*from)),
        })
        .collect();
    let queue = d
        .master()
        .map_err(|e| e.to_string())
        .and_then(|m| {
            let c = config();
            let queued: usize = d
                .query(m, redis::cmd("LLEN").arg(c.active_jobs_list()))
                .map_err(|e| e.to_string())?;
            Ok(format!("{queued} queued, {:?}", leftovers(d, m)?))
        })
        .unwrap_or_else(|e| format!("unknown ({e})"));
    let events = timeline.events();
    let last_events: Vec<String> = events
        .iter()
        .skip(events.len().saturating_sub(12))
        .map(ToString::to_string)
        .collect();
    format!(
        "{recorded} recorded, {started} started (last: {last_start:?}), {} record retries; \
         workers: {workers:?}; {} ended, errors: {:?}; pauses: {pauses:?}; \
         apalis on the master: {queue}; {} error logs; last events: {last_events:#?}",
        ledger.record_errors.load(Ordering::SeqCst),
        ledger.workers_ended.load(Ordering::SeqCst),
        lock(&ledger.worker_errors),
        super::logs::errors() - errors_before,
    )
}

fn apalis_through<R: TestRuntime>(fault: Fault, drain: bool) {
    let _serial = serial();
    let errors_before = super::logs::errors();
    let d = Deployment::start(DeploymentOptions::default().down_after(Duration::from_millis(1000)))
        .expect("deployment");
    // The backlog's pushes wait for a replica, and the failover must not promote a replica
    // that has none of the writes.
    wait_replicas_in_sync(&d, d.master().expect("master"));
    let rt = R::new();
    let timeline = Timeline::default();
    let ledger = Arc::new(Ledger::default());
    let pool = ApalisWorkers::new().with_drain(drain);
    let builder = Supervisor::<R::Rt>::builder(config_for(&d).build().expect("valid config"))
        .workers(Recorded {
            pool: pool.clone(),
            ledger: Arc::clone(&ledger),
        });
    let sup = start(&rt, builder, &timeline);
    assert_eq!(sup.config().drain(), drain);
    let master = sup.master();
    let produced: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    // Every task the producer tried to push (confirmed or not).
    let attempted: Arc<Mutex<BTreeSet<String>>> = Arc::default();

    // The backlog, before the workers start.
    let backlog: Vec<String> = (0..BACKLOG).map(|i| format!("b-{i}")).collect();
    let pushed = rt.block_on(async {
        let mut conn = master.dedicated();
        let mut s = storage::<String>(&conn, config());
        push(&mut s, &mut conn, backlog).await
    });
    assert_eq!(pushed.len(), BACKLOG, "backlog confirmed");
    lock(&produced).extend(pushed);

    // The workers.
    let ctx = Arc::new(TaskCtx {
        ledger: Arc::clone(&ledger),
        redis: master.clone(),
    });
    for w in 0..WORKERS {
        let worker = WorkerBuilder::new(pool.context(&format!("worker-{w}")))
            .backend(
                storage::<String>(&master, config()).poll_with_interval(Duration::from_millis(20)),
            )
            .data(Arc::clone(&ctx))
            .concurrency(CONCURRENCY)
            .build(task);
        let l = Arc::clone(&ledger);
        rt.block_on(async {
            spawn::<R>(async move {
                if let Err(e) = worker.run().await {
                    lock(&l.worker_errors).push(e.to_string());
                }
                l.workers_ended.fetch_add(1, Ordering::SeqCst);
            })
        });
    }

    // The stream.
    let producing = Arc::new(AtomicBool::new(true));
    let producer_done = Arc::new(AtomicBool::new(false));
    {
        let (producing, done, produced, attempted) = (
            Arc::clone(&producing),
            Arc::clone(&producer_done),
            Arc::clone(&produced),
            Arc::clone(&attempted),
        );
        let mut conn = master.dedicated();
        rt.block_on(async {
            spawn::<R>(async move {
                let mut s = storage::<String>(&conn, config());
                let interval = Duration::from_millis(1000 / RATE);
                let mut n = 0;
                while producing.load(Ordering::SeqCst) {
                    n += 1;
                    lock(&attempted).insert(format!("s-{n}"));
                    let ok = push(&mut s, &mut conn, vec![format!("s-{n}")]).await;
                    lock(&produced).extend(ok);
                    Delay::new(interval).await;
                }
                done.store(true, Ordering::SeqCst);
            })
        });
    }

    wait_for("tasks to run", WAIT, || {
        let n = ledger.recorded.load(Ordering::SeqCst);
        if n >= 100 {
            Ok(())
        } else {
            Err(progress(&ledger, &pool, &timeline, &d, errors_before))
        }
    });
    let old = d.master().expect("master");
    wait_replicas_in_sync(&d, old);
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
    timeline.wait_count("the switch", 1, switched);
    wait_master::<R>(&sup, &d, d.master().unwrap_or(new));
    if fault == Fault::Graceful {
        // With every replica in sync and work fenced before the promotion, nothing is lost;
        // a loss breaks what this scenario checks (tasks and registrations gone), so say so.
        let lost: Vec<String> = timeline
            .events()
            .iter()
            .filter(|e| matches!(e, Event::WritesLost { .. }))
            .map(ToString::to_string)
            .collect();
        assert!(lost.is_empty(), "a graceful failover lost writes: {lost:?}");
    }
    // Tasks pushed to the new master run too.
    let recorded_at_switch = ledger.recorded.load(Ordering::SeqCst);
    wait_for("tasks to run on the new master", WAIT, || {
        let n = ledger.recorded.load(Ordering::SeqCst);
        if n >= recorded_at_switch + 100 {
            Ok(())
        } else {
            Err(format!(
                "{recorded_at_switch} at the switch; {}",
                progress(&ledger, &pool, &timeline, &d, errors_before)
            ))
        }
    });
    producing.store(false, Ordering::SeqCst);
    wait_for("the producer to stop", WAIT, || {
        if producer_done.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("producing".into())
        }
    });

    // Every task ran, and apalis's sets are empty.
    let produced = lock(&produced).clone();
    let runs = wait_for("every task to run and apalis to settle", WAIT, || {
        let master = d.master().map_err(|e| e.to_string())?;
        let runs: Vec<String> = d
            .query(master, redis::cmd("SMEMBERS").arg(RUNS))
            .map_err(|e| e.to_string())?;
        let mut per_task: BTreeMap<String, usize> = BTreeMap::new();
        for r in &runs {
            let task = r.split('#').next().unwrap_or_default().to_owned();
            *per_task.entry(task).or_default() += 1;
        }
        let missing = produced
            .iter()
            .filter(|t| !per_task.contains_key(*t))
            .count();
        let left = leftovers(&d, master)?;
        if missing == 0 && left.is_empty() {
            Ok(per_task)
        } else {
            Err(format!(
                "{missing} of {} tasks not run; left: {left:?}; {}",
                produced.len(),
                progress(&ledger, &pool, &timeline, &d, errors_before)
            ))
        }
    });
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "tasks run more than once: {twice:?}");
    let attempted = lock(&attempted).clone();
    let unknown: Vec<_> = runs
        .keys()
        .filter(|t| !produced.contains(*t) && !attempted.contains(*t))
        .collect();
    assert!(
        unknown.is_empty(),
        "runs of tasks never pushed: {unknown:?}"
    );
    // Starts seen by the workers: once each too (a start whose record a failover lost would
    // show here).
    let mut starts: BTreeMap<String, usize> = BTreeMap::new();
    for (t, _) in lock(&ledger.starts).iter() {
        *starts.entry(t.clone()).or_default() += 1;
    }
    let started_twice: Vec<_> = starts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        started_twice.is_empty(),
        "tasks started more than once: {started_twice:?}"
    );

    let pauses = lock(&ledger.pauses).clone();
    if drain {
        assert!(!pauses.is_empty(), "the drain paused the workers");
        for (from, to) in &pauses {
            let during: Vec<_> = lock(&ledger.starts)
                .iter()
                .filter(|(_, t)| t > from && to.is_none_or(|to| *t < to))
                .map(|(j, _)| j.clone())
                .collect();
            assert!(during.is_empty(), "tasks started while paused: {during:?}");
        }
    } else {
        assert!(pauses.is_empty(), "no drain without `drain`: {pauses:?}");
    }

    rt.block_on(sup.shutdown()).expect("clean shutdown");
    wait_for("the workers to exit", WAIT, || {
        let n = ledger.workers_ended.load(Ordering::SeqCst);
        if n == WORKERS {
            Ok(())
        } else {
            Err(format!("{n} of {WORKERS}"))
        }
    });
    let worker_errors = lock(&ledger.worker_errors).clone();
    assert!(
        worker_errors.is_empty(),
        "workers stopped with errors: {worker_errors:?}"
    );
    let master = d.master().expect("master");
    let left = leftovers(&d, master).expect("leftovers");
    assert!(
        left.is_empty(),
        "left in apalis's sets after shutdown: {left:?}"
    );
    eprintln!(
        "{} apalis {fault:?}: {} tasks, {} runs recorded, {} record retries, pauses {pauses:?}",
        R::NAME,
        produced.len(),
        ledger.recorded.load(Ordering::SeqCst),
        ledger.record_errors.load(Ordering::SeqCst),
    );
    assert_eq!(
        super::logs::errors(),
        errors_before,
        "error-level logs during a failover that worked (RUST_LOG=error shows them)"
    );
}

/// apalis workers through `SENTINEL FAILOVER`, with the drain: paused (no task starts, the
/// ones in flight finish) and resumed on the new master.
pub fn apalis_through_a_graceful_failover_with_a_drain<R: TestRuntime>() {
    apalis_through::<R>(Fault::Graceful, true);
}

/// apalis workers through `SENTINEL FAILOVER` with the default (no drain): never paused,
/// resumed on the new master as soon as it is verified, every task exactly once.
pub fn apalis_through_a_graceful_failover<R: TestRuntime>() {
    apalis_through::<R>(Fault::Graceful, false);
}

/// apalis workers through a master kill (no drain: the default).
pub fn apalis_through_a_master_kill<R: TestRuntime>() {
    apalis_through::<R>(Fault::Kill, false);
}

/// apalis workers through a frozen master, thawed after the failover (no drain).
pub fn apalis_through_a_frozen_master<R: TestRuntime>() {
    apalis_through::<R>(Fault::Freeze, false);
}
