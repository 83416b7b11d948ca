//! Settling the accounts after the stop: the workers finish the queue (a reaper requeues jobs
//! whose fetch failed after the server had moved them), then every acknowledged job is looked
//! up in Redis: done, still queued or processing (unfinished), or nowhere (lost).

use super::producer::Produced;
use crate::output::{Out, human};
use dramatiq_sentinel_harness::pool::{DONE, Ledger, PROCESSING, QUEUE};
use dramatiq_sentinel_harness::runtime::{TestRuntime, sleep};
use dramatiq_sentinel_supervisor::{MasterConnection, redis};
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};
use tracing::info;

/// How long a job of ours must sit unstarted in `processing` before it is requeued: longer than
/// any worker takes from its fetch to recording the start.
const ORPHAN_AGE: Duration = Duration::from_secs(5);
/// Bound of one Redis command of the accounting.
const QUERY_LIMIT: Duration = Duration::from_secs(10);
/// Ids asked per `SMISMEMBER`.
const CHUNK: usize = 500;

/// The accounts of one drill.
#[derive(Debug, Default)]
pub(crate) struct Accounts {
    /// Jobs whose push was acknowledged.
    pub(crate) produced: usize,
    /// Acknowledged jobs recorded as done.
    pub(crate) done: usize,
    /// Acknowledged jobs neither done, queued nor processing.
    pub(crate) lost: Vec<String>,
    /// Acknowledged jobs still queued or processing when the drain ended.
    pub(crate) unfinished: usize,
    /// Pushes that failed or were not confirmed (not counted as produced).
    pub(crate) uncertain: usize,
    /// Of those, how many ran anyway.
    pub(crate) uncertain_done: usize,
    /// Orphans the reaper requeued.
    pub(crate) requeued: usize,
    /// Jobs of ours started more than once, with how many times.
    pub(crate) run_twice: Vec<(String, usize)>,
    /// How long the drain took, or why it did not finish.
    pub(crate) drained: Option<Result<Duration, String>>,
    /// Why Redis could not be asked at the end, if it could not.
    pub(crate) unchecked: Option<String>,
}

/// Runs `future` for at most `limit` on the drill's runtime.
async fn timed<R: TestRuntime, T>(
    limit: Duration,
    future: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    futures_lite::future::or(async { future.await.map_err(|e| e.to_string()) }, async {
        sleep::<R>(limit).await;
        Err(format!("no answer within {}", human(limit)))
    })
    .await
}

/// Sends one command through the master connection, bounded by [`QUERY_LIMIT`].
fn query<R: TestRuntime, T: redis::FromRedisValue>(
    rt: &R,
    conn: &MasterConnection,
    cmd: &redis::Cmd,
) -> Result<T, String> {
    let mut conn = conn.clone();
    rt.block_on(timed::<R, T>(QUERY_LIMIT, cmd.query_async(&mut conn)))
}

fn list<R: TestRuntime>(
    rt: &R,
    conn: &MasterConnection,
    key: &str,
    produced: &Produced,
) -> Result<Vec<String>, String> {
    let all: Vec<String> = query(rt, conn, redis::cmd("LRANGE").arg(key).arg(0).arg(-1))?;
    Ok(all.into_iter().filter(|j| produced.is_ours(j)).collect())
}

/// The accounting of one drill, on the drill's runtime `rt`.
pub(crate) struct Settle<'a, R> {
    pub(crate) rt: &'a R,
    pub(crate) conn: &'a MasterConnection,
    pub(crate) ledger: &'a Ledger,
    pub(crate) produced: &'a Produced,
    pub(crate) out: &'a Out,
}

