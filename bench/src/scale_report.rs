//! The report's tables for the scale measurements: per-command overhead of the master handle
//! against a plain connection, and the fleet runs (issue 10), each with its targets.

use super::commands::Commands;
use super::facts::Facts;
use super::fleet::{FleetResult, FleetScenario};
use super::metrics::pct;
use std::fmt::Write as _;

/// One long-job run: its scenario, long job, and result or why it failed.
pub(crate) type LongJobRun = (
    super::scenario::Scenario,
    super::run::LongJob,
    Result<super::run::JobResult, String>,
);

/// The long-job table: per job length and drain, per scenario, median (min..max) of the runs.
pub(crate) fn long_job_table(out: &mut String, runs: &[LongJobRun]) {
    if runs.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Long jobs
"
    );
    let _ = writeln!(
        out,
        "The job workload (backlog of 2000 short jobs plus 100/s, 4 workers, ours on tokio), with \
         one long job started right before the failover: without the drain (the default) and \
         with `drain` (the workers resume only once it is done). *New job*: the candidate \
         writable (probe) to the first job started after it. Target without the drain: a new \
         job within 10 ms of the new master becoming writable, whatever the job length; 0 lost, \
         0 run twice. Median (min..max) over the runs.\n"
    );
    let _ = writeln!(
        out,
        "| long job | drain | scenario | runs | jobs lost | run twice | processing gap (ms) | writable → new job (ms) | writable → resumed (ms) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    let mut keys: Vec<(u64, bool, super::scenario::Scenario)> = runs
        .iter()
        .map(|(s, l, _)| (l.time.as_secs(), l.drain, *s))
        .collect();
    keys.sort();
    keys.dedup();
    for (secs, drain, scenario) in keys {
        let mine: Vec<&super::run::JobResult> = runs
            .iter()
            .filter(|(s, l, _)| *s == scenario && l.time.as_secs() == secs && l.drain == drain)
            .filter_map(|(_, _, r)| r.as_ref().ok())
            .collect();
        let failed = runs
            .iter()
            .filter(|(s, l, r)| {
                *s == scenario && l.time.as_secs() == secs && l.drain == drain && r.is_err()
            })
            .count();
        let col = |f: &dyn Fn(&super::run::JobResult) -> Option<f64>| {
            let v: Vec<f64> = mine.iter().filter_map(|r| f(r)).collect();
            super::metrics::stats(&v).map_or("–".to_owned(), |s| {
                if s.n == 1 {
                    format!("{:.0}", s.median)
                } else {
                    format!("{:.0} ({:.0}..{:.0})", s.median, s.min, s.max)
                }
            })
        };
        let _ = writeln!(
            out,
            "| {secs} s | {} | {} | {}{} | {} | {} | {} | {} | {} |",
            if drain { "yes" } else { "no" },
            scenario.id(),
            mine.len(),
            if failed > 0 {
                format!(" (+{failed} failed)")
            } else {
                String::new()
            },
            col(&|r| Some(r.figures.lost as f64)),
            col(&|r| Some(r.figures.run_twice as f64)),
            col(&|r| Some(r.figures.gap_ms)),
            col(&|r| r.writable_to_new_job_ms),
            col(&|r| r.writable_to_resumed_ms),
        );
    }
    let _ = writeln!(out);
}

/// One fleet run: its size, scenario, and result or why it failed.
pub(crate) type FleetRun = (usize, FleetScenario, Result<FleetResult, String>);

fn met(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**missed**" }
}

/// Where a table was measured: the commit and the command, for its heading.
fn measured_at(facts: &Facts) -> String {
    format!(
        "Measured at commit `{}` on {} with `{}`.",
        facts.commit, facts.date, facts.command
    )
}

/// A ratio's cell: the median and (min..max) over the rounds.
fn ratio_cell(r: Option<super::metrics::Stats>) -> String {
    r.map_or("–".to_owned(), |r| {
        format!("{:.2}× ({:.2}..{:.2})", r.median, r.min, r.max)
    })
}

