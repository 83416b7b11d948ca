//! The job workload in a child process: a worker pool and a stream producer on a reliable
//! Redis queue, both through our supervisor (one variant per child).
//!
//! - Jobs are items of `<prefix>:queue`. A worker takes a gate permit, moves a job to
//!   `<prefix>:processing` (`LMOVE`), reports its start, works for the job time, records its
//!   effect (`SADD <prefix>:done`, idempotent) and acknowledges it (`LREM processing`),
//!   retrying effect and acknowledgement until both succeed, then reports it done.
//! - The producer pushes `s-<n>` at the stream rate; a push counts as produced once `WAIT 1`
//!   confirmed that a replica has it (so a lost job is the pool's doing, not asynchronous
//!   replication's). The backlog (`b-<n>`) is pushed by the driver before the child starts.
//!
//! Lines: `{"ready"}`, `{"s": job, "t"}` start, `{"d": job, "t"}` done, `{"p": job, "t"}`
//! produced, `{"pu": job}` push not confirmed, `{"e": msg, "t"}` error seen by a worker or the
//! producer, supervisor events `{"ev", "t", "d"}` (plus `WorkersPaused`/`WorkersResumed` from
//! the pool's hooks), `{"end"}`. Stdin: `stop-producing`, then `quit` (or EOF).

use super::child_args::ChildArgs;
use super::clock::now_ns;
use super::emit::{Sink, follow_job_driver};
use super::error::{Result, err};
use super::ours::{self, Exec, Ours};
use dramatiq_sentinel_supervisor::{
    BoxFuture, MasterConnection, Runtime, Supervisor, WorkerGate, Workers,
};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a worker waits when the queue is empty or a command failed.
const IDLE: Duration = Duration::from_millis(5);

/// What the driver asked for.
#[derive(Default)]
struct Control {
    producing: AtomicBool,
    stop: AtomicBool,
    running: AtomicUsize,
}

/// The pool's hooks: timestamps of pause completion and resume.
struct Reporter(Sink);

impl Workers for Reporter {
    fn pause(&self) -> BoxFuture<'_, ()> {
        self.0
            .json(&json!({ "ev": "WorkersPaused", "t": now_ns(), "d": "" }));
        Box::pin(async {})
    }

    fn resume(&self) -> BoxFuture<'_, ()> {
        self.0
            .json(&json!({ "ev": "WorkersResumed", "t": now_ns(), "d": "" }));
        Box::pin(async {})
    }
}

/// The queue's keys.
#[derive(Clone)]
struct Keys {
    queue: String,
    processing: String,
    done: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Self {
            queue: format!("{prefix}:queue"),
            processing: format!("{prefix}:processing"),
            done: format!("{prefix}:done"),
        }
    }
}

async fn query<T: redis::FromRedisValue>(
    conn: &mut MasterConnection,
    cmd: &redis::Cmd,
) -> Result<T, String> {
    cmd.query_async(conn).await.map_err(|e| e.to_string())
}

struct Worker {
    gate: WorkerGate,
    conn: MasterConnection,
    sink: Sink,
    ctl: Arc<Control>,
    keys: Keys,
    job_time: Duration,
    long_time: Duration,
}

impl Worker {
    fn error(&self, what: &str, e: &str) {
        self.sink
            .json(&json!({ "e": format!("{what}: {e}"), "t": now_ns() }));
    }

