//! The apalis section of the report: per scenario a row per variant, the targets of issue 14
//! for ours, and the errors the runs surfaced.

use super::apalis::{ApalisResult, ApalisRun, label};
use super::run::{BACKLOG, JOB_MS, RATE, WORKERS};
use super::tables::{Column, workload_tables};
use std::fmt::Write as _;

/// The apalis tables: per scenario a row per variant (median (min..max) over the runs), with
/// the targets of issue 14 for ours.
pub(crate) fn apalis_table(out: &mut String, runs: &[ApalisRun]) {
    let columns: [(&str, Column<ApalisResult>); 9] = [
        ("tasks produced", &|r| Some(r.figures.produced as f64)),
        ("tasks lost", &|r| Some(r.figures.lost as f64)),
        ("tasks run twice", &|r| Some(r.figures.run_twice as f64)),
        ("stranded (in-flight or dead set)", &|r| {
            Some(r.stranded as f64)
        }),
        ("workers stopped by an error", &|r| Some(r.restarts as f64)),
        ("errors surfaced", &|r| Some(r.errors as f64)),
        ("processing gap (ms)", &|r| Some(r.figures.gap_ms)),
        ("candidate writable → workers resumed (ms)", &|r| {
            r.writable_to_resumed_ms
        }),
        (
            "candidate writable → first task start kept by the final master (ms)",
            &|r| r.writable_to_durable_start_ms,
        ),
    ];
    let start = out.len();
    workload_tables(
        out,
        runs,
        &format!(
            "apalis job workload: backlog of {BACKLOG} tasks of {JOB_MS} ms + {RATE} tasks/s, \
             {WORKERS} apalis workers, failover after 3 s"
        ),
        "variant",
        &columns,
        &|r| {
            (r.reference.failovers > 1)
                .then(|| format!("{} lost, {} run twice", r.figures.lost, r.figures.run_twice))
        },
    );
    if out.len() > start {
        let _ = writeln!(
            out,
            "apalis workers (apalis 1.0, apalis-redis 1.0, one task at a time each, idle queue \
             polled every 10 ms) consume the backlog and the stream. *Ours*: the storage on \
             `ApalisConnection` (the supervisor's master handle), workers registered in \
             `ApalisWorkers`. *ConnectionManager*: the storage on a `ConnectionManager` to the \
             master `redis::sentinel::SentinelClient` named at startup. A worker that stops \
             with an error (apalis stops a worker at its first Redis error) is replaced under \
             a new name after 100 ms. *Lost*: confirmed pushes whose effect the final master \
             does not hold at the end (stranded tasks count as lost: apalis-redis re-enqueues \
             them only after `heartbeat_interval × missed_heartbeats`, 5 minutes by default). \
             *Workers resumed*: our `SwitchCompleted`. Targets for ours: 0 lost, 0 run twice, \
             resumed within 10 ms of the candidate becoming writable.\n"
        );
        let mut samples = Vec::new();
        for (scenario, variant, r) in runs {
            if let Ok(r) = r {
                for e in &r.error_samples {
                    let line = format!("- {}, {}: {e}", scenario.id(), label(variant));
                    if !samples.contains(&line) {
                        samples.push(line);
                    }
                }
            }
        }
        if !samples.is_empty() {
            let _ = writeln!(out, "Errors surfaced (first distinct ones per run):\n");
            for line in samples.iter().take(20) {
                let _ = writeln!(out, "{line}");
            }
            let _ = writeln!(out);
        }
    }
}
