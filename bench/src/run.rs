//! One run of a scenario: a fresh deployment, the observer, the client under test as a child
//! process, the failover in the middle, the deployment settled again, and the accounts
//! against the final master.

use super::child::Child;
use super::clock::{ms_between, now_ns, sleep_until_ns};
use super::error::{Result, err};
use super::metrics::{self, JobFigures, WriterFigures};
use super::observer::{Observer, Seen};
use super::peers::Peers;
use super::scenario::Scenario;
use dramatiq_sentinel_harness::{Deployment, DeploymentOptions, NodeId, Role, dead_port};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

pub(crate) const SEC: u64 = 1_000_000_000;
/// The writer workload's failover comes this long after the client is ready.
const WRITER_TRIGGER: u64 = 5 * SEC;
/// The job workload's failover comes this long after the pool is ready (the backlog is then
/// about half done).
const JOBS_TRIGGER: u64 = 3 * SEC;
/// Every run lasts at least this long from the client's readiness.
pub(crate) const MIN_RUN: u64 = 15 * SEC;
/// After the deployment settled (new master agreed, old one demoted or dead), clients get
/// this long to show that they moved.
const AFTER_SETTLED: Duration = Duration::from_secs(2);
/// How long a frozen master stays frozen.
const FROZEN: Duration = Duration::from_secs(3);
/// The backlog of the job workload.
pub(crate) const BACKLOG: usize = 2000;
/// The job workload's pool, job time and stream rate.
pub(crate) const WORKERS: usize = 4;
pub(crate) const JOB_MS: u64 = 10;
pub(crate) const RATE: u32 = 100;
/// A job that sits in `processing` this long while the queue drains is requeued (a reaper).
const ORPHAN_AGE: Duration = Duration::from_secs(5);

/// What every run needs.
pub(crate) struct Ctx {
    /// This executable (the Rust children run it with `child ...`).
    pub(crate) exe: PathBuf,
    /// The peers, if any are benchmarked.
    pub(crate) peers: Option<Peers>,
    /// Where the children's stderr goes.
    pub(crate) logs: PathBuf,
    /// Where to keep every run's raw observations (`--raw`), if anywhere.
    pub(crate) raw: Option<PathBuf>,
    /// A counter for raw file names.
    pub(crate) runs: std::cell::Cell<usize>,
}

impl Ctx {
    /// Writes a run's raw observations (the child's lines, then the observer's signals and
    /// probe results, one JSON object per line) when `--raw` asked for it.
    pub(crate) fn keep_raw(&self, name: &str, t0: u64, lines: &[Value], seen: &Seen) {
        let Some(dir) = &self.raw else { return };
        let n = self.runs.get() + 1;
        self.runs.set(n);
        let mut text = format!("{}\n", serde_json::json!({ "run": name, "t0": t0 }));
        for v in lines {
            text.push_str(&v.to_string());
            text.push('\n');
        }
        for s in &seen.signals {
            let v = serde_json::json!({ "signal": s.channel, "payload": s.payload, "t": s.t });
            text.push_str(&v.to_string());
            text.push('\n');
        }
        for (t, node) in &seen.writable {
            let v = serde_json::json!({ "writable": node.to_string(), "t": t });
            text.push_str(&v.to_string());
            text.push('\n');
        }
        let path = dir.join(format!("{n:03}-{name}.jsonl"));
        if let Err(e) = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, text)) {
            eprintln!("failover-bench: cannot write {}: {e}", path.display());
        }
    }
}

/// The deployment every run starts: the harness defaults with down-after 1000 ms.
pub(crate) fn deployment() -> Result<Deployment> {
    Ok(Deployment::start(
        DeploymentOptions::default().down_after(Duration::from_millis(1000)),
    )?)
}

/// The 1-minute load average.
pub(crate) fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// A sentinel the client is cut off from: its real address and the dead port it leads to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CutOff {
    pub(crate) real: SocketAddr,
    pub(crate) dead: SocketAddr,
}

