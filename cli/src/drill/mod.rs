//! The failover drill: an operator's check that failovers cost no job.
//!
//! Against a deployment (yours, or one it starts with `dramatiq_sentinel_harness` in
//! `--local` mode), the drill runs the harness's reference worker pool
//! (`dramatiq_sentinel_harness::pool`, the one the scenario suite runs) and a producer on a
//! reliable queue behind a supervisor, prints a live timeline of the supervisor's events, and
//! when it stops prints a summary. `dramatiq-sentinel drill` calls [`main`]; `--help` lists
//! the options ([`Options`]).
//!
//! It needs the crate's `drill` feature (on by default): the worker pool and the real-Redis
//! deployment harness come from `dramatiq-sentinel-harness`.
//!
//! # The workload
//! The producer pushes jobs with unique ids (`drill-<run>-<n>`) to the list `queue` at a
//! steady rate through the supervisor's master connection, retrying each push until it is
//! acknowledged (a script makes the push idempotent); a job counts as *produced* once its push
//! is acknowledged (with `--durable`, once `WAIT 1` confirmed a replica has it). Each worker takes
//! a gate permit, moves a job to `processing` (`LMOVE`), records its start, works, records its
//! effect idempotently (`SADD done`) and acknowledges it (`LREM processing`).
//!
//! # The accounts
//! When the drill stops, the producer stops and the workers finish the queue (jobs orphaned in
//! `processing` by a lost `LMOVE` reply are requeued, as a reaper would). Then every produced
//! job is looked up: in `done` (*done*), still queued or processing (*unfinished*), or nowhere
//! (*lost*). A job started more than once is *run twice*. A push still failing when the drill
//! stops is *uncertain* and not counted. Per failover the timeline gives the time from the
//! first signal (such as `+try-failover`) to the workers' resume, and how long no job could
//! start (the gate closed); the longest of those is the *longest fence*.
//!
//! # Local mode
//! `--local` starts one master, two replicas and three sentinels on 127.0.0.1 and plays a story
//! (default: two graceful failovers, then the master killed), waiting by polling and pacing the
//! acts, then removes the deployment. Its Redis processes run in process groups of their own,
//! so Ctrl-C in a terminal reaches only the drill, which drains, settles its accounts and stops
//! them.

mod account;
mod args;
mod error;
mod producer;
mod session;
mod stop;
mod story;
mod summary;
mod timeline;

pub use args::{Act, DRILL_PASSWORD_ENV, Options, RuntimeChoice};
pub use error::DrillError;

use crate::output::Out;
use dramatiq_sentinel_harness::runtime::{SmolRuntime, TokioRuntime};
use dramatiq_sentinel_harness::{Deployment, DeploymentOptions};
use serde_json::json;
use session::Context;
use std::process::ExitCode;
use std::sync::mpsc::channel;

/// Runs the drill with the options of its command line and returns the process exit status
/// ([`crate::exit`]): 0 every job done exactly once, 1 jobs lost or run twice (or an error),
/// 2 bad options or configuration, 3 no sentinel reachable, 4 the service unknown or its
/// master not verified, 5 the accounting could not be completed.
pub fn main(opts: &Options) -> ExitCode {
    if let Err(e) = opts.check() {
        return fail(&DrillError::Usage(e));
    }
    match drill(opts) {
        Ok(code) => ExitCode::from(code),
        Err(e) => fail(&e),
    }
}

fn fail(e: &DrillError) -> ExitCode {
    eprintln!("dramatiq-sentinel drill: {e}");
    ExitCode::from(e.exit_code())
}

/// Starts the local deployment if asked, then runs the drill on the chosen runtime; returns
/// the exit status.
fn drill(opts: &Options) -> Result<u8, DrillError> {
    let out = Out::new(opts.json, opts.verbose);
    let (stop_tx, stop_rx) = channel();
    stop::handle_signals(stop_tx.clone())?;
    let mut deployment = None;
    if opts.local {
        // Reject invalid settings before starting any Redis process.
        session::config(opts, None)?;
        deployment = Some(start_local(&out, opts.target.tls)?);
    }
    let cx = Context {
        opts,
        out: &out,
        stop_tx,
        stop_rx,
        local: deployment.as_ref(),
    };
    let result = match opts.runtime {
        RuntimeChoice::Tokio => {
            let rt = TokioRuntime::try_new().map_err(|source| DrillError::Runtime {
                runtime: "tokio",
                source,
            })?;
            session::run(rt, cx)
        }
        RuntimeChoice::Smol => session::run(SmolRuntime, cx),
    };
    if let Some(mut d) = deployment {
        // Keep the Redis logs of a drill that went wrong (not of one merely interrupted).
        let wrong = match &result {
            Ok(ended) => ended.code != summary::CLEAN && !ended.interrupted,
            Err(_) => true,
        };
        if wrong {
            d.keep_logs();
        }
        drop(d);
        out.now(
            "deployment",
            "local deployment stopped",
            json!({ "type": "deployment", "state": "stopped" }),
        );
    }
    result.map(|ended| ended.code)
}

/// Starts the `--local` deployment and describes it.
fn start_local(out: &Out, tls: bool) -> Result<Deployment, DrillError> {
    let options = DeploymentOptions::default()
        .tls(tls)
        .own_process_groups(true);
    let over = if tls {
        " (TLS only, client certificates required)"
    } else {
        ""
    };
    out.now(
        "deployment",
        &format!("starting 1 master, 2 replicas and 3 sentinels on 127.0.0.1{over}"),
        json!({ "type": "deployment", "state": "starting" }),
    );
    let d = Deployment::start(options)?;
    let master = d.master()?;
    let nodes: Vec<String> = d
        .nodes()
        .into_iter()
        .map(|n| {
            let role = if n == master { "master" } else { "replica" };
            format!("{n} {} ({role})", d.addr(n))
        })
        .collect();
    let sentinels: Vec<String> = d.sentinel_addrs().iter().map(ToString::to_string).collect();
    out.now(
        "deployment",
        &format!(
            "Redis {}: {}; sentinels {}; down-after {} ms",
            d.redis_version(),
            nodes.join(", "),
            sentinels.join(", "),
            d.down_after().as_millis()
        ),
        json!({ "type": "deployment", "state": "ready", "redis": d.redis_version(),
                "nodes": nodes, "sentinels": sentinels, "dir": d.dir().display().to_string() }),
    );
    Ok(d)
}
