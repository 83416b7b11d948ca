//! Per-command overhead: our `MasterConnection` against a plain `redis` multiplexed connection
//! to the same master, with the same response timeout. Two child processes per runtime (tokio:
//! a two-thread runtime; smol: the global executor on two threads), each holding both clients,
//! run every case *at the same time*, one on our handle and the other on the plain
//! connection, and swap clients from one round to the next: both clients always see the same
//! machine (on a shared machine whose load changes by the second, measuring them one after the
//! other compares different machines). Cases: 1, 16, 64 and 256 concurrent tasks sending
//! `INCR`, or pipelines of 16 `INCR`s. Each run measures the throughput, the latency of each call
//! (p50, p99) and the client process's CPU time (user + system, from `/proc`) per command. The
//! report gives, per case, the median of the rounds and the median of the per-round ratios ours
//! / plain. More cases at 64 tasks: the apalis connection against the plain connection, a
//! deadpool pool of our dedicated handles (`pool.get()` per command) against a deadpool pool of
//! plain connections of the same size, and a control: a second plain connection against the
//! first, measured the same way, whose ratios show what the method cannot resolve.

use super::child::Child;
use super::child_args::ChildArgs;
use super::clock::now_ns;
use super::emit::{Sink, watch_stdin};
use super::error::{Result, err};
use super::metrics::stats;
use super::ours::{self, DEFAULT_COMMAND_TIMEOUT, Exec};
use super::overhead::cpu_ns;
use super::run::{Ctx, deployment, load1};
use dramatiq_sentinel_deadpool::deadpool;
use dramatiq_sentinel_supervisor::{BoxFuture, Runtime, Supervisor};
use redis::AsyncConnectionConfig;
use redis::aio::ConnectionLike;
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One case: concurrent tasks, and `INCR`s per call (1, or a pipeline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Case {
    pub(crate) tasks: usize,
    pub(crate) pipeline: usize,
}

/// The cases, in table order.
pub(crate) const CASES: [Case; 8] = {
    let tasks = [1, 16, 64, 256];
    let mut cases = [Case {
        tasks: 1,
        pipeline: 1,
    }; 8];
    let mut i = 0;
    while i < 8 {
        cases[i] = Case {
            tasks: tasks[i % 4],
            pipeline: if i < 4 { 1 } else { 16 },
        };
        i += 1;
    }
    cases
};

/// The integration cases (and the control): what is compared, at which concurrency.
pub(crate) const INTEGRATIONS: [(Integration, Case); 3] = [
    (
        Integration::Apalis,
        Case {
            tasks: 64,
            pipeline: 1,
        },
    ),
    (
        Integration::Deadpool,
        Case {
            tasks: 64,
            pipeline: 1,
        },
    ),
    (
        Integration::Control,
        Case {
            tasks: 64,
            pipeline: 1,
        },
    ),
];

/// Connections in each deadpool pool of the integration case.
const POOL_SIZE: usize = 16;

/// An integration measured against its plain counterpart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Integration {
    /// `ApalisConnection` against the plain connection.
    Apalis,
    /// A deadpool pool of `MasterConnection::dedicated` handles against one of plain
    /// connections.
    Deadpool,
    /// Nothing of ours: a second plain connection against the plain connection, the noise of
    /// the method.
    Control,
}

impl Integration {
    /// The label in the table.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Integration::Apalis => "`ApalisConnection` vs the plain connection",
            Integration::Deadpool => {
                "deadpool pool of 16 dedicated handles vs of 16 plain connections (`get` per command)"
            }
            Integration::Control => {
                "*control*: a second plain connection vs the plain connection (the method's noise)"
            }
        }
    }
}

impl Case {
    /// The label in the table.
    pub(crate) fn label(self) -> String {
        let tasks = format!(
            "{} task{}",
            self.tasks,
            if self.tasks == 1 { "" } else { "s" }
        );
        if self.pipeline == 1 {
            format!("{tasks}, `INCR`")
        } else {
            format!("{tasks}, pipelines of {} `INCR`", self.pipeline)
        }
    }
}

