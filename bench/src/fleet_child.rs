//! The fleet child: `--supervisors` supervisors in one process (one two-thread tokio runtime),
//! sharing one `SharedConnections`, each with its own worker gate and `--workers` worker tasks
//! that take a permit, `INCR` a counter through their supervisor's master handle, and rest
//! 100 ms. Stdout: `{"sup", "ev", "t", ...}` for each switch completed (`resumed`), listener up
//! or down (`up`, `down`, with the sentinel `s`), then `{"ready"}` once every supervisor
//! started, and after `quit` (or EOF on stdin) `{"shutdown_ms", "not_stopped"}` (the
//! supervisors shut down at once, for 45 s at most) and `{"end"}`.

use super::child_args::ChildArgs;
use super::clock::now_ns;
use super::emit::{Sink, stop_flag};
use super::error::Result;
use super::ours::{self, DEFAULT_COMMAND_TIMEOUT};
use dramatiq_sentinel_tokio::Config;
use dramatiq_sentinel_tokio::{Event, SharedConnections, Supervisor, redis::AsyncCommands};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The database the fleet works in: not 0, so that every new connection sends `SELECT` and a
/// dead master's counting stand-in (which closes what it accepts) fails the connection.
pub(crate) const FLEET_DB: u32 = 1;

fn report(sink: &Sink, sup: usize, e: &Event) {
    let t = now_ns();
    let line = match e {
        Event::SwitchCompleted {
            old: Some(_), path, ..
        } => json!({ "sup": sup, "ev": "resumed", "t": t, "path": path.to_string() }),
        Event::ListenerUp { sentinel } => {
            json!({ "sup": sup, "ev": "up", "t": t, "s": sentinel.to_string() })
        }
        Event::ListenerDown { sentinel, .. } => {
            json!({ "sup": sup, "ev": "down", "t": t, "s": sentinel.to_string() })
        }
        // The steps of a switch, for `--raw` timelines.
        Event::Fenced { signal, .. } => json!({ "sup": sup, "ev": "fenced", "t": t, "d": signal }),
        Event::CandidateNamed { .. } => json!({ "sup": sup, "ev": "candidate", "t": t }),
        Event::SwitchDetected { path, .. } => {
            json!({ "sup": sup, "ev": "detected", "t": t, "path": path.to_string() })
        }
        Event::AfterReset { .. } => json!({ "sup": sup, "ev": "moved", "t": t }),
        Event::VerificationFailed { node, reason } => {
            json!({ "sup": sup, "ev": "verify-failed", "t": t, "d": format!("{node}: {reason}") })
        }
        _ => return,
    };
    sink.json(&line);
}

/// Runs the fleet child.
pub(crate) fn run(args: &ChildArgs) -> Result<()> {
    let sink = Sink::new();
    let stop = stop_flag("quit");
    let result = ours::on_tokio(fleet(args, &sink, &stop))?;
    sink.close();
    result
}

async fn fleet(args: &ChildArgs, sink: &Sink, stop: &Arc<AtomicBool>) -> Result<()> {
    let mut sups = Vec::new();
    // What a process hosting many supervisors of one deployment should do: one connection per
    // server for their queries, probes and watches, instead of one per supervisor.
    let shared = SharedConnections::new();
    for i in 0..args.supervisors {
        // The defaults a user gets, in a database of its own.
        let config = Config::builder()
            .sentinels(args.sentinels.iter().cloned())
            .service_name(args.service.clone())
            .command_timeout(Some(DEFAULT_COMMAND_TIMEOUT))
            .db(FLEET_DB)
            .build()?;
        let hook_sink = sink.clone();
        let sup = Supervisor::builder(config)
            .shared_connections(&shared)
            .on_event(move |e| report(&hook_sink, i, e))
            .start()
            .await?;
        for _ in 0..args.workers {
            let (gate, mut conn, stop) = (sup.gate(), sup.master(), Arc::clone(stop));
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let Ok(permit) = gate.enter().await else {
                        break;
                    };
                    let _: redis::RedisResult<i64> = conn.incr("fleet:ctr", 1).await;
                    drop(permit);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        }
        sups.push(sup);
    }
    sink.json(&json!({ "ready": now_ns() }));
    sink.flush();
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every supervisor shut down at once, for at most SHUTDOWN: the ones still running then
    // are counted (`not_stopped`), and the process ends anyway.
    let started = now_ns();
    let shutdowns: Vec<_> = sups
        .iter()
        .map(|sup| {
            let sup = sup.clone();
            tokio::spawn(async move { sup.shutdown().await.is_ok() })
        })
        .collect();
    let all = async {
        for s in shutdowns {
            let _ = s.await;
        }
    };
    let in_time = tokio::time::timeout(SHUTDOWN, all).await.is_ok();
    let not_stopped = sups.iter().filter(|s| !s.is_stopped()).count();
    sink.json(&json!({
        "shutdown_ms": (now_ns() - started) as f64 / 1e6, "not_stopped": not_stopped,
        "in_time": in_time,
    }));
    sink.json(&json!({ "end": now_ns() }));
    Ok(())
}

/// How long the child waits for its supervisors to shut down.
const SHUTDOWN: Duration = Duration::from_secs(45);
