//! One drill on one runtime: supervisor, pool, producer, (story,) stop, accounts, summary.

use super::account::Settle;
use super::args::{Act, DRILL_PASSWORD_ENV, Options};
use super::error::DrillError;
use super::producer::{Produced, produce};
use super::stop::Stop;
use super::story::{Halt, Story};
use super::summary::Summary;
use super::timeline::Timeline;
use crate::output::{Out, human};
use dramatiq_sentinel_harness::Deployment;
use dramatiq_sentinel_harness::config_for;
use dramatiq_sentinel_harness::pool::{Pool, PoolOptions, attach};
use dramatiq_sentinel_harness::runtime::{TestRuntime, spawn};
use dramatiq_sentinel_supervisor::{Config, Supervisor};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::info;

/// How long a worker sleeps when the queue is empty.
const IDLE: Duration = Duration::from_millis(10);

/// The supervisor's configuration: the local deployment's (with the `fail` policy on a pause
/// timeout, so the deployment is cleaned up; with an `unheard` act, a listener backoff longer
/// than the act, so the restarted leader stays unheard) or the one the command line describes,
/// then every setting of the command line through `ConfigBuilder::set`.
pub(crate) fn config(opts: &Options, local: Option<&Deployment>) -> Result<Config, DrillError> {
    let builder = match local {
        Some(d) if opts.story.contains(&Act::Unheard) => opts.target.settings.apply(
            config_for(d)
                .set("on_pause_timeout", "fail")?
                .min_backoff(Duration::from_secs(20))
                .max_backoff(Duration::from_secs(40)),
            &[],
        )?,
        Some(d) => opts
            .target
            .settings
            .apply(config_for(d).set("on_pause_timeout", "fail")?, &[])?,
        None => opts.target.builder(&[], DRILL_PASSWORD_ENV)?,
    };
    Ok(builder.build()?)
}

/// Ids of this run: unique per process and millisecond.
fn prefix() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    format!("drill-{ms:x}-{:x}", std::process::id())
}

/// What the drill needs from its process: its output, the stop channel, the deployment.
pub(crate) struct Context<'a> {
    pub(crate) opts: &'a Options,
    pub(crate) out: &'a Out,
    pub(crate) stop_tx: Sender<Stop>,
    pub(crate) stop_rx: Receiver<Stop>,
    pub(crate) local: Option<&'a Deployment>,
}

/// How a drill that printed its summary ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ended {
    /// The exit status the summary implies.
    pub(crate) code: u8,
    /// Whether a signal stopped it.
    pub(crate) interrupted: bool,
}