impl<R: TestRuntime> Settle<'_, R> {
    /// Waits until the producer stopped and no job of ours is queued or processing (at most
    /// `timeout`), then checks every job.
    pub(crate) fn run(&self, timeout: Duration) -> Accounts {
        let mut accounts = Accounts::default();
        let started = Instant::now();
        let deadline = started + timeout;
        while !self.produced.finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.out.now(
            "draining",
            &format!(
                "producer stopped after {} jobs; workers finish the queue (at most {})",
                self.produced.acked_count(),
                human(timeout)
            ),
            json!({ "type": "draining", "timeout_s": timeout.as_secs_f64() }),
        );
        accounts.drained = Some(self.drain(deadline, &mut accounts.requeued));
        match &accounts.drained {
            Some(Ok(took)) => self.out.now(
                "drained",
                &format!(
                    "no job of this run queued or processing; {} orphans requeued ({})",
                    accounts.requeued,
                    human(*took)
                ),
                json!({ "type": "drained", "requeued": accounts.requeued, "took_ms": crate::output::ms(*took) }),
            ),
            Some(Err(e)) => self.out.now(
                "not drained",
                e,
                json!({ "type": "not-drained", "detail": e }),
            ),
            None => {}
        }
        if let Err(e) = self.check(&mut accounts) {
            accounts.unchecked = Some(e);
        }
        accounts.run_twice = self
            .ledger
            .started_more_than_once()
            .into_iter()
            .filter(|(j, _)| self.produced.is_ours(j))
            .collect();
        accounts
    }

    /// Polls until no job of ours is queued or processing; requeues orphans. Returns how long
    /// it took, or the last observation.
    fn drain(&self, deadline: Instant, requeued: &mut usize) -> Result<Duration, String> {
        let start = Instant::now();
        let mut orphans: HashMap<String, Instant> = HashMap::new();
        loop {
            let last = match self.snapshot() {
                Ok((queued, processing)) if queued.is_empty() && processing.is_empty() => {
                    return Ok(start.elapsed());
                }
                Ok((queued, processing)) => {
                    if queued.is_empty() {
                        *requeued += self.reap(&processing, &mut orphans)?;
                    }
                    format!(
                        "{} jobs still queued, {} processing",
                        queued.len(),
                        processing.len()
                    )
                }
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(format!("drain timed out: {last}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn snapshot(&self) -> Result<(Vec<String>, Vec<String>), String> {
        let queued = list(self.rt, self.conn, QUEUE, self.produced)?;
        let processing = list(self.rt, self.conn, PROCESSING, self.produced)?;
        Ok((queued, processing))
    }

    /// Requeues jobs that sat unstarted in `processing` for [`ORPHAN_AGE`]: a fetch failed
    /// after the server had moved the job (the reliable-queue reaper).
    fn reap(
        &self,
        processing: &[String],
        orphans: &mut HashMap<String, Instant>,
    ) -> Result<usize, String> {
        let now = Instant::now();
        orphans.retain(|j, _| processing.contains(j) && !self.ledger.started(j));
        let mut requeued = 0;
        for job in processing.iter().filter(|j| !self.ledger.started(j)) {
            let seen = *orphans.entry(job.clone()).or_insert(now);
            if now.duration_since(seen) < ORPHAN_AGE {
                continue;
            }
            let removed: i64 = query(
                self.rt,
                self.conn,
                redis::cmd("LREM").arg(PROCESSING).arg(1).arg(job),
            )?;
            if removed == 1 {
                query::<R, i64>(self.rt, self.conn, redis::cmd("LPUSH").arg(QUEUE).arg(job))?;
                info!(job = %job, "requeued an orphan: its fetch failed after the server moved it");
                requeued += 1;
            }
            orphans.remove(job);
        }
        Ok(requeued)
    }

    /// Looks every acknowledged and uncertain job up in `done`, the queue and `processing`.
    fn check(&self, accounts: &mut Accounts) -> Result<(), String> {
        let acked = self.produced.acked();
        let uncertain = self.produced.uncertain();
        accounts.produced = acked.len();
        accounts.uncertain = uncertain.len();
        let done = self.done(&acked)?;
        accounts.done = done.len();
        accounts.uncertain_done = self.done(&uncertain)?.len();
        let (queued, processing) = self.snapshot()?;
        let pending: BTreeSet<&String> = queued.iter().chain(&processing).collect();
        for job in acked.iter().filter(|j| !done.contains(*j)) {
            if pending.contains(job) {
                accounts.unfinished += 1;
            } else {
                accounts.lost.push(job.clone());
            }
        }
        Ok(())
    }

    /// The jobs among `jobs` recorded in `done`.
    fn done(&self, jobs: &[String]) -> Result<BTreeSet<String>, String> {
        let mut done = BTreeSet::new();
        for chunk in jobs.chunks(CHUNK) {
            let member: Vec<bool> = query(
                self.rt,
                self.conn,
                redis::cmd("SMISMEMBER").arg(DONE).arg(chunk),
            )?;
            done.extend(
                chunk
                    .iter()
                    .zip(member)
                    .filter(|(_, m)| *m)
                    .map(|(j, _)| j.clone()),
            );
        }
        Ok(done)
    }
}
