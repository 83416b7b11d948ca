//! Children for the overhead figures: an idle supervisor (or a bare runtime, the baseline)
//! whose CPU time and memory the driver reads from `/proc`, and the worker-gate
//! micro-benchmark.

use super::child_args::ChildArgs;
use super::clock::now_ns;
use super::emit::{Sink, watch_stdin};
use super::error::{Result, err};
use super::ours::{self, Exec, Ours};
use dramatiq_sentinel_supervisor::{Runtime, Supervisor, WorkerGate};
use serde_json::json;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;

/// A receiver that gets a value (or closes) when stdin says `stop` or closes: waiting on it
/// costs no wake-ups, so the idle figures are the supervisor's own.
fn stop_on_stdin() -> smol::channel::Receiver<()> {
    let (tx, rx) = smol::channel::bounded(1);
    let on_end = tx.clone();
    watch_stdin(
        move |line| {
            if line == "stop" {
                let _ = tx.try_send(());
            }
        },
        move || {
            let _ = on_end.try_send(());
        },
    );
    rx
}

async fn idle<R: Runtime + Default>(
    args: &ChildArgs,
    supervised: bool,
    sink: &Sink,
    stop: smol::channel::Receiver<()>,
) -> Result<()> {
    let sup = if supervised {
        let (sentinels, service) = ours::target(args)?;
        let config = ours::config(&sentinels, &service, true, ours::DEFAULT_COMMAND_TIMEOUT)?;
        Some(Supervisor::<R>::builder(config).start().await?)
    } else {
        None
    };
    sink.json(&json!({ "ready": now_ns() }));
    // No flushing thread while idle.
    sink.close();
    let _ = stop.recv().await;
    if let Some(sup) = sup {
        let _ = sup.shutdown().await;
    }
    Ok(())
}

/// The idle child: `--client ours-tokio|ours-smol|baseline-tokio|baseline-smol`.
pub(crate) fn run_idle(args: &ChildArgs) -> Result<()> {
    let sink = Sink::new();
    let stop = stop_on_stdin();
    let (exec, supervised) = match args.client.as_str() {
        "baseline-tokio" => (Exec::Tokio, false),
        "baseline-smol" => (Exec::Smol, false),
        id => match Ours::from_id(id) {
            Some(o) => (o.exec, true),
            None => return Err(err(format!("unknown idle client `{id}`"))),
        },
    };
    let result = match exec {
        Exec::Tokio => ours::on_tokio(idle::<dramatiq_sentinel_tokio::Tokio>(
            args, supervised, &sink, stop,
        ))?,
        Exec::Smol => ours::on_smol(idle::<dramatiq_sentinel_smol::Smol>(
            args, supervised, &sink, stop,
        )),
    };
    sink.close();
    result
}

/// What hands out the permits.
#[derive(Clone)]
enum Permits {
    Gate(WorkerGate),
    Semaphore(Arc<Semaphore>),
}

impl Permits {
    async fn take_and_return(&self, n: u64) {
        match self {
            Permits::Gate(g) => {
                for _ in 0..n {
                    if let Ok(permit) = g.enter().await {
                        black_box(&permit);
                    }
                }
            }
            Permits::Semaphore(s) => {
                for _ in 0..n {
                    if let Ok(permit) = s.acquire().await {
                        black_box(&permit);
                    }
                }
            }
        }
    }

    /// Nanoseconds per permit: `tasks` tasks each take and return `n / tasks` permits.
    async fn ns_per_permit(&self, n: u64, tasks: u64) -> f64 {
        let each = n / tasks;
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let me = self.clone();
                tokio::spawn(async move { me.take_and_return(each).await })
            })
            .collect();
        for h in handles {
            let _ = h.await;
        }
        start.elapsed().as_nanos() as f64 / (each * tasks) as f64
    }
}

async fn gate_bench(args: &ChildArgs, sink: &Sink) -> Result<()> {
    let (sentinels, service) = ours::target(args)?;
    let config = ours::config(&sentinels, &service, true, ours::DEFAULT_COMMAND_TIMEOUT)?;
    let sup = dramatiq_sentinel_tokio::Supervisor::start(config).await?;
    let gate = Permits::Gate(sup.gate());
    let sem = Permits::Semaphore(Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)));
    let n = args.iterations.max(1000);
    let (mut g1, mut s1, mut g4, mut s4) = (vec![], vec![], vec![], vec![]);
    for _round in 0..5 {
        g1.push(gate.ns_per_permit(n, 1).await);
        s1.push(sem.ns_per_permit(n, 1).await);
        g4.push(gate.ns_per_permit(n, 4).await);
        s4.push(sem.ns_per_permit(n, 4).await);
    }
    sink.json(&json!({ "gate1": g1, "sem1": s1, "gate4": g4, "sem4": s4, "iterations": n }));
    let _ = sup.shutdown().await;
    Ok(())
}

/// The worker-gate micro-benchmark child (tokio): `WorkerGate::enter` + drop against
/// `tokio::sync::Semaphore::acquire` + drop, from one task and from four tasks at once.
pub(crate) fn run_gate(args: &ChildArgs) -> Result<()> {
    let sink = Sink::new();
    let result = ours::on_tokio(gate_bench(args, &sink))?;
    sink.close();
    result
}
