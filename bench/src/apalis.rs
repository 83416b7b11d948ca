//! The apalis job workload (issue 14): the job workload's method (a backlog of 2000 tasks plus
//! 100 tasks/s, 4 workers, 10 ms tasks, failover after 3 s) with apalis workers on
//! apalis-redis storage, through our supervisor (`ApalisConnection`, tokio or smol) and on a
//! plain `ConnectionManager` built from `redis::sentinel` (what apalis-redis's maintainers
//! recommend for Sentinel today).
//!
//! Child (`child apalis --client <variant>`): pushes the backlog through its storage (and
//! `WAIT 2`), then runs the workers and a producer (each push confirmed by `WAIT 1`). A task
//! reports its start, works, writes its effect (`SADD <prefix>:apalis-done`, retried until it
//! succeeds) and reports it done. A worker that stops with an error (apalis stops a worker at
//! its first Redis error) is replaced by a new one under a new name (apalis-redis refuses the
//! old name while its heartbeat is recent), as a supervising application would. Lines: those
//! of the job child, plus `{"restart": worker, "m": error}`.

use super::child::Child;
use super::child_args::ChildArgs;
use super::clock::{ms_between, now_ns, sleep_until_ns};
use super::emit::{Sink, follow_job_driver};
use super::error::{Result, err};
use super::metrics::{self, JobFigures};
use super::observer::Observer;
use super::ours;
use super::run::{self, BACKLOG, Ctx, JOB_MS, RATE, Reference, WORKERS};
use super::scenario::Scenario;
use apalis::layers::WorkerBuilderExt;
use apalis_core::backend::TaskSink;
use apalis_core::backend::ext::BackendExt;
use apalis_core::error::BoxDynError;
use apalis_core::task::data::Data;
use apalis_core::timer::Delay;
use apalis_core::worker::builder::WorkerBuilder;
use apalis_core::worker::context::WorkerContext;
use dramatiq_sentinel_apalis::{ApalisConnection, ApalisWorkers, apalis_redis};
use dramatiq_sentinel_supervisor::{Runtime, Supervisor};
use redis::aio::{ConnectionLike, ConnectionManager};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The variants, in table order.
pub(crate) const VARIANTS: [&str; 3] = ["apalis-ours-tokio", "apalis-ours-smol", "apalis-cm"];

/// A variant's label in the tables.
pub(crate) fn label(id: &str) -> &'static str {
    match id {
        "apalis-ours-tokio" => "apalis, ours (tokio)",
        "apalis-ours-smol" => "apalis, ours (smol)",
        "apalis-cm" => "apalis, `ConnectionManager` from `redis::sentinel`",
        _ => "apalis, unknown variant",
    }
}

/// The idle queue is polled this often (apalis-redis otherwise polls only at heartbeats).
const POLL: Duration = Duration::from_millis(10);
/// The task effects.
fn done_key(prefix: &str) -> String {
    format!("{prefix}:apalis-done")
}
fn queue(prefix: &str) -> apalis_redis::Config {
    apalis_redis::Config::default().queue(format!("{prefix}:apalis"))
}

/// What the driver asked for, and what is running.
#[derive(Default)]
struct Control {
    producing: AtomicBool,
    stop: AtomicBool,
    running: AtomicUsize,
    /// The workers' contexts, to stop them at the end.
    workers: std::sync::Mutex<Vec<WorkerContext>>,
}

/// What every task gets: its sink, and a connection for its effect.
struct TaskCtx<C> {
    sink: Sink,
    conn: C,
    done: String,
    job_time: Duration,
}

async fn task<C: ConnectionLike + Clone + Send + Sync + 'static>(
    id: String,
    ctx: Data<Arc<TaskCtx<C>>>,
) -> Result<(), BoxDynError> {
    ctx.sink
        .line(&format!("{{\"s\":\"{id}\",\"t\":{}}}", now_ns()));
    Delay::new(ctx.job_time).await;
    let mut conn = ctx.conn.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let effect = redis::cmd("SADD")
            .arg(&ctx.done)
            .arg(&id)
            .query_async::<i64>(&mut conn)
            .await;
        match effect {
            Ok(_) => break,
            Err(e) => {
                ctx.sink
                    .json(&json!({ "e": format!("{id}: effect: {e}"), "t": now_ns() }));
                if Instant::now() > deadline {
                    return Err(e.into());
                }
                Delay::new(Duration::from_millis(5)).await;
            }
        }
    }
    ctx.sink
        .line(&format!("{{\"d\":\"{id}\",\"t\":{}}}", now_ns()));
    Ok(())
}