/// One round of one client on one case.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Round {
    /// Commands per second (a pipeline of 16 counts 16).
    pub(crate) ops: f64,
    /// Latency of one call (a command or a pipeline), µs.
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    /// CPU time of the whole client process per command (user + system), ns.
    pub(crate) cpu_ns: f64,
}

/// Every round of one case, for both clients; round `i` of one was measured right before or
/// after round `i` of the other.
#[derive(Debug, Clone)]
pub(crate) struct CaseResult {
    pub(crate) case: Case,
    /// For an integration case: which.
    pub(crate) integration: Option<Integration>,
    pub(crate) ours: Vec<Round>,
    pub(crate) plain: Vec<Round>,
}

impl CaseResult {
    /// Median of the rounds of `pick` for ours and for plain.
    pub(crate) fn medians(&self, pick: impl Fn(&Round) -> f64) -> (f64, f64) {
        let m = |rounds: &[Round]| {
            stats(&rounds.iter().map(&pick).collect::<Vec<_>>()).map_or(f64::NAN, |s| s.median)
        };
        (m(&self.ours), m(&self.plain))
    }

    /// Median over the rounds of ours / plain for `pick`, with its min and max.
    pub(crate) fn ratio(&self, pick: impl Fn(&Round) -> f64) -> Option<super::metrics::Stats> {
        let ratios: Vec<f64> = self
            .ours
            .iter()
            .zip(&self.plain)
            .map(|(o, p)| pick(o) / pick(p))
            .collect();
        stats(&ratios)
    }
}

/// The measurement on one runtime.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeRun {
    pub(crate) cases: Vec<CaseResult>,
    /// The 1-minute load average before and after.
    pub(crate) load: (f64, f64),
    /// The time it took, s.
    pub(crate) secs: f64,
}

/// The whole measurement.
#[derive(Debug, Clone)]
pub(crate) struct Commands {
    pub(crate) rounds: usize,
    pub(crate) round_time: Duration,
    pub(crate) runs: Vec<(Exec, Result<RuntimeRun, String>)>,
}

/// Runs `rounds` rounds of every case on each runtime, each for `round_time`, in two child
/// processes per runtime that run the two clients at the same time.
pub(crate) fn measure(ctx: &Ctx, rounds: usize, round_time: Duration) -> Result<Commands> {
    let d = deployment()?;
    let mut runs = Vec::new();
    for (exec, client) in [(Exec::Tokio, "tokio"), (Exec::Smol, "smol")] {
        eprint!("{client} ");
        let started = Instant::now();
        let load_start = load1();
        let result = pair(ctx, &d, client, rounds, round_time).map(|cases| RuntimeRun {
            cases,
            load: (load_start, load1()),
            secs: started.elapsed().as_secs_f64(),
        });
        runs.push((exec, result.map_err(|e| e.to_string())));
    }
    Ok(Commands {
        rounds,
        round_time,
        runs,
    })
}

/// The two children of one runtime, through every round: their results, per case.
fn pair(
    ctx: &Ctx,
    d: &dramatiq_sentinel_harness::Deployment,
    client: &str,
    rounds: usize,
    round_time: Duration,
) -> Result<Vec<CaseResult>> {
    let mut children = Vec::new();
    for side in ["a", "b"] {
        let mut cmd = ctx.rust_child("commands", client, d);
        // smol's global executor on two threads, as many as tokio's workers.
        cmd.env("SMOL_THREADS", "2");
        let mut child = Child::spawn(&format!("commands-{client}-{side}"), cmd, &ctx.logs)?;
        child.wait_ready(Duration::from_secs(60))?;
        children.push(child);
    }
    let all = all_cases();
    let mut cases: Vec<CaseResult> = all
        .iter()
        .map(|&(integration, case)| CaseResult {
            case,
            integration,
            ours: Vec::new(),
            plain: Vec::new(),
        })
        .collect();
    let mut seq = 0_u64;
    for round in 0..rounds {
        for (i, result) in cases.iter_mut().enumerate() {
            // Which child runs ours alternates by round and case.
            let a_ours = (round + i) % 2 == 0;
            seq += 1;
            for (child, ours) in children.iter_mut().zip([a_ours, !a_ours]) {
                let who = if ours { "ours" } else { "plain" };
                child.send(&format!("run {seq} {i} {who} {}", round_time.as_millis()));
            }
            for (child, ours) in children.iter().zip([a_ours, !a_ours]) {
                let r = wait_result(child, seq, round_time + Duration::from_secs(120))?;
                if ours {
                    result.ours.push(r);
                } else {
                    result.plain.push(r);
                }
            }
        }
        eprint!(".");
    }
    for child in children {
        child.finish("quit", Duration::from_secs(60))?;
    }
    Ok(cases)
}