/// The per-command overhead tables, one per runtime, with the targets of issue 19.
pub(crate) fn command_table(out: &mut String, commands: &Result<Commands, String>, facts: &Facts) {
    let _ = writeln!(out, "## Per-command overhead\n");
    let c = match commands {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(out, "Not measured: {e}\n");
            return;
        }
    };
    let _ = writeln!(out, "{}\n", measured_at(facts));
    let _ = writeln!(
        out,
        "`MasterConnection` (one handle of a supervisor with default settings, cloned per \
         task) against a plain `redis` `MultiplexedConnection` to the same master (cloned per \
         task), both with a 5 s response timeout (our default `command_timeout`, the plain \
         connection's `set_response_timeout`). Two child processes per runtime (tokio: a \
         two-thread runtime; smol: its global executor with `SMOL_THREADS=2`), each holding both \
         clients, run every case at the same time, one on our handle and the other on the plain \
         connection, and swap clients from one round to the next, so that both clients always \
         share the same machine (its load, from other work, changes by the second). Each case \
         runs {} s per round, {} rounds. *CPU/cmd*: user + system time of the client's whole \
         process (`/proc/<pid>/task/*/schedstat`) over the case, per command (a pipeline of 16 \
         counts 16). Absolute values are the median of the rounds; ratios are ours / plain per \
         round, median (min..max) over the rounds. The *control* row measures two plain \
         connections, the same in every way, as the other rows measure ours against plain: how \
         far its ratios stray from 1 is what the method cannot resolve. Targets (issue 19): CPU \
         per command at most 1.05×, throughput at least 0.97×, p99 at most 1.10× (medians).\n",
        c.round_time.as_secs_f64(),
        c.rounds,
    );
    for (exec, run) in &c.runs {
        let name = match exec {
            super::ours::Exec::Tokio => "tokio",
            super::ours::Exec::Smol => "smol",
        };
        let r = match run {
            Ok(r) => r,
            Err(e) => {
                let _ = writeln!(out, "### {name}\n\nNot measured: {e}\n");
                continue;
            }
        };
        let _ = writeln!(
            out,
            "### {name} (load average {:.2} before, {:.2} after; {:.0} s)\n",
            r.load.0, r.load.1, r.secs
        );
        let _ = writeln!(
            out,
            "| case | ours ops/s | plain ops/s | throughput ratio | ours p50 / p99 (µs) | plain p50 / p99 (µs) | p99 ratio | ours CPU/cmd (µs) | plain CPU/cmd (µs) | CPU ratio | targets |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
        let mut integrations_header = false;
        for case in &r.cases {
            if case.integration.is_some() && !integrations_header {
                integrations_header = true;
                let _ = writeln!(
                    out,
                    "| *integrations, {} tasks, `INCR`: ours / its plain counterpart* ||||||||||",
                    case.case.tasks
                );
            }
            let label = case
                .integration
                .map_or_else(|| case.case.label(), |i| i.label().to_owned());
            let (ours, plain) = case.medians(|x| x.ops);
            let (o50, p50) = case.medians(|x| x.p50_us);
            let (o99, p99) = case.medians(|x| x.p99_us);
            let (ocpu, pcpu) = case.medians(|x| x.cpu_ns);
            let (tput, lat, cpu) = (
                case.ratio(|x| x.ops),
                case.ratio(|x| x.p99_us),
                case.ratio(|x| x.cpu_ns),
            );
            let ok = tput.is_some_and(|t| t.median >= 0.97)
                && lat.is_some_and(|l| l.median <= 1.10)
                && cpu.is_some_and(|c| c.median <= 1.05);
            let _ = writeln!(
                out,
                "| {} | {ours:.0} | {plain:.0} | {} | {o50:.0} / {o99:.0} | {p50:.0} / {p99:.0} | {} | {:.2} | {:.2} | {} | {} |",
                label,
                ratio_cell(tput),
                ratio_cell(lat),
                ocpu / 1e3,
                pcpu / 1e3,
                ratio_cell(cpu),
                met(ok)
            );
        }
        let _ = writeln!(out);
    }
}