/// Pushes `id` through `storage` and confirms it with `WAIT 1` on `conn` (the storage's own
/// connection): a confirmed push is reported as produced.
async fn push<C: ConnectionLike + Clone + Send + Sync + Unpin + 'static>(
    storage: &mut apalis_redis::RedisStorage<String, C>,
    conn: &mut C,
    id: String,
    sink: &Sink,
    replicas: i64,
) -> bool {
    let confirmed = match storage.push(id.clone()).await {
        Ok(()) => redis::cmd("WAIT")
            .arg(replicas)
            .arg(400)
            .query_async::<i64>(conn)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match confirmed {
        Ok(n) if n >= replicas => {
            sink.line(&format!("{{\"p\":\"{id}\",\"t\":{}}}", now_ns()));
            true
        }
        Ok(n) => {
            sink.json(&json!({ "pu": id, "m": format!("WAIT: {n} replicas") }));
            false
        }
        Err(e) => {
            sink.json(&json!({ "pu": id, "m": e }));
            sink.json(&json!({ "e": format!("produce: {e}"), "t": now_ns() }));
            false
        }
    }
}

/// The workers, the producer and the stop, on runtime `R`, with connections made by
/// `connect` (a fresh one per storage) and the worker contexts from `contexts`.
async fn workload<R, C, F, Fut>(
    args: &ChildArgs,
    sink: &Sink,
    ctl: &Arc<Control>,
    connect: F,
    contexts: impl Fn(&str) -> WorkerContext,
) -> Result<()>
where
    R: Runtime + Default,
    C: ConnectionLike + Clone + Send + Sync + Unpin + 'static,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<C>>,
{
    let rt = R::default();
    let config = queue(&args.prefix);
    // The backlog, through a storage of its own, confirmed on both replicas.
    let mut conn = connect().await?;
    let mut storage =
        apalis_redis::RedisStorage::<String, C>::new(conn.clone()).with_config(config.clone());
    for i in 0..BACKLOG {
        if !push(&mut storage, &mut conn, format!("b-{i}"), sink, 0).await {
            return Err(err("the backlog could not be pushed"));
        }
    }
    // Short `WAIT`s: a `ConnectionManager` times a command out after 500 ms by default.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let replicas: i64 = redis::cmd("WAIT")
            .arg(2)
            .arg(200)
            .query_async(&mut conn)
            .await
            .map_err(|e| err(format!("WAIT for the backlog: {e}")))?;
        if replicas >= 2 {
            break;
        }
        if Instant::now() >= deadline {
            return Err(err("the backlog did not reach both replicas"));
        }
    }

    let ctx = Arc::new(TaskCtx {
        sink: sink.clone(),
        conn: connect().await?,
        done: done_key(&args.prefix),
        job_time: args.job_time,
    });
    ctl.running.store(args.workers + 1, Ordering::SeqCst);
    for w in 0..args.workers {
        let (sink, ctl, ctx, config) = (
            sink.clone(),
            Arc::clone(ctl),
            Arc::clone(&ctx),
            config.clone(),
        );
        let conn = connect().await?;
        let first = contexts(&format!("worker-{w}"));
        let contexts_for_restart: Vec<WorkerContext> = (1..50)
            .map(|k| contexts(&format!("worker-{w}-r{k}")))
            .collect();
        rt.spawn(Box::pin(async move {
            let mut next = contexts_for_restart.into_iter();
            let mut context = Some(first);
            while let Some(c) = context.take() {
                let name = c.name().to_owned();
                dramatiq_sentinel_harness::sync::lock(&ctl.workers).push(c.clone());
                let storage = apalis_redis::RedisStorage::<String, C>::new(conn.clone())
                    .with_config(config.clone())
                    .poll_with_interval(POLL);
                let worker = WorkerBuilder::new(c)
                    .backend(storage)
                    .data(Arc::clone(&ctx))
                    .concurrency(1)
                    .build(task::<C>);
                let ended = worker.run().await;
                if ctl.stop.load(Ordering::SeqCst) {
                    break;
                }
                let why = match ended {
                    Ok(()) => "exited".to_owned(),
                    Err(e) => e.to_string(),
                };
                sink.json(&json!({ "restart": name, "m": why, "t": now_ns() }));
                sink.json(&json!({ "e": format!("worker {name}: {why}"), "t": now_ns() }));
                Delay::new(Duration::from_millis(100)).await;
                context = next.next();
            }
            ctl.running.fetch_sub(1, Ordering::SeqCst);
        }));
    }
    let (psink, pctl) = (sink.clone(), Arc::clone(ctl));
    let mut pconn = connect().await?;
    let mut pstorage =
        apalis_redis::RedisStorage::<String, C>::new(pconn.clone()).with_config(config);
    let rate = args.rate.max(1);
    rt.spawn(Box::pin(async move {
        let interval = Duration::from_secs(1) / rate;
        let mut next = Instant::now();
        let mut n = 0_u64;
        while pctl.producing.load(Ordering::SeqCst) && !pctl.stop.load(Ordering::SeqCst) {
            n += 1;
            push(&mut pstorage, &mut pconn, format!("s-{n}"), &psink, 1).await;
            next += interval;
            let now = Instant::now();
            if next < now {
                next = now;
            } else {
                ours::sleep_until::<R>(next).await;
            }
        }
        pctl.running.fetch_sub(1, Ordering::SeqCst);
    }));
    sink.json(&json!({ "ready": now_ns() }));
    sink.flush();
    while !ctl.stop.load(Ordering::SeqCst) {
        ours::sleep_until::<R>(Instant::now() + Duration::from_millis(20)).await;
    }
    // Stop the workers (tasks in flight finish, buffered ones go back to the queue).
    for c in dramatiq_sentinel_harness::sync::lock(&ctl.workers).iter() {
        let _ = c.stop();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while ctl.running.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        ours::sleep_until::<R>(Instant::now() + Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Our variant: the supervisor, `ApalisConnection` storages (one per worker, each on a
/// dedicated master handle), `ApalisWorkers` for the stop.
async fn ours_child<R: Runtime + Default>(
    args: &ChildArgs,
    sink: &Sink,
    ctl: &Arc<Control>,
) -> Result<()> {
    let (sentinels, service) = ours::target(args)?;
    let config = ours::config(&sentinels, &service, true, ours::DEFAULT_COMMAND_TIMEOUT)?;
    let pool = ApalisWorkers::new();
    let sup = ours::report_events(Supervisor::<R>::builder(config), sink)
        .workers(pool.clone())
        .start()
        .await?;
    let master = sup.master();
    let result = workload::<R, ApalisConnection, _, _>(
        args,
        sink,
        ctl,
        || {
            let m = master.dedicated();
            async move { Ok(ApalisConnection::new(m)) }
        },
        |name| pool.context(name),
    )
    .await;
    // Stops the apalis workers (tasks in flight finish), then the supervisor.
    let _ = sup.shutdown().await;
    result
}

/// The peer: a `ConnectionManager` to the master `redis::sentinel` names at startup (it
/// reconnects to that address for good).
async fn cm_child(args: &ChildArgs, sink: &Sink, ctl: &Arc<Control>) -> Result<()> {
    let (sentinels, service) = ours::target(args)?;
    let urls: Vec<String> = sentinels.iter().map(|s| format!("redis://{s}")).collect();
    let mut sentinel = redis::sentinel::SentinelClient::build(
        urls,
        service,
        None,
        redis::sentinel::SentinelServerType::Master,
    )?;
    let client = sentinel.async_get_client().await?;
    workload::<dramatiq_sentinel_tokio::Tokio, ConnectionManager, _, _>(
        args,
        sink,
        ctl,
        || {
            let client = client.clone();
            async move { Ok(client.get_connection_manager().await?) }
        },
        WorkerContext::new,
    )
    .await
}

/// Runs the apalis child for `args.client`.
pub(crate) fn run_child(args: &ChildArgs) -> Result<()> {
    let sink = Sink::new();
    let ctl = Arc::new(Control::default());
    follow_job_driver(&ctl, |c| &c.producing, |c| &c.stop);
    let result = match args.client.as_str() {
        "apalis-ours-tokio" => ours::on_tokio(ours_child::<dramatiq_sentinel_tokio::Tokio>(
            args, &sink, &ctl,
        ))?,
        "apalis-ours-smol" => ours::on_smol(ours_child::<dramatiq_sentinel_smol::Smol>(
            args, &sink, &ctl,
        )),
        "apalis-cm" => ours::on_tokio(cm_child(args, &sink, &ctl))?,
        other => Err(err(format!("unknown apalis variant `{other}`"))),
    };
    sink.json(&json!({ "end": now_ns() }));
    sink.close();
    result
}

/// One apalis run's results.
#[derive(Debug, Clone)]
pub(crate) struct ApalisResult {
    pub(crate) figures: JobFigures,
    /// Workers that stopped with an error and were replaced.
    pub(crate) restarts: usize,
    /// Tasks left in a worker's in-flight set or the dead set at the end.
    pub(crate) stranded: usize,
    /// Errors surfaced to the tasks, the producer and the workers.
    pub(crate) errors: usize,
    pub(crate) error_samples: Vec<String>,
    /// Candidate writable to the first task start whose effect the final master holds,
    /// among those started after it (useful work on the new master), ms.
    pub(crate) writable_to_durable_start_ms: Option<f64>,
    /// Candidate writable to our `SwitchCompleted` (ours only), ms.
    pub(crate) writable_to_resumed_ms: Option<f64>,
    pub(crate) reference: Reference,
}

/// Waits until the apalis queue is empty on the final master and no task started for 5 s
/// (tasks stranded in a dead worker's in-flight set wait for apalis's orphan recovery, five
/// minutes by default: they are counted, not waited for), at most 60 s.
fn drain(d: &dramatiq_sentinel_harness::Deployment, child: &Child, prefix: &str) -> Result<()> {
    let c = queue(prefix);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last_starts = 0;
    let mut quiet_since = Instant::now();
    loop {
        let starts = child.with_lines(|l| l.iter().filter(|v| v.get("s").is_some()).count());
        if starts != last_starts {
            last_starts = starts;
            quiet_since = Instant::now();
        }
        let queued: Option<usize> = d.master().ok().and_then(|m| {
            d.query(m, redis::cmd("LLEN").arg(c.active_jobs_list()))
                .ok()
        });
        if queued == Some(0) && quiet_since.elapsed() >= Duration::from_secs(5) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Tasks stranded on the final master: in a worker's in-flight set, or dead.
fn stranded(d: &dramatiq_sentinel_harness::Deployment, prefix: &str) -> Result<usize> {
    let c = queue(prefix);
    let master = d.master()?;
    let mut n: usize = d.query(master, redis::cmd("SCARD").arg(c.dead_jobs_set()))?;
    let keys: Vec<String> = d.query(
        master,
        redis::cmd("KEYS").arg(format!("{}:*", c.inflight_jobs_set())),
    )?;
    for key in keys {
        n += d.query::<usize>(master, redis::cmd("SCARD").arg(&key))?;
    }
    Ok(n)
}

/// One run of the apalis workload on `variant` in `scenario`.
pub(crate) fn apalis_run(ctx: &Ctx, scenario: Scenario, variant: &str) -> Result<ApalisResult> {
    let d = run::deployment()?;
    let old = d.master()?;
    let observer = Observer::start(&d, old, "bench:probe")?;
    let mut cmd = ctx.rust_child("apalis", variant, &d);
    cmd.arg("--workers")
        .arg(WORKERS.to_string())
        .arg("--job-ms")
        .arg(JOB_MS.to_string())
        .arg("--rate")
        .arg(RATE.to_string());
    let name = format!("apalis-{variant}-{}", scenario.id());
    let mut child = Child::spawn(&name, cmd, &ctx.logs)?;
    let ready = child.wait_ready(Duration::from_secs(60))?;
    sleep_until_ns(ready + 3 * run::SEC);
    let t0 = run::trigger(&d, scenario, old)?;
    let settled = run::settle(&d, old, ready + run::MIN_RUN);
    child.send("stop-producing");
    let producing_until = now_ns();
    settled?;
    drain(&d, &child, "bench")?;
    let stranded = stranded(&d, "bench");
    let lines = child.finish("quit", Duration::from_secs(30))?;
    let seen = observer.stop();
    ctx.keep_raw(&name, t0, &lines, &seen);
    let stranded = stranded?;
    let master = d.wait_for_master(d.service_name(), Duration::from_secs(30))?;
    let done: HashSet<String> = d.query(master, redis::cmd("SMEMBERS").arg(done_key("bench")))?;

    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let produced: HashSet<String> = lines.iter().filter_map(|v| text(v, "p")).collect();
    let starts: Vec<(String, u64)> = lines
        .iter()
        .filter_map(|v| Some((text(v, "s")?, v.get("t")?.as_u64()?)))
        .collect();
    let figures = metrics::job_figures(&produced, &starts, &done, producing_until);
    let writable = seen.writable(t0);
    let resumed = run::events_after(&lines, "SwitchCompleted", t0).next();
    Ok(ApalisResult {
        figures,
        restarts: lines.iter().filter(|v| v.get("restart").is_some()).count(),
        stranded,
        errors: lines.iter().filter(|v| v.get("e").is_some()).count(),
        error_samples: run::samples(lines.iter().filter_map(|v| text(v, "e"))),
        writable_to_durable_start_ms: writable.and_then(|w| {
            starts
                .iter()
                .filter(|(j, t)| *t >= w && done.contains(j))
                .map(|(_, t)| *t)
                .min()
                .map(|t| ms_between(w, t))
        }),
        writable_to_resumed_ms: resumed.zip(writable).map(|((r, _), w)| ms_between(w, r)),
        reference: Reference::new(&seen, t0),
    })
}

/// One apalis run: scenario, variant, and result or why it failed.
pub(crate) type ApalisRun = (Scenario, String, std::result::Result<ApalisResult, String>);