/// Runs the drill on `rt`; returns how it ended.
pub(crate) fn run<R: TestRuntime>(rt: R, cx: Context<'_>) -> Result<Ended, DrillError> {
    let Context {
        opts,
        out,
        stop_tx,
        stop_rx,
        local,
    } = cx;
    let started = Instant::now();
    let config = config(opts, local)?;
    let durable = opts.durable();
    out.now(
        "drill",
        &format!(
            "{} workers on {}, {} ms jobs, {} jobs/s, writes {}; service `{}` via {}",
            opts.concurrency,
            R::NAME,
            opts.job_time.as_millis(),
            opts.rate,
            if durable { "replicated (WAIT 1)" } else { "not waited for" },
            config.service_name(),
            config
                .sentinels()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        json!({ "type": "drill", "runtime": R::NAME, "concurrency": opts.concurrency,
                "job_ms": opts.job_time.as_millis() as u64, "rate": opts.rate, "durable": durable,
                "service": config.service_name(),
                "sentinels": config.sentinels().iter().map(ToString::to_string).collect::<Vec<_>>() }),
    );

    let timeline = Timeline::start(out.clone(), opts.failovers, stop_tx.clone());
    let ledger = Pool::ledger();
    let builder = timeline.attach(attach(&ledger, Supervisor::<R::Rt>::builder(config)));
    let before_exit = out.clone();
    let builder = builder.before_exit(move |code| {
        before_exit.now(
            "exit",
            &format!("workers did not pause in time: the supervisor exits the process with {code}"),
            json!({ "type": "exit", "code": code }),
        );
    });
    let sup = rt.block_on(builder.start())?;
    if let Ok(status) = rt.block_on(sup.status()) {
        out.now(
            "status",
            &format!(
                "master {}, {} replicas, {} other sentinels; {}",
                status.master.addr,
                status.replicas.len(),
                status.sentinels.len(),
                status.quorum.message
            ),
            json!({ "type": "status", "master": status.master.addr.to_string(),
                    "replicas": status.replicas.iter().map(|r| r.addr.to_string()).collect::<Vec<_>>(),
                    "sentinels": status.sentinels.len() + 1, "quorum": status.quorum.message }),
        );
    }

    let pool_options = PoolOptions {
        workers: opts.concurrency,
        job_time: opts.job_time,
        durable,
        idle: IDLE,
        ..PoolOptions::default()
    };
    let pool = Pool::start(&rt, Arc::clone(&ledger), &sup, pool_options);
    let produced = Arc::new(Produced::new(prefix()));
    {
        let produced = Arc::clone(&produced);
        let conn = sup.master().dedicated();
        let watched = sup.clone();
        let tx = stop_tx.clone();
        let rate = opts.rate;
        rt.block_on(async move {
            spawn::<R>(produce::<R>(produced, conn, rate, durable));
            spawn::<R>(async move {
                let _ = tx.send(Stop::Supervisor(watched.wait().await));
            });
        });
    }

    let stopping = AtomicBool::new(false);
    let reason = std::thread::scope(|scope| {
        if let Some(d) = local {
            let story_tx = stop_tx.clone();
            let (stopping, sup, ledger) = (&stopping, &sup, &ledger);
            scope.spawn(move || {
                let master = || sup.current_master();
                let started = || ledger.started_count();
                let story = Story {
                    d,
                    acts: &opts.story,
                    interval: opts.act_interval,
                    out,
                    stopping,
                    supervisor_master: &master,
                    started: &started,
                    workers: opts.concurrency,
                };
                match story.play() {
                    Ok(()) => drop(story_tx.send(Stop::StoryDone)),
                    Err(Halt::Failed(e)) => drop(story_tx.send(Stop::StoryFailed(e))),
                    Err(Halt::Interrupted) => {}
                }
            });
        }
        let reason = wait_for_stop(&stop_rx, opts, out, &produced, &ledger, started);
        stopping.store(true, Ordering::SeqCst);
        produced.stop();
        out.now(
            "stop",
            &reason.describe(),
            json!({ "type": "stop", "reason": reason.describe() }),
        );
        reason
    });
    info!(reason = %reason.describe(), "settling the accounts");

    let drain = match &reason {
        Stop::Supervisor(_) => Duration::ZERO,
        _ => opts.drain_timeout,
    };
    let conn = sup.master();
    let accounts = Settle {
        rt: &rt,
        conn: &conn,
        ledger: &ledger,
        produced: &produced,
        out,
    }
    .run(drain);
    let shutdown = rt.block_on(sup.shutdown()).map_err(|e| e.to_string());
    timeline.flush();
    let failovers = timeline.failovers();
    let summary = Summary {
        runtime: R::NAME,
        elapsed: out.since(Instant::now()),
        reason: reason.describe(),
        durable,
        accounts: &accounts,
        failovers: &failovers,
        worker_errors: pool.ledger.error_count(),
        push_retries: produced.retries(),
        shutdown: match (&reason, shutdown) {
            // Already reported as the reason to stop.
            (Stop::Supervisor(Err(_)), Err(_)) => Ok(()),
            (_, s) => s,
        },
        failed: matches!(reason, Stop::StoryFailed(_) | Stop::Supervisor(Err(_))),
    };
    summary.print(out);
    match reason {
        Stop::StoryFailed(e) => Err(e),
        Stop::Supervisor(Err(e)) => Err(e.into()),
        _ => Ok(Ended {
            code: summary.exit_code(),
            interrupted: matches!(reason, Stop::Signal),
        }),
    }
}

/// Waits for a reason to stop, printing progress lines meanwhile.
fn wait_for_stop(
    rx: &Receiver<Stop>,
    opts: &Options,
    out: &Out,
    produced: &Produced,
    ledger: &dramatiq_sentinel_harness::pool::Ledger,
    started: Instant,
) -> Stop {
    let end = opts.duration.map(|d| started + d);
    let mut next_progress = opts.progress.map(|p| Instant::now() + p);
    loop {
        let now = Instant::now();
        let wake = [end, next_progress].into_iter().flatten().min();
        let received = match wake {
            Some(at) => rx.recv_timeout(at.saturating_duration_since(now)),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match received {
            Ok(stop) => return stop,
            // Every sender is gone: nothing can ask to stop any more (cannot happen: the
            // signal handler keeps one).
            Err(RecvTimeoutError::Disconnected) => return Stop::StoryDone,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        if end.is_some_and(|e| now >= e) {
            return Stop::Duration;
        }
        if let (Some(at), Some(every)) = (next_progress, opts.progress)
            && now >= at
        {
            next_progress = Some(at + every);
            let (p, c) = (produced.acked_count(), ledger.completed());
            out.now(
                "jobs",
                &format!(
                    "{p} produced, {c} done, {} in the pipeline ({} since start)",
                    p.saturating_sub(c),
                    human(now - started)
                ),
                json!({ "type": "progress", "produced": p, "done": c }),
            );
        }
    }
}