/// Every case, in table order: the plain cases, then the integrations and the control.
fn all_cases() -> Vec<(Option<Integration>, Case)> {
    CASES
        .iter()
        .map(|&c| (None, c))
        .chain(INTEGRATIONS.iter().map(|&(i, c)| (Some(i), c)))
        .collect()
}

/// Waits for the child's result of run `seq`.
fn wait_result(child: &Child, seq: u64, timeout: Duration) -> Result<Round> {
    let deadline = Instant::now() + timeout;
    loop {
        let found = child.with_lines(|lines| {
            lines
                .iter()
                .rev()
                .find(|v| v.get("seq").and_then(Value::as_u64) == Some(seq))
                .cloned()
        });
        if let Some(v) = found {
            if let Some(e) = v.get("error").and_then(Value::as_str) {
                return Err(err(format!("run {seq}: {e}")));
            }
            let f = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
            return Ok(Round {
                ops: f("ops"),
                p50_us: f("p50_us"),
                p99_us: f("p99_us"),
                cpu_ns: f("cpu_ns"),
            });
        }
        if Instant::now() >= deadline {
            return Err(err(format!(
                "no result for run {seq} within {timeout:?}:\n{}",
                child.stderr_tail()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The child: `child commands --client tokio|smol`. Reads `run <seq> <case> ours|plain <ms>`
/// lines on stdin and answers each with `{"seq", "ops", "p50_us", "p99_us", "cpu_ns"}` (or
/// `{"seq", "error"}`); `quit` or the end of stdin ends it.
pub(crate) fn run_child(args: &ChildArgs) -> Result<()> {
    let sink = Sink::new();
    let (sentinels, service) = ours::target(args)?;
    let config = ours::config(&sentinels, &service, true, DEFAULT_COMMAND_TIMEOUT)?;
    // One request at a time: the driver waits for each answer before the next.
    let (tx, requests) = smol::channel::bounded::<String>(4);
    let on_end = tx.clone();
    watch_stdin(
        move |line| {
            let _ = tx.try_send(line.to_owned());
        },
        move || {
            on_end.close();
        },
    );
    let result = match args.client.as_str() {
        "tokio" => ours::on_tokio(child::<dramatiq_sentinel_tokio::Tokio>(
            Exec::Tokio,
            config,
            requests,
            &sink,
        ))?,
        "smol" => ours::on_smol(child::<dramatiq_sentinel_smol::Smol>(
            Exec::Smol,
            config,
            requests,
            &sink,
        )),
        other => Err(err(format!("unknown commands client `{other}`"))),
    };
    sink.close();
    result
}

/// A request of the driver: run case `case` on `ours` (or the plain client) for `time`.
struct Request {
    seq: u64,
    case: usize,
    ours: bool,
    time: Duration,
}

impl Request {
    fn parse(line: &str) -> Option<Self> {
        let mut words = line.split_whitespace();
        if words.next()? != "run" {
            return None;
        }
        Some(Request {
            seq: words.next()?.parse().ok()?,
            case: words.next()?.parse().ok()?,
            ours: words.next()? == "ours",
            time: Duration::from_millis(words.next()?.parse().ok()?),
        })
    }
}

async fn child<R: Runtime + Default>(
    exec: Exec,
    config: dramatiq_sentinel_supervisor::Config,
    requests: smol::channel::Receiver<String>,
    sink: &Sink,
) -> Result<()> {
    let sup = Supervisor::<R>::builder(config).start().await?;
    let master = sup
        .current_master()
        .ok_or_else(|| err("the supervisor has no master"))?;
    // The same response timeout as ours (its default `command_timeout`): both pay its timer.
    let plain_config =
        AsyncConnectionConfig::new().set_response_timeout(Some(DEFAULT_COMMAND_TIMEOUT));
    let plain_client = redis::Client::open(format!("redis://{master}/"))?;
    let plain = plain_client
        .get_multiplexed_async_connection_with_config(&plain_config)
        .await?;
    // The control's "ours": another plain connection, the same in every way.
    let second = plain_client
        .get_multiplexed_async_connection_with_config(&plain_config)
        .await?;
    let ours = sup.master();
    let apalis = dramatiq_sentinel_apalis::ApalisConnection::new(sup.master());
    let our_pool = Pooled(
        dramatiq_sentinel_deadpool::builder(&ours)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| err(format!("pool: {e}")))?,
    );
    let plain_pool: Pooled<PlainManager, deadpool::managed::Object<PlainManager>> = Pooled(
        deadpool::managed::Pool::builder(PlainManager(redis::Client::open(format!(
            "redis://{master}/"
        ))?))
        .max_size(POOL_SIZE)
        .build()
        .map_err(|e| err(format!("pool: {e}")))?,
    );
    // Warm-up: every connection open, the threads busy once.
    let warm = Duration::from_millis(500);
    run_case(exec, ours.clone(), CASES[2], warm).await?;
    run_case(exec, plain.clone(), CASES[2], warm).await?;
    run_case(exec, second.clone(), CASES[2], warm).await?;
    run_case(exec, apalis.clone(), CASES[2], warm).await?;
    run_case(exec, our_pool.clone(), CASES[2], warm).await?;
    run_case(exec, plain_pool.clone(), CASES[2], warm).await?;
    sink.json(&json!({ "ready": now_ns() }));
    sink.flush();
    let all = all_cases();
    while let Ok(line) = requests.recv().await {
        if line == "quit" {
            break;
        }
        let Some(r) = Request::parse(&line) else {
            continue;
        };
        let Some(&(integration, case)) = all.get(r.case) else {
            sink.json(&json!({ "seq": r.seq, "error": format!("no case {}", r.case) }));
            continue;
        };
        let t = r.time;
        let measured = match (integration, r.ours) {
            (None, true) => run_case(exec, ours.clone(), case, t).await,
            (Some(Integration::Apalis), true) => run_case(exec, apalis.clone(), case, t).await,
            (Some(Integration::Deadpool), true) => run_case(exec, our_pool.clone(), case, t).await,
            (Some(Integration::Deadpool), false) => {
                run_case(exec, plain_pool.clone(), case, t).await
            }
            (Some(Integration::Control), true) => run_case(exec, second.clone(), case, t).await,
            (_, false) => run_case(exec, plain.clone(), case, t).await,
        };
        match measured {
            Ok(m) => sink.json(&json!({
                "seq": r.seq, "ops": m.ops, "p50_us": m.p50_us, "p99_us": m.p99_us,
                "cpu_ns": m.cpu_ns,
            })),
            Err(e) => sink.json(&json!({ "seq": r.seq, "error": e.to_string() })),
        }
        sink.flush();
    }
    sup.shutdown().await?;
    sink.json(&json!({ "end": now_ns() }));
    Ok(())
}

/// A deadpool pool used as a connection: each call takes a connection from the pool.
struct Pooled<M: deadpool::managed::Manager, W: From<deadpool::managed::Object<M>>>(
    deadpool::managed::Pool<M, W>,
);

impl<M: deadpool::managed::Manager, W: From<deadpool::managed::Object<M>>> Clone for Pooled<M, W> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<M, W> ConnectionLike for Pooled<M, W>
where
    M: deadpool::managed::Manager,
    M::Error: std::fmt::Display,
    W: From<deadpool::managed::Object<M>> + std::ops::DerefMut + Send,
    W::Target: ConnectionLike + Send,
{
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        Box::pin(async move {
            let mut conn = self.0.get().await.map_err(pool_error)?;
            conn.req_packed_command(cmd).await
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        Box::pin(async move {
            let mut conn = self.0.get().await.map_err(pool_error)?;
            conn.req_packed_commands(pipeline, offset, count).await
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

fn pool_error<E: std::fmt::Display>(e: E) -> redis::RedisError {
    std::io::Error::other(format!("pool: {e}")).into()
}

/// A deadpool manager of plain multiplexed connections (recycled without a check), the
/// baseline of our pool of dedicated handles.
struct PlainManager(redis::Client);

impl deadpool::managed::Manager for PlainManager {
    type Type = redis::aio::MultiplexedConnection;
    type Error = redis::RedisError;

    async fn create(&self) -> Result<Self::Type, Self::Error> {
        let config =
            AsyncConnectionConfig::new().set_response_timeout(Some(DEFAULT_COMMAND_TIMEOUT));
        self.0
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    async fn recycle(
        &self,
        _: &mut Self::Type,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Self::Error> {
        Ok(())
    }
}

/// Spawns `future` on the child's executor.
fn spawn<T: Send + 'static>(
    exec: Exec,
    future: impl Future<Output = T> + Send + 'static,
) -> BoxFuture<'static, Result<T>> {
    match exec {
        Exec::Tokio => {
            let task = tokio::spawn(future);
            Box::pin(async move { task.await.map_err(|e| err(format!("task: {e}"))) })
        }
        Exec::Smol => {
            let task = smol::spawn(future);
            Box::pin(async move { Ok(task.await) })
        }
    }
}

async fn sleep(exec: Exec, time: Duration) {
    match exec {
        Exec::Tokio => tokio::time::sleep(time).await,
        Exec::Smol => {
            smol::Timer::after(time).await;
        }
    }
}

/// `case.tasks` tasks calling `INCR` (or pipelines of them) on clones of `conn` for `time`.
async fn run_case<C>(exec: Exec, conn: C, case: Case, time: Duration) -> Result<Round>
where
    C: ConnectionLike + Clone + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let key = format!("bench:commands:{}", case.tasks);
    let mut pipe = redis::pipe();
    for _ in 0..case.pipeline {
        pipe.cmd("INCR").arg(&key).ignore();
    }
    let single = {
        let mut c = redis::cmd("INCR");
        c.arg(&key);
        c
    };
    let pid = std::process::id();
    let cpu_before = cpu_ns(pid)?;
    let started = Instant::now();
    let tasks: Vec<_> = (0..case.tasks)
        .map(|_| {
            let (mut conn, stop) = (conn.clone(), Arc::clone(&stop));
            let (pipe, single) = (pipe.clone(), single.clone());
            spawn(exec, async move {
                let mut latencies: Vec<u32> = Vec::with_capacity(4096);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    if case.pipeline == 1 {
                        single.query_async::<i64>(&mut conn).await?;
                    } else {
                        pipe.query_async::<()>(&mut conn).await?;
                    }
                    latencies.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                }
                Ok::<_, redis::RedisError>(latencies)
            })
        })
        .collect();
    sleep(exec, time).await;
    stop.store(true, Ordering::Relaxed);
    let mut all: Vec<u32> = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_ns(pid)?.saturating_sub(cpu_before) as f64;
    if all.is_empty() {
        return Err(err("no call completed"));
    }
    let commands = (all.len() * case.pipeline) as f64;
    all.sort_unstable();
    let at = |q: f64| f64::from(all[((all.len() - 1) as f64 * q).round() as usize]);
    Ok(Round {
        ops: commands / elapsed,
        p50_us: at(0.50),
        p99_us: at(0.99),
        cpu_ns: cpu / commands,
    })
}