/// The sentinel that leads the failover of [`Scenario::LeaderUnheard`], and the client's cut-off
/// from it (`None` for the other scenarios).
fn cut_off(d: &Deployment, scenario: Scenario) -> Result<Option<CutOff>> {
    if scenario != Scenario::LeaderUnheard {
        return Ok(None);
    }
    let leader = d.sentinels()[0];
    Ok(Some(CutOff {
        real: d.addr(leader),
        dead: dead_port()?,
    }))
}

/// The arguments that point a child at `d` (through the dead port for a sentinel it is cut
/// off from: the configured address, and, for ours, the address the sentinels announce).
fn target_args(cmd: &mut Command, d: &Deployment, cut: Option<CutOff>) {
    let sentinels: Vec<String> = d
        .sentinel_addrs()
        .iter()
        .map(|s| match cut {
            Some(c) if *s == c.real => c.dead.to_string(),
            _ => s.to_string(),
        })
        .collect();
    cmd.arg("--sentinels")
        .arg(sentinels.join(","))
        .arg("--service")
        .arg(d.service_name())
        .arg("--prefix")
        .arg("bench");
}

impl Ctx {
    /// A Rust child: `<exe> child <role> --client <client> ...`.
    pub(crate) fn rust_child(&self, role: &str, client: &str, d: &Deployment) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("child").arg(role).arg("--client").arg(client);
        target_args(&mut cmd, d, None);
        cmd
    }

    fn writer_command(&self, client: &str, d: &Deployment, cut: Option<CutOff>) -> Result<Command> {
        if client.starts_with("ours-") || client == "redis-rs" {
            let mut cmd = Command::new(&self.exe);
            cmd.arg("child").arg("writer").arg("--client").arg(client);
            target_args(&mut cmd, d, cut);
            if let Some(c) = cut {
                cmd.arg("--nat").arg(format!("{}={}", c.real, c.dead));
            }
            return Ok(cmd);
        }
        let peers = self
            .peers
            .as_ref()
            .ok_or_else(|| err("the peers were not prepared"))?;
        let mut cmd = peers.writer(client)?;
        target_args(&mut cmd, d, cut);
        Ok(cmd)
    }
}