fn ms(x: Option<f64>) -> String {
    x.map_or("–".to_owned(), |x| format!("{x:.0}"))
}

fn list(values: &[f64], digits: usize) -> String {
    let shown: Vec<String> = values.iter().map(|v| format!("{v:.digits$}")).collect();
    shown.join(" / ")
}

/// The fleet tables: failovers, then sentinel restarts, then the targets.
pub(crate) fn fleet_tables(out: &mut String, runs: &[FleetRun], facts: &Facts) {
    let _ = writeln!(out, "## Fleet\n");
    let _ = writeln!(out, "{}\n", measured_at(facts));
    let _ = writeln!(
        out,
        "N supervisors with default settings (a random jitter seed each) in processes of {} \
         (one two-thread tokio runtime each, whose supervisors share one \
         `SharedConnections`; {} worker tasks per supervisor: take a permit, `INCR`, rest \
         100 ms), one deployment. *Resumed*: the candidate writable (the \
         observer's probe) to each supervisor's `SwitchCompleted`, across the fleet. *Client \
         CPU per switch*: the fleet processes' CPU time (`schedstat`) from the trigger to 1 s \
         after the last supervisor was done, less their CPU time at rest over as long \
         (measured over the 2 s before the trigger), per supervisor; *client CPU %*: their use \
         over that window, in % of one core (2 cores here). Rates are \
         over the trigger to the last supervisor done; commands from `INFO commandstats`, \
         connections from `INFO stats` (`total_connections_received`); CPU from \
         `/proc/<pid>/task/*/schedstat`. A killed master's port is taken over by a stand-in \
         that accepts and closes every connection, counting them (the sentinels' own attempts \
         included). *Listen overflows*: connections the kernel dropped because an accept queue \
         was full (`ListenOverflows` of `/proc/net/netstat`, machine-wide): each one stalls a \
         connection by a TCP retransmission (about 1 s); the data nodes' `tcp-backlog` bounds \
         that queue. *Floor* (a failover of a fleet in one process): right after the run, N \
         connections opened at once from one process to the new master, each with the one \
         pipelined round trip that verifies it (`SELECT`, `ROLE`, `INFO replication`), nothing \
         else; p99 in ms, median of 5 (`fleet-floor`): no switch of N supervisors in one \
         process can be faster on this machine. *Warm* against the new master, which holds \
         that many connections by then; *cold* against the other replica, restarted before \
         each repetition, whose descriptor table grows while it accepts them as the new \
         master's did in the switch (each doubling stalls the server for an RCU grace \
         period; see `bench/src/floor.rs`).\n",
        runs.iter()
            .find_map(|(_, _, r)| r.as_ref().ok().map(|r| r.per_process))
            .unwrap_or(super::fleet::PER_PROCESS),
        super::fleet::TASKS
    );
    let _ = writeln!(
        out,
        "| N (processes) | scenario | tcp-backlog | resumed p50 / p99 / max (ms) | client CPU per switch per supervisor (ms) | client CPU % | missing | window (s), load | candidate cmds/s | candidate connections | listen overflows | candidate top commands | sentinel cmds/s | sentinel CPU % | connects/s to the dead master |"
    );
    let _ = writeln!(
        out,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for (n, scenario, result) in runs {
        if *scenario == FleetScenario::SentinelRestart {
            continue;
        }
        match result {
            Ok(r) => {
                let top: Vec<String> = r
                    .candidate_top
                    .iter()
                    .take(4)
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
                let _ = writeln!(
                    out,
                    "| {n} ({}) | {} | {} | {} / {} / {} | {} | {} | {} | {:.2}, {:.2} | {} | {} | {} | {} | {} | {} | {} |",
                    r.processes,
                    scenario.label(),
                    r.backlog
                        .map_or("511 (default)".to_owned(), |b| b.to_string()),
                    ms(pct(&r.resumed_ms, 0.5)),
                    ms(pct(&r.resumed_ms, 0.99)),
                    ms(pct(&r.resumed_ms, 1.0)),
                    r.switch_cpu_ms.map_or("–".into(), |x| format!("{x:.3}")),
                    r.client_cpu_pct.map_or("–".into(), |x| format!("{x:.0}")),
                    missing(r),
                    r.window_s,
                    r.load,
                    r.candidate_cmds_per_s
                        .map_or("–".into(), |x| format!("{x:.0}")),
                    r.candidate_connects.map_or("–".into(), |x| x.to_string()),
                    r.listen_overflows.map_or("–".into(), |x| x.to_string()),
                    top.join(", "),
                    list(&r.sentinel_cmds_per_s, 0),
                    list(&r.sentinel_cpu_pct, 1),
                    r.dead_connects_per_s
                        .map_or("–".into(), |x| format!("{x:.1}")),
                );
            }
            Err(e) => {
                let _ = writeln!(
                    out,
                    "| {n} | {} | failed: {} |||||||||||||",
                    scenario.label(),
                    first_line(e)
                );
            }
        }
    }
    let _ = writeln!(out);
    if !runs
        .iter()
        .any(|(_, s, _)| *s == FleetScenario::SentinelRestart)
    {
        return targets(out, runs);
    }
    let _ = writeln!(
        out,
        "Sentinel restart (stopped 2 s, started again, default `min_backoff` 3 s): when each \
         supervisor's listener was up again, from the restart; *largest burst*: the most \
         reconnects in any 100 ms, as a share of the fleet.\n"
    );
    let _ = writeln!(
        out,
        "| N | reconnected p50 / p99 / max (ms) | missing | largest burst | restarted sentinel cmds/s | sentinel CPU % |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for (n, scenario, result) in runs {
        if *scenario != FleetScenario::SentinelRestart {
            continue;
        }
        match result {
            Ok(r) => {
                let _ = writeln!(
                    out,
                    "| {n} | {} / {} / {} | {} | {} | {} | {} |",
                    ms(pct(&r.reconnect_ms, 0.5)),
                    ms(pct(&r.reconnect_ms, 0.99)),
                    ms(pct(&r.reconnect_ms, 1.0)),
                    missing(r),
                    burst(&r.reconnect_ms, *n),
                    r.sentinel_cmds_per_s
                        .first()
                        .map_or("–".into(), |x| format!("{x:.0}")),
                    list(&r.sentinel_cpu_pct, 1),
                );
            }
            Err(e) => {
                let _ = writeln!(out, "| {n} | failed: {} |||||", first_line(e));
            }
        }
    }
    let _ = writeln!(out);
    targets(out, runs);
}

/// The supervisors that never resumed, and those still running 45 s after their process
/// began shutting them down.
fn missing(r: &FleetResult) -> String {
    if r.not_stopped == 0 {
        r.missing.to_string()
    } else {
        format!(
            "{} ({} not stopped 45 s after the shutdown)",
            r.missing, r.not_stopped
        )
    }
}

/// The first line of an error (a table cell holds one line).
fn first_line(e: &str) -> &str {
    e.lines().next().unwrap_or_default()
}

/// The most reconnects within any 100 ms, as a share of `n`.
fn burst(times_ms: &[f64], n: usize) -> String {
    let mut t: Vec<f64> = times_ms.to_vec();
    t.sort_by(f64::total_cmp);
    let most = (0..t.len())
        .map(|i| t[i..].iter().take_while(|&&x| x < t[i] + 100.0).count())
        .max()
        .unwrap_or(0);
    format!("{most} ({:.0} %)", most as f64 * 100.0 / n.max(1) as f64)
}

/// The targets of issue 10, met or not.
fn targets(out: &mut String, runs: &[FleetRun]) {
    let _ = writeln!(out, "| fleet target | runs | verdict |");
    let _ = writeln!(out, "|---|---|---|");
    let backlog = |r: &Result<FleetResult, String>| r.as_ref().ok().map(|r| r.backlog);
    let mut backlogs: Vec<Option<Option<u32>>> = runs.iter().map(|(_, _, r)| backlog(r)).collect();
    backlogs.dedup();
    for b in backlogs.into_iter().flatten() {
        let p99s: Vec<(&str, Option<f64>, String)> = runs
            .iter()
            .filter(|(n, s, r)| {
                *n == 500 && *s != FleetScenario::SentinelRestart && backlog(r) == Some(b)
            })
            .map(|(_, s, r)| {
                let r = r.as_ref().ok();
                let p99 =
                    r.and_then(|r| (r.missing == 0).then(|| pct(&r.resumed_ms, 0.99)).flatten());
                let floor = match r.map(|r| (r.floor_p99_ms, r.cold_floor_p99_ms)) {
                    Some((Some(f), Some(c))) => format!(" (floor: {f:.0} warm, {c:.0} cold)"),
                    Some((Some(f), None)) => format!(" (floor: {f:.0})"),
                    _ => String::new(),
                };
                (s.label(), p99, floor)
            })
            .collect();
        if p99s.is_empty() {
            continue;
        }
        let shown: Vec<String> = p99s
            .iter()
            .map(|(s, v, floor)| format!("{s}: {}{floor}", ms(*v)))
            .collect();
        let ok = p99s.iter().all(|(_, v, _)| v.is_some_and(|v| v <= 50.0));
        let one_process = runs
            .iter()
            .any(|(n, _, r)| *n == 500 && r.as_ref().is_ok_and(|r| r.processes == 1));
        let _ = writeln!(
            out,
            "| p99 resumed within 50 ms of the new master becoming writable at N = 500{}, tcp-backlog {} | {} | {} |",
            if one_process { " in one process" } else { "" },
            b.map_or("511 (default)".to_owned(), |b| b.to_string()),
            shown.join("; "),
            met(ok)
        );
    }
    let dead: Vec<String> = runs
        .iter()
        .filter_map(|(n, s, r)| {
            let c = r.as_ref().ok()?.dead_connects_per_s?;
            Some(format!(
                "N={n}, {} tasks each: {c:.1}/s ({:.2} per supervisor)",
                s.tasks(),
                c / *n as f64
            ))
        })
        .collect();
    // Met when, at each size run both ways, 5× the tasks waiting add less than half again.
    let rate = |n: usize, s: FleetScenario| {
        runs.iter()
            .find(|(m, x, _)| *m == n && *x == s)
            .and_then(|(_, _, r)| r.as_ref().ok()?.dead_connects_per_s)
    };
    let pairs: Vec<(f64, f64)> = runs
        .iter()
        .filter(|(_, s, _)| *s == FleetScenario::KillBusy)
        .filter_map(|(n, _, _)| {
            Some((
                rate(*n, FleetScenario::Failover(super::scenario::Scenario::Kill))?,
                rate(*n, FleetScenario::KillBusy)?,
            ))
        })
        .collect();
    if !dead.is_empty() {
        let verdict = if pairs.is_empty() {
            "–"
        } else {
            met(pairs.iter().all(|(few, many)| *many <= few * 1.5))
        };
        let _ = writeln!(
            out,
            "| connects per second to a dead master independent of the tasks waiting | {} | {verdict} |",
            dead.join("; "),
        );
    }
    let spread: Vec<(usize, f64)> = runs
        .iter()
        .filter(|(n, s, _)| *s == FleetScenario::SentinelRestart && *n >= 50)
        .filter_map(|(n, _, r)| {
            let r = r.as_ref().ok()?;
            let max = pct(&r.reconnect_ms, 1.0)?;
            let min = pct(&r.reconnect_ms, 0.0)?;
            Some((*n, max - min))
        })
        .collect();
    if !spread.is_empty() {
        let shown: Vec<String> = spread
            .iter()
            .map(|(n, s)| format!("N={n}: spread over {s:.0} ms"))
            .collect();
        let ok = spread.iter().all(|(_, s)| *s >= 500.0);
        let _ = writeln!(
            out,
            "| a restarted sentinel sees the fleet's reconnects spread over the backoff window | {} | {} |",
            shown.join("; "),
            met(ok)
        );
    }
    let _ = writeln!(out);
}