    async fn run<R: Runtime + Default>(mut self) {
        let k = self.keys.clone();
        while !self.ctl.stop.load(Ordering::SeqCst) {
            let Ok(permit) = self.gate.enter().await else {
                break;
            };
            let fetch = redis::cmd("LMOVE")
                .arg(&k.queue)
                .arg(&k.processing)
                .arg("RIGHT")
                .arg("LEFT")
                .clone();
            let job = match query::<Option<String>>(&mut self.conn, &fetch).await {
                Ok(Some(job)) => job,
                Ok(None) => {
                    drop(permit);
                    ours::sleep_until::<R>(Instant::now() + IDLE).await;
                    continue;
                }
                Err(e) => {
                    self.error("fetch", &e);
                    drop(permit);
                    ours::sleep_until::<R>(Instant::now() + IDLE).await;
                    continue;
                }
            };
            self.sink
                .line(&format!("{{\"s\":\"{job}\",\"t\":{}}}", now_ns()));
            let time = if job.starts_with("long-") {
                self.long_time
            } else {
                self.job_time
            };
            ours::sleep_until::<R>(Instant::now() + time).await;
            loop {
                let effect = redis::cmd("SADD").arg(&k.done).arg(&job).clone();
                let ack = redis::cmd("LREM")
                    .arg(&k.processing)
                    .arg(1)
                    .arg(&job)
                    .clone();
                let result = match query::<i64>(&mut self.conn, &effect).await {
                    Ok(_) => query::<i64>(&mut self.conn, &ack)
                        .await
                        .map(drop)
                        .map_err(|e| format!("ack: {e}")),
                    Err(e) => Err(format!("effect: {e}")),
                };
                match result {
                    Ok(()) => break,
                    Err(e) => {
                        self.error(&job, &e);
                        if self.ctl.stop.load(Ordering::SeqCst) {
                            break;
                        }
                        ours::sleep_until::<R>(Instant::now() + IDLE).await;
                    }
                }
            }
            self.sink
                .line(&format!("{{\"d\":\"{job}\",\"t\":{}}}", now_ns()));
            drop(permit);
        }
        self.ctl.running.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn produce<R: Runtime + Default>(
    mut conn: MasterConnection,
    sink: Sink,
    ctl: Arc<Control>,
    keys: Keys,
    rate: u32,
) {
    let interval = Duration::from_secs(1) / rate.max(1);
    let mut next = Instant::now();
    let mut n = 0_u64;
    while ctl.producing.load(Ordering::SeqCst) && !ctl.stop.load(Ordering::SeqCst) {
        n += 1;
        let job = format!("s-{n}");
        let pushed = query::<i64>(&mut conn, redis::cmd("LPUSH").arg(&keys.queue).arg(&job)).await;
        let confirmed = match pushed {
            Ok(_) => query::<i64>(&mut conn, redis::cmd("WAIT").arg(1).arg(2000)).await,
            Err(e) => Err(e),
        };
        match confirmed {
            Ok(replicas) if replicas >= 1 => {
                sink.line(&format!("{{\"p\":\"{job}\",\"t\":{}}}", now_ns()));
            }
            Ok(_) => sink.json(&json!({ "pu": job, "m": "WAIT 1: no replica" })),
            Err(e) => {
                sink.json(&json!({ "pu": job, "m": e }));
                sink.json(&json!({ "e": format!("produce: {e}"), "t": now_ns() }));
            }
        }
        next += interval;
        let now = Instant::now();
        if next < now {
            next = now;
        } else {
            ours::sleep_until::<R>(next).await;
        }
    }
    ctl.running.fetch_sub(1, Ordering::SeqCst);
}

async fn pool<R: Runtime + Default>(
    args: &ChildArgs,
    fencing: bool,
    sink: &Sink,
    ctl: &Arc<Control>,
) -> Result<()> {
    let (sentinels, service) = ours::target(args)?;
    let mut config = ours::config(&sentinels, &service, fencing, ours::DEFAULT_COMMAND_TIMEOUT)?;
    if args.drain {
        config = config.with_drain();
    }
    let builder =
        ours::report_events(Supervisor::<R>::builder(config), sink).workers(Reporter(sink.clone()));
    let sup = builder.start().await?;
    let keys = Keys::new(&args.prefix);
    let rt = R::default();
    ctl.running.store(args.workers + 1, Ordering::SeqCst);
    for _ in 0..args.workers {
        let w = Worker {
            gate: sup.gate(),
            conn: sup.master(),
            sink: sink.clone(),
            ctl: Arc::clone(ctl),
            keys: keys.clone(),
            job_time: args.job_time,
            long_time: args.long_time,
        };
        rt.spawn(Box::pin(w.run::<R>()));
    }
    rt.spawn(Box::pin(produce::<R>(
        sup.master().dedicated(),
        sink.clone(),
        Arc::clone(ctl),
        keys,
        args.rate,
    )));
    sink.json(&json!({ "ready": now_ns() }));
    sink.flush();
    while !ctl.stop.load(Ordering::SeqCst) {
        ours::sleep_until::<R>(Instant::now() + Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while ctl.running.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        ours::sleep_until::<R>(Instant::now() + Duration::from_millis(5)).await;
    }
    let _ = sup.shutdown().await;
    sink.json(&json!({ "end": now_ns() }));
    Ok(())
}

/// Runs the job child for the variant `args.client`.
pub(crate) fn run(args: &ChildArgs) -> Result<()> {
    let ours = Ours::from_id(&args.client).ok_or_else(|| {
        err(format!(
            "the job workload runs our variants, not `{}`",
            args.client
        ))
    })?;
    let sink = Sink::new();
    let ctl = Arc::new(Control::default());
    follow_job_driver(&ctl, |c| &c.producing, |c| &c.stop);
    let result = match ours.exec {
        Exec::Tokio => ours::on_tokio(pool::<dramatiq_sentinel_tokio::Tokio>(
            args,
            ours.fencing,
            &sink,
            &ctl,
        ))?,
        Exec::Smol => ours::on_smol(pool::<dramatiq_sentinel_smol::Smol>(
            args,
            ours.fencing,
            &sink,
            &ctl,
        )),
    };
    sink.close();
    result
}
