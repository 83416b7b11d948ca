//! Per-command overhead: our `MasterConnection` against a plain `redis` multiplexed connection
//! to the same master, in one process and one run, on a two-thread tokio runtime. Cases: 1, 16
//! and 64 concurrent tasks sending `INCR`, and 64 tasks sending pipelines of 16 `INCR`s. Each
//! round runs every case for a fixed time on each client (alternating which goes first), and
//! the report gives the median of the rounds and the ratio ours / plain.

use super::error::{Result, err};
use super::metrics::stats;
use super::ours::{DEFAULT_COMMAND_TIMEOUT, on_tokio};
use super::run::deployment;
use dramatiq_sentinel_tokio::Supervisor;
use redis::aio::ConnectionLike;
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
pub(crate) const CASES: [Case; 4] = [
    Case {
        tasks: 1,
        pipeline: 1,
    },
    Case {
        tasks: 16,
        pipeline: 1,
    },
    Case {
        tasks: 64,
        pipeline: 1,
    },
    Case {
        tasks: 64,
        pipeline: 16,
    },
];

impl Case {
    /// The label in the table.
    pub(crate) fn label(self) -> String {
        if self.pipeline == 1 {
            format!(
                "{} task{}, `INCR`",
                self.tasks,
                if self.tasks == 1 { "" } else { "s" }
            )
        } else {
            format!(
                "{} tasks, pipelines of {} `INCR`",
                self.tasks, self.pipeline
            )
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
}

/// Every round of one case, for both clients.
#[derive(Debug, Clone)]
pub(crate) struct CaseResult {
    pub(crate) case: Case,
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
}

/// The whole measurement.
#[derive(Debug, Clone)]
pub(crate) struct Commands {
    pub(crate) rounds: usize,
    pub(crate) round_time: Duration,
    pub(crate) cases: Vec<CaseResult>,
}

/// Runs `rounds` rounds of every case, each client for `round_time` per case and round.
pub(crate) fn measure(rounds: usize, round_time: Duration) -> Result<Commands> {
    let d = deployment()?;
    let master = d.addr(d.master()?);
    let sentinels: Vec<String> = d.sentinel_addrs().iter().map(ToString::to_string).collect();
    let config = super::ours::config(&sentinels, d.service_name(), true, DEFAULT_COMMAND_TIMEOUT)?;
    on_tokio(async move {
        let sup = Supervisor::start(config).await?;
        let plain = redis::Client::open(format!("redis://{master}/"))?
            .get_multiplexed_async_connection()
            .await?;
        let ours = sup.master();
        let mut results: Vec<CaseResult> = CASES
            .iter()
            .map(|&case| CaseResult {
                case,
                ours: Vec::new(),
                plain: Vec::new(),
            })
            .collect();
        // Warm-up: both connections open, the runtime's threads busy once.
        run_case(ours.clone(), CASES[2], Duration::from_millis(300)).await?;
        run_case(plain.clone(), CASES[2], Duration::from_millis(300)).await?;
        for round in 0..rounds {
            for r in &mut results {
                let ours_first = round % 2 == 0;
                for first in [ours_first, !ours_first] {
                    if first {
                        r.ours
                            .push(run_case(ours.clone(), r.case, round_time).await?);
                    } else {
                        r.plain
                            .push(run_case(plain.clone(), r.case, round_time).await?);
                    }
                }
            }
            eprint!(".");
        }
        sup.shutdown().await?;
        Ok(Commands {
            rounds,
            round_time,
            cases: results,
        })
    })?
}

/// `case.tasks` tasks calling `INCR` (or pipelines of them) on clones of `conn` for `time`.
async fn run_case<C>(conn: C, case: Case, time: Duration) -> Result<Round>
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
    let started = Instant::now();
    let tasks: Vec<_> = (0..case.tasks)
        .map(|_| {
            let (mut conn, stop) = (conn.clone(), Arc::clone(&stop));
            let (pipe, single) = (pipe.clone(), single.clone());
            tokio::spawn(async move {
                let mut latencies: Vec<u32> = Vec::with_capacity(1 << 16);
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
    tokio::time::sleep(time).await;
    stop.store(true, Ordering::Relaxed);
    let mut all: Vec<u32> = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    if all.is_empty() {
        return Err(err("no call completed"));
    }
    all.sort_unstable();
    let at = |q: f64| f64::from(all[((all.len() - 1) as f64 * q).round() as usize]);
    Ok(Round {
        ops: (all.len() * case.pipeline) as f64 / elapsed,
        p50_us: at(0.50),
        p99_us: at(0.99),
    })
}