/// Starts the scenario on `old` (the master) and returns when it was triggered. A frozen master
/// is thawed before this returns.
pub(crate) fn trigger(d: &Deployment, scenario: Scenario, old: NodeId) -> Result<u64> {
    match scenario {
        Scenario::Graceful | Scenario::LeaderUnheard => {
            // The sentinel that takes `SENTINEL FAILOVER` leads the failover: the first one
            // (the one a leader-unheard client is cut off from) whenever it accepts.
            let sentinels = match scenario {
                Scenario::LeaderUnheard => vec![d.sentinels()[0]],
                _ => d.sentinels(),
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let mut refusals = Vec::new();
                for &s in &sentinels {
                    let t0 = now_ns();
                    let cmd = redis::cmd("SENTINEL")
                        .arg("FAILOVER")
                        .arg(d.service_name())
                        .clone();
                    match d.query::<String>(s, &cmd) {
                        Ok(_) => return Ok(t0),
                        Err(e) => refusals.push(format!("{s}: {e}")),
                    }
                }
                if Instant::now() >= deadline {
                    return Err(err(format!(
                        "no sentinel accepted SENTINEL FAILOVER: {}",
                        refusals.join("; ")
                    )));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Scenario::Kill => {
            let t0 = now_ns();
            d.kill(old);
            Ok(t0)
        }
        Scenario::Freeze => {
            let t0 = now_ns();
            d.freeze(old)?;
            std::thread::sleep(FROZEN);
            d.thaw(old)?;
            Ok(t0)
        }
    }
}

/// Waits until `not_before`, for the sentinels to agree on a master other than `old`, and for
/// `old` (if it runs) to be a replica; then [`AFTER_SETTLED`]. A second failover in between
/// (redis/redis#8607) is fine.
pub(crate) fn settle(d: &Deployment, old: NodeId, not_before: u64) -> Result<NodeId> {
    sleep_until_ns(not_before);
    let new = d.wait_for_new_master(old, Duration::from_secs(60))?;
    if d.is_running(old) {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            match d.role(old) {
                Ok(Role::Replica { .. }) => break,
                _ if Instant::now() >= deadline => {
                    return Err(err(format!("{old} was not demoted within 40 s")));
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    std::thread::sleep(AFTER_SETTLED);
    Ok(new)
}

/// Timings of the deployment itself in one run, from the trigger (ms).
#[derive(Debug, Clone, Default)]
pub(crate) struct Reference {
    /// Trigger to the first failover signal of any sentinel.
    pub(crate) signal_ms: Option<f64>,
    /// Which signal that was.
    pub(crate) signal: Option<String>,
    /// Trigger to the candidate accepting the probe's write.
    pub(crate) writable_ms: Option<f64>,
    /// Trigger to the first `+switch-master`.
    pub(crate) switch_ms: Option<f64>,
    /// Masters announced by `+switch-master` (2: a second failover).
    pub(crate) failovers: usize,
}

impl Reference {
    pub(crate) fn new(seen: &Seen, t0: u64) -> Self {
        let first = seen.first_signal(t0);
        Self {
            signal_ms: first.map(|s| ms_between(t0, s.t)),
            signal: first.map(|s| s.channel.clone()),
            writable_ms: seen.writable(t0).map(|t| ms_between(t0, t)),
            switch_ms: seen.first_switch(t0).map(|t| ms_between(t0, t)),
            failovers: seen.failovers(t0),
        }
    }
}

/// One writer run's results.
#[derive(Debug, Clone)]
pub(crate) struct WriterResult {
    pub(crate) figures: WriterFigures,
    /// Errors surfaced to the application.
    pub(crate) errors: usize,
    /// A few distinct error messages.
    pub(crate) error_samples: Vec<String>,
    /// Acknowledged writes per second over the run.
    pub(crate) rate: f64,
    /// First `+switch-master` to the first write on the new master (ms).
    pub(crate) switch_to_write_ms: Option<f64>,
    /// Candidate writable (probe) to the first write on the new master (ms).
    pub(crate) writable_to_write_ms: Option<f64>,
    pub(crate) reference: Reference,
    /// Our supervisor's switch as it reported it (`SwitchCompleted`), if ours.
    pub(crate) switch_event: Option<String>,
    /// Lost commands ours handed back after the failover (read back from the old master's
    /// backlog, `WritesLost`); `None` for the peers, and for ours when nothing was lost.
    pub(crate) handed_back: Option<usize>,
    /// 1-minute load average when the run started.
    pub(crate) load: f64,
}

pub(crate) fn events_after<'a>(
    lines: &'a [Value],
    kind: &'a str,
    t0: u64,
) -> impl Iterator<Item = (u64, String)> + 'a {
    lines.iter().filter_map(move |v| {
        let t = v.get("t")?.as_u64()?;
        (v.get("ev")?.as_str()? == kind && t >= t0).then(|| {
            (
                t,
                v.get("d").and_then(Value::as_str).unwrap_or("").to_owned(),
            )
        })
    })
}

pub(crate) fn samples(messages: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in messages {
        let short: String = m.chars().take(120).collect();
        if !out.contains(&short) {
            out.push(short);
            if out.len() == 3 {
                break;
            }
        }
    }
    out
}

/// One run of the writer workload through `client` in `scenario`.
pub(crate) fn writer_run(ctx: &Ctx, scenario: Scenario, client: &str) -> Result<WriterResult> {
    let load = load1();
    let d = deployment()?;
    let old = d.master()?;
    let list = "bench:list";
    let observer = Observer::start(&d, old, list)?;
    let cut = cut_off(&d, scenario)?;
    let mut child = Child::spawn(
        &format!("writer-{client}-{}", scenario.id()),
        ctx.writer_command(client, &d, cut)?,
        &ctx.logs,
    )?;
    let ready = child.wait_ready(Duration::from_secs(30))?;
    sleep_until_ns(ready + WRITER_TRIGGER);
    let t0 = trigger(&d, scenario, old)?;
    let settled = settle(&d, old, ready + MIN_RUN);
    let stop = now_ns();
    let lines = child.finish("stop", Duration::from_secs(40))?;
    let seen = observer.stop();
    ctx.keep_raw(
        &format!("writer-{}-{client}", scenario.id()),
        t0,
        &lines,
        &seen,
    );
    settled?;
    let master = d.wait_for_master(d.service_name(), Duration::from_secs(30))?;
    let final_list: Vec<String> = d.query(master, redis::cmd("LRANGE").arg(list).arg(0).arg(-1))?;

    let acks: Vec<(u64, u64)> = lines
        .iter()
        .filter_map(|v| Some((v.get("a")?.as_u64()?, v.get("t")?.as_u64()?)))
        .collect();
    let errors: Vec<String> = lines
        .iter()
        .filter(|v| v.get("e").is_some())
        .map(|v| v.get("m").and_then(Value::as_str).unwrap_or("?").to_owned())
        .collect();
    let reference = Reference::new(&seen, t0);
    let writable = seen.writable(t0);
    let figures = metrics::writer_figures(&acks, &final_list, stop, writable);
    let first = figures.first_new_write;
    let rate = match (acks.first(), acks.last()) {
        (Some(a), Some(b)) if b.1 > a.1 => acks.len() as f64 / (ms_between(a.1, b.1) / 1e3),
        _ => 0.0,
    };
    Ok(WriterResult {
        switch_to_write_ms: first
            .zip(seen.first_switch(t0))
            .map(|(f, s)| ms_between(s, f)),
        writable_to_write_ms: first.zip(writable).map(|(f, w)| ms_between(w, f)),
        figures,
        errors: errors.len(),
        error_samples: samples(errors.into_iter()),
        rate,
        reference,
        switch_event: events_after(&lines, "SwitchCompleted", t0)
            .next()
            .map(|(_, d)| d),
        handed_back: lines
            .iter()
            .filter(|v| v.get("ev").and_then(Value::as_str) == Some("WritesLost"))
            .filter_map(|v| v.get("handed_back")?.as_u64())
            .map(|n| n as usize)
            .reduce(|a, b| a + b),
        load,
    })
}

/// One job run's results.
#[derive(Debug, Clone)]
pub(crate) struct JobResult {
    pub(crate) figures: JobFigures,
    /// Orphans the reaper requeued while the queue drained.
    pub(crate) requeued: usize,
    /// Pushes whose confirmation failed (not counted as produced).
    pub(crate) uncertain: usize,
    /// Errors workers and the producer saw (and retried).
    pub(crate) errors: usize,
    /// A few distinct error messages.
    pub(crate) error_samples: Vec<String>,
    /// First failover signal (observer) to workers resumed (`SwitchCompleted`), ms.
    pub(crate) signal_to_resumed_ms: Option<f64>,
    /// Candidate writable (probe) to workers resumed, ms.
    pub(crate) writable_to_resumed_ms: Option<f64>,
    /// Candidate writable to the first job started after it (not the long one), ms.
    pub(crate) writable_to_new_job_ms: Option<f64>,
    pub(crate) reference: Reference,
    pub(crate) switch_event: Option<String>,
    pub(crate) load: f64,
}

/// Pushes the backlog to the master and waits until both replicas have it.
fn push_backlog(d: &Deployment, master: NodeId) -> Result<HashSet<String>> {
    let jobs: Vec<String> = (0..BACKLOG).map(|i| format!("b-{i}")).collect();
    let mut conn = d.connect(master)?;
    for chunk in jobs.chunks(500) {
        redis::cmd("LPUSH")
            .arg("bench:queue")
            .arg(chunk)
            .query::<i64>(&mut conn)?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let acked: i64 = redis::cmd("WAIT").arg(2).arg(1000).query(&mut conn)?;
        if acked >= 2 {
            break;
        }
        if Instant::now() >= deadline {
            return Err(err("the backlog did not reach both replicas"));
        }
    }
    Ok(jobs.into_iter().collect())
}

/// Waits until the queue and `processing` are empty on the (final) master, requeueing jobs
/// that sit in `processing` for [`ORPHAN_AGE`] (a fetch whose reply was lost, or a job whose
/// acknowledgement a failover lost), as a reliable queue's reaper does. Returns how many it
/// requeued.
fn drain(d: &Deployment) -> Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen: BTreeMap<String, Instant> = BTreeMap::new();
    let mut requeued = 0;
    loop {
        let observed = (|| -> Result<bool> {
            let master = d.master()?;
            let queued: usize = d.query(master, redis::cmd("LLEN").arg("bench:queue"))?;
            let processing: Vec<String> = d.query(
                master,
                redis::cmd("LRANGE").arg("bench:processing").arg(0).arg(-1),
            )?;
            if queued == 0 && processing.is_empty() {
                return Ok(true);
            }
            let now = Instant::now();
            seen.retain(|job, _| processing.contains(job));
            for job in processing {
                let since = *seen.entry(job.clone()).or_insert(now);
                if now.duration_since(since) >= ORPHAN_AGE {
                    let moved: i64 = d.query(
                        master,
                        redis::cmd("LREM").arg("bench:processing").arg(1).arg(&job),
                    )?;
                    if moved == 1 {
                        d.query::<i64>(master, redis::cmd("RPUSH").arg("bench:queue").arg(&job))?;
                        requeued += 1;
                    }
                    seen.remove(&job);
                }
            }
            Ok(false)
        })();
        if let Ok(true) = observed {
            return Ok(requeued);
        }
        if Instant::now() >= deadline {
            return Err(err(format!(
                "the queue did not drain within 120 s (last: {observed:?})"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A long job in flight at the failover: how long it works, and whether the supervisor drains
/// (waits for it) before resuming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LongJob {
    pub(crate) time: Duration,
    pub(crate) drain: bool,
}

/// The long jobs of a full run: 1 s and 30 s, each without and with the drain.
pub(crate) const LONG_JOBS: [LongJob; 4] = [
    LongJob {
        time: Duration::from_secs(1),
        drain: false,
    },
    LongJob {
        time: Duration::from_secs(1),
        drain: true,
    },
    LongJob {
        time: Duration::from_secs(30),
        drain: false,
    },
    LongJob {
        time: Duration::from_secs(30),
        drain: true,
    },
];

/// The name of the long job the driver queues just before the failover.
const LONG_JOB: &str = "long-0";

/// One run of the job workload on our `variant` in `scenario`; with `long`, a long job is
/// started (queued first, and its start awaited) right before the failover.
pub(crate) fn jobs_run(
    ctx: &Ctx,
    scenario: Scenario,
    variant: &str,
    long: Option<LongJob>,
) -> Result<JobResult> {
    let load = load1();
    let d = deployment()?;
    let old = d.master()?;
    let mut produced = push_backlog(&d, old)?;
    let observer = Observer::start(&d, old, "bench:probe")?;
    let mut cmd = ctx.rust_child("jobs", variant, &d);
    cmd.arg("--workers")
        .arg(WORKERS.to_string())
        .arg("--job-ms")
        .arg(JOB_MS.to_string())
        .arg("--rate")
        .arg(RATE.to_string());
    if let Some(l) = long {
        cmd.arg("--long-ms")
            .arg(l.time.as_millis().to_string())
            .arg("--drain")
            .arg(u8::from(l.drain).to_string());
    }
    let name = match long {
        Some(l) => format!(
            "jobs-{variant}-{}-long{}s{}",
            scenario.id(),
            l.time.as_secs(),
            if l.drain { "-drain" } else { "" }
        ),
        None => format!("jobs-{variant}-{}", scenario.id()),
    };
    let mut child = Child::spawn(&name, cmd, &ctx.logs)?;
    let ready = child.wait_ready(Duration::from_secs(30))?;
    sleep_until_ns(ready + JOBS_TRIGGER);
    if long.is_some() {
        // Next in line (the workers take from the right), then wait until a worker runs it.
        let mut conn = d.connect(old)?;
        redis::cmd("RPUSH")
            .arg("bench:queue")
            .arg(LONG_JOB)
            .query::<i64>(&mut conn)?;
        redis::cmd("WAIT")
            .arg(2)
            .arg(1000)
            .query::<i64>(&mut conn)?;
        produced.insert(LONG_JOB.to_owned());
        let deadline = Instant::now() + Duration::from_secs(30);
        while !child.with_lines(|lines| {
            lines
                .iter()
                .any(|v| v.get("s").and_then(Value::as_str) == Some(LONG_JOB))
        }) {
            if Instant::now() >= deadline {
                return Err(err("the long job did not start within 30 s"));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let t0 = trigger(&d, scenario, old)?;
    // The run lasts until the long job is done, at least.
    let min_run = long.map_or(MIN_RUN, |l| {
        MIN_RUN.max(now_ns().saturating_sub(ready) + l.time.as_nanos() as u64 + 5 * SEC)
    });
    let settled = settle(&d, old, ready + min_run);
    child.send("stop-producing");
    let producing_until = now_ns();
    settled?;
    let requeued = drain(&d);
    let lines = child.finish("quit", Duration::from_secs(30))?;
    let seen = observer.stop();
    ctx.keep_raw(
        &format!("jobs-{}-{variant}", scenario.id()),
        t0,
        &lines,
        &seen,
    );
    let requeued = requeued?;
    let master = d.wait_for_master(d.service_name(), Duration::from_secs(30))?;
    let done: HashSet<String> = d.query(master, redis::cmd("SMEMBERS").arg("bench:done"))?;

    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    produced.extend(lines.iter().filter_map(|v| text(v, "p")));
    let starts: Vec<(String, u64)> = lines
        .iter()
        .filter_map(|v| Some((text(v, "s")?, v.get("t")?.as_u64()?)))
        .collect();
    let figures = metrics::job_figures(&produced, &starts, &done, producing_until);
    let resumed = events_after(&lines, "SwitchCompleted", t0).next();
    let first = seen.first_signal(t0).map(|s| s.t);
    let writable = seen.writable(t0);
    Ok(JobResult {
        figures,
        requeued,
        uncertain: lines.iter().filter(|v| v.get("pu").is_some()).count(),
        errors: lines.iter().filter(|v| v.get("e").is_some()).count(),
        error_samples: samples(lines.iter().filter_map(|v| text(v, "e"))),
        writable_to_new_job_ms: writable.and_then(|w| {
            starts
                .iter()
                .filter(|(j, t)| *t >= w && j != LONG_JOB)
                .map(|(_, t)| *t)
                .min()
                .map(|t| ms_between(w, t))
        }),
        signal_to_resumed_ms: resumed
            .as_ref()
            .zip(first)
            .map(|((r, _), s)| ms_between(s, *r)),
        writable_to_resumed_ms: resumed
            .as_ref()
            .zip(writable)
            .map(|((r, _), w)| ms_between(w, *r)),
        reference: Reference::new(&seen, t0),
        switch_event: resumed.map(|(_, d)| d),
        load,
    })
}
