//! The producer: pushes jobs with unique ids to the queue at a steady rate through the
//! supervisor's master connection, retrying each push until it is acknowledged.
//!
//! A push is idempotent (a script adds the id to the set `produced` and pushes it only if it
//! was new), so retrying a push whose reply was lost never queues a job twice.

use crate::sync::lock;
use dramatiq_sentinel_harness::pool;
use dramatiq_sentinel_harness::runtime::{TestRuntime, sleep};
use dramatiq_sentinel_supervisor::{MasterConnection, redis};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::debug;

/// How far behind schedule the producer may fall before it stops catching up (no bursts
/// after a long hold).
const MAX_LAG: Duration = Duration::from_secs(1);
/// Delay before retrying a failed push.
const RETRY: Duration = Duration::from_millis(50);
/// What the producer did.
#[derive(Debug, Default)]
pub(crate) struct Produced {
    /// Ids of this run: `<prefix>-<n>`.
    pub(crate) prefix: String,
    /// Numbers of the jobs whose push was acknowledged (and, when durable, replicated).
    acked: Mutex<Vec<u64>>,
    /// Numbers of the jobs whose push was still failing when the producer stopped: they may or
    /// may not exist.
    uncertain: Mutex<Vec<u64>>,
    /// Failed push attempts (retried).
    retries: AtomicUsize,
    stop: AtomicBool,
    finished: AtomicBool,
}

impl Produced {
    /// The id of job `n`.
    pub(crate) fn id(&self, n: u64) -> String {
        format!("{}-{n}", self.prefix)
    }

    /// Whether `job` is one of this run's ids.
    pub(crate) fn is_ours(&self, job: &str) -> bool {
        job.strip_prefix(&self.prefix)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|n| n.parse::<u64>().is_ok())
    }

    /// Ids of the acknowledged jobs.
    pub(crate) fn acked(&self) -> Vec<String> {
        lock(&self.acked).iter().map(|&n| self.id(n)).collect()
    }

    /// Number of acknowledged jobs.
    pub(crate) fn acked_count(&self) -> usize {
        lock(&self.acked).len()
    }

    /// Ids of the jobs whose push is uncertain.
    pub(crate) fn uncertain(&self) -> Vec<String> {
        lock(&self.uncertain).iter().map(|&n| self.id(n)).collect()
    }

    /// Failed push attempts so far (each was retried).
    pub(crate) fn retries(&self) -> usize {
        self.retries.load(Ordering::SeqCst)
    }

    /// Asks the producer to stop after its current push.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Whether the producer has stopped.
    pub(crate) fn finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }
}

/// Pushes one job unless it was pushed before; with `durable`, also waits for one replica to
/// have it.
async fn push(conn: &mut MasterConnection, job: &str, durable: bool) -> Result<(), String> {
    pool::push(job)
        .query_async::<i64>(conn)
        .await
        .map_err(|e| format!("push: {e}"))?;
    if durable {
        let replicas: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(2000)
            .query_async(conn)
            .await
            .map_err(|e| format!("WAIT: {e}"))?;
        if replicas < 1 {
            return Err("WAIT 1: no replica confirmed the push".to_owned());
        }
    }
    Ok(())
}

/// Produces `rate` jobs per second until asked to stop. `conn` should be a dedicated handle
/// when `durable` (`WAIT` blocks its connection).
pub(crate) async fn produce<R: TestRuntime>(
    state: Arc<Produced>,
    mut conn: MasterConnection,
    rate: f64,
    durable: bool,
) {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut next = Instant::now();
    let mut n = 0u64;
    'jobs: while !state.stop.load(Ordering::SeqCst) {
        let job = state.id(n);
        while let Err(e) = push(&mut conn, &job, durable).await {
            state.retries.fetch_add(1, Ordering::SeqCst);
            if state.stop.load(Ordering::SeqCst) {
                debug!(job = %job, error = %e, "stopping with a push unacknowledged: uncertain");
                lock(&state.uncertain).push(n);
                break 'jobs;
            }
            debug!(job = %job, error = %e, "push not acknowledged; retrying");
            sleep::<R>(RETRY).await;
        }
        lock(&state.acked).push(n);
        n += 1;
        next += interval;
        let now = Instant::now();
        if now.saturating_duration_since(next) > MAX_LAG {
            debug!(
                behind_ms = (now - next).as_millis(),
                "producer behind schedule; skipping ahead"
            );
            next = now;
        }
        sleep::<R>(next.saturating_duration_since(now)).await;
    }
    state.finished.store(true, Ordering::SeqCst);
}

impl Produced {
    /// A producer state for ids `<prefix>-<n>`.
    pub(crate) fn new(prefix: String) -> Self {
        Self {
            prefix,
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_recognised() {
        let p = Produced::new("drill-abc".into());
        assert_eq!(p.id(7), "drill-abc-7");
        assert!(p.is_ours("drill-abc-7"));
        assert!(!p.is_ours("drill-abcd-7"));
        assert!(!p.is_ours("drill-abc-x"));
        assert!(!p.is_ours("before-7"));
    }
}
