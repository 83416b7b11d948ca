//! The report: markdown tables (printed and written to `BENCHMARKS.md`), the facts of the
//! machine and versions, the targets of issue 6 with met / missed, and the per-run values.

use super::facts::Facts;
use super::metrics::Stats;
use super::overhead::Overhead;
use super::run::{BACKLOG, JOB_MS, JobResult, RATE, WORKERS, WriterResult};
use super::scenario::Scenario;
use super::tables::{
    Column, cell, client_label, clients_of, error_samples, num, ok_runs, scenarios_of,
    workload_tables,
};
use std::fmt::Write as _;

/// One run of the writer workload, or why it failed.
pub(crate) type WriterRun = (Scenario, String, Result<WriterResult, String>);
/// One run of the job workload, or why it failed.
pub(crate) type JobRun = (Scenario, String, Result<JobResult, String>);

/// Everything the report shows.
pub(crate) struct Report {
    pub(crate) facts: Facts,
    pub(crate) writers: Vec<WriterRun>,
    pub(crate) jobs: Vec<JobRun>,
    pub(crate) long_jobs: Vec<super::scale_report::LongJobRun>,
    pub(crate) apalis: Vec<super::apalis::ApalisRun>,
    pub(crate) overhead: Option<Overhead>,
    pub(crate) commands: Option<Result<super::commands::Commands, String>>,
    pub(crate) fleet: Option<Vec<super::scale_report::FleetRun>>,
}

/// A target: its text, every run's value, when a value meets it, and what limits it.
type TargetRow<'a> = (&'a str, Vec<Sample>, &'a dyn Fn(f64) -> bool, &'a str);

/// One run's value for a target.
struct Sample {
    scenario: Scenario,
    value: Option<f64>,
    load: f64,
    failovers: usize,
}

impl Sample {
    fn new(scenario: Scenario, value: Option<f64>, load: f64, failovers: usize) -> Self {
        Self {
            scenario,
            value,
            load,
            failovers,
        }
    }
}

/// One row of the targets table: met when every run has a value that is `ok`; otherwise the
/// runs that missed, with their load and whether the sentinels failed over twice, and `cause`.
fn verdict(
    out: &mut String,
    target: &str,
    label: &str,
    samples: &[Sample],
    ok: &dyn Fn(f64) -> bool,
    cause: &str,
) {
    if samples.is_empty() {
        return;
    }
    let values: Vec<Option<f64>> = samples.iter().map(|s| s.value).collect();
    let missed: Vec<String> = samples
        .iter()
        .filter(|s| !s.value.is_some_and(ok))
        .map(|s| {
            format!(
                "{} in a {} run (load {:.2}{})",
                s.value.map_or("no value".to_owned(), num),
                s.scenario.id(),
                s.load,
                if s.failovers > 1 {
                    ", second failover"
                } else {
                    ""
                }
            )
        })
        .collect();
    let why = if missed.is_empty() {
        format!("all {} runs", samples.len())
    } else {
        let mut why = format!(
            "{} of {} runs missed: {}",
            missed.len(),
            samples.len(),
            missed.join("; ")
        );
        if !cause.is_empty() {
            let _ = write!(why, ". {cause}");
        }
        why
    };
    let _ = writeln!(
        out,
        "| {target} | {label} | {} | {} | {why} |",
        if missed.is_empty() {
            "**met**"
        } else {
            "**missed**"
        },
        cell(&values)
    );
}

impl Report {
    /// The tables only (what is printed to stdout).
    pub(crate) fn tables(&self) -> String {
        let mut out = String::new();
        self.writer_tables(&mut out);
        self.job_tables(&mut out);
        super::scale_report::long_job_table(&mut out, &self.long_jobs);
        super::apalis_report::apalis_table(&mut out, &self.apalis);
        self.deployment_table(&mut out);
        self.overhead_tables(&mut out);
        if let Some(c) = &self.commands {
            super::scale_report::command_table(&mut out, c, &self.facts);
        }
        if let Some(f) = &self.fleet {
            super::scale_report::fleet_tables(&mut out, f, &self.facts);
        }
        self.targets(&mut out);
        out
    }

    fn writer_tables(&self, out: &mut String) {
        let columns: [(&str, Column<WriterResult>); 8] = [
            ("writes/s", &|r| Some(r.rate.round())),
            ("acked writes lost", &|r| Some(r.figures.lost as f64)),
            ("lost commands handed back (ours)", &|r| {
                r.handed_back.map(|n| n as f64)
            }),
            ("errors surfaced", &|r| Some(r.errors as f64)),
            ("longest gap, acked writes (ms)", &|r| {
                Some(r.figures.ack_gap_ms)
            }),
            ("longest gap, durable writes (ms)", &|r| {
                Some(r.figures.durable_gap_ms)
            }),
            (
                "first `+switch-master` → first write on new master (ms)",
                &|r| r.switch_to_write_ms,
            ),
            (
                "candidate writable → first write on new master (ms)",
                &|r| r.writable_to_write_ms,
            ),
        ];
        workload_tables(
            out,
            &self.writers,
            "Writer workload: an `INCR` and an `RPUSH` every 1 ms, failover after 5 s",
            "client",
            &columns,
            &|r| {
                (r.reference.failovers > 1).then(|| {
                    format!(
                        "{} lost, durable gap {} ms",
                        r.figures.lost,
                        num(r.figures.durable_gap_ms)
                    )
                })
            },
        );
    }

    fn job_tables(&self, out: &mut String) {
        let columns: [(&str, Column<JobResult>); 7] = [
            ("jobs produced", &|r| Some(r.figures.produced as f64)),
            ("jobs lost", &|r| Some(r.figures.lost as f64)),
            ("jobs run twice", &|r| Some(r.figures.run_twice as f64)),
            ("requeued by the reaper", &|r| Some(r.requeued as f64)),
            ("processing gap (ms)", &|r| Some(r.figures.gap_ms)),
            ("first sentinel signal → workers resumed (ms)", &|r| {
                r.signal_to_resumed_ms
            }),
            ("candidate writable → workers resumed (ms)", &|r| {
                r.writable_to_resumed_ms
            }),
        ];
        workload_tables(
            out,
            &self.jobs,
            &format!(
                "Job workload: backlog of {BACKLOG} jobs of {JOB_MS} ms + {RATE} jobs/s, \
                 {WORKERS} workers through the supervisor, failover after 3 s"
            ),
            "variant",
            &columns,
            &|r| {
                (r.reference.failovers > 1)
                    .then(|| format!("{} lost, {} run twice", r.figures.lost, r.figures.run_twice))
            },
        );
    }

    fn deployment_table(&self, out: &mut String) {
        let mut rows = Vec::new();
        let mut scenarios: Vec<Scenario> = scenarios_of(&self.writers);
        scenarios.extend(scenarios_of(&self.jobs));
        scenarios.sort();
        scenarios.dedup();
        for scenario in scenarios {
            let refs: Vec<_> = self
                .writers
                .iter()
                .filter(|(s, _, _)| *s == scenario)
                .filter_map(|(_, _, r)| r.as_ref().ok().map(|r| &r.reference))
                .chain(
                    self.jobs
                        .iter()
                        .filter(|(s, _, _)| *s == scenario)
                        .filter_map(|(_, _, r)| r.as_ref().ok().map(|r| &r.reference)),
                )
                .collect();
            let mut signals: Vec<String> = refs.iter().filter_map(|r| r.signal.clone()).collect();
            signals.sort();
            signals.dedup();
            let twice = refs.iter().filter(|r| r.failovers > 1).count();
            rows.push(format!(
                "| {} | {} | {} | {} | {} | {} | {} |",
                scenario.label(),
                cell(&refs.iter().map(|r| r.signal_ms).collect::<Vec<_>>()),
                signals.join(", "),
                cell(&refs.iter().map(|r| r.writable_ms).collect::<Vec<_>>()),
                cell(&refs.iter().map(|r| r.switch_ms).collect::<Vec<_>>()),
                twice,
                refs.len()
            ));
        }
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "## The deployment, as the independent observer saw it (all runs)\n"
        );
        let _ = writeln!(
            out,
            "| scenario | trigger → first failover signal (ms) | first signal | trigger → candidate writable (ms) | trigger → first `+switch-master` (ms) | runs with a second failover | runs |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        for r in rows {
            let _ = writeln!(out, "{r}");
        }
        let _ = writeln!(out);
    }

    fn overhead_tables(&self, out: &mut String) {
        let Some(o) = &self.overhead else { return };
        let _ = writeln!(out, "## Overhead\n");
        match &o.idle {
            Ok(idle) => {
                let _ = writeln!(
                    out,
                    "Idle over {} s (after 5 s of warm-up); CPU time from `/proc/<pid>/task/*/schedstat`, memory from `/proc/<pid>/status`:\n",
                    o.window.as_secs()
                );
                let _ = writeln!(
                    out,
                    "| process | CPU (% of one core) | CPU time per minute (ms) | RSS at end (MiB) | RSS max (MiB) | threads |"
                );
                let _ = writeln!(out, "|---|---|---|---|---|---|");
                for i in idle {
                    let _ = writeln!(
                        out,
                        "| {} | {:.3} | {:.1} | {:.1} | {:.1} | {} |",
                        i.label,
                        i.cpu_pct,
                        i.cpu_pct * 600.0,
                        i.rss_kib as f64 / 1024.0,
                        i.rss_max_kib as f64 / 1024.0,
                        i.threads
                    );
                }
                let _ = writeln!(out);
            }
            Err(e) => {
                let _ = writeln!(out, "Idle CPU and memory: not measured: {e}\n");
            }
        }
        match &o.gate {
            Ok(g) => {
                let _ = writeln!(
                    out,
                    "Worker gate: `WorkerGate::enter` + drop against `tokio::sync::Semaphore::acquire` + drop, {} permits per round, 5 rounds (ns per permit, median (min..max)):\n",
                    g.iterations
                );
                let _ = writeln!(
                    out,
                    "| tasks taking permits | `WorkerGate` | `Semaphore` | ratio (median) |"
                );
                let _ = writeln!(out, "|---|---|---|---|");
                for (tasks, gate, sem) in [(1, g.gate1, g.sem1), (4, g.gate4, g.sem4)] {
                    let f = |s: Option<Stats>| {
                        s.map_or("–".to_owned(), |s| {
                            format!("{:.1} ({:.1}..{:.1})", s.median, s.min, s.max)
                        })
                    };
                    let ratio = gate.zip(sem).map_or("–".to_owned(), |(g, s)| {
                        format!("{:.2}×", g.median / s.median)
                    });
                    let _ = writeln!(out, "| {tasks} | {} | {} | {ratio} |", f(gate), f(sem));
                }
                let _ = writeln!(out);
            }
            Err(e) => {
                let _ = writeln!(out, "Worker gate: not measured: {e}\n");
            }
        }
        match &o.core {
            Ok(rows) => {
                let _ = writeln!(
                    out,
                    "Core inputs per second (`cargo bench -p dramatiq-sentinel-core --bench core_inputs`, same session, 5 runs):\n"
                );
                let _ = writeln!(out, "| mix | inputs/s median | min .. max |");
                let _ = writeln!(out, "|---|---|---|");
                for r in rows {
                    let _ = writeln!(out, "{r}");
                }
                let _ = writeln!(out);
            }
            Err(e) => {
                let _ = writeln!(out, "Core inputs per second: {e}\n");
            }
        }
    }

    /// The targets of issue 6 for our variants with early fencing (the default), met or not,
    /// with the runs that missed them.
    fn targets(&self, out: &mut String) {
        let ours_fenced: Vec<&str> = ["ours-tokio", "ours-smol"]
            .into_iter()
            .filter(|c| {
                clients_of(&self.writers).iter().any(|x| x == c)
                    || clients_of(&self.jobs).iter().any(|x| x == c)
            })
            .collect();
        if ours_fenced.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "## Targets (issue 6), for our default configuration (early fencing on)\n"
        );
        let _ = writeln!(
            out,
            "| target | variant | verdict | values, median (min..max) | why |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        let poll = "the supervisor learns of the promotion from its `ROLE` poll of the \
                    candidate (every 5 ms), then connects to it and verifies it before releasing \
                    work";
        for client in &ours_fenced {
            let label = client_label(client);
            let writer = |scenario: Scenario, f: &dyn Fn(&WriterResult) -> Option<f64>| {
                ok_runs(&self.writers, scenario, client)
                    .0
                    .iter()
                    .map(|r| Sample::new(scenario, f(r), r.load, r.reference.failovers))
                    .collect::<Vec<_>>()
            };
            let jobs = |scenario: Option<Scenario>, f: &dyn Fn(&JobResult) -> Option<f64>| {
                self.jobs
                    .iter()
                    .filter(|(s, c, _)| c == client && scenario.is_none_or(|x| x == *s))
                    .filter_map(|(s, _, r)| {
                        let r = r.as_ref().ok()?;
                        Some(Sample::new(*s, f(r), r.load, r.reference.failovers))
                    })
                    .collect::<Vec<_>>()
            };
            let zero = |x: f64| x == 0.0;
            let within = |x: f64| x <= 10.0;
            let rows: [TargetRow<'_>; 6] = [
                (
                    "graceful: 0 acknowledged writes lost",
                    writer(Scenario::Graceful, &|r| Some(r.figures.lost as f64)),
                    &zero,
                    "",
                ),
                (
                    "graceful: first write on the new master within 10 ms of it becoming writable (probe)",
                    writer(Scenario::Graceful, &|r| r.writable_to_write_ms),
                    &within,
                    poll,
                ),
                (
                    "graceful: 0 jobs run twice",
                    jobs(Some(Scenario::Graceful), &|r| {
                        Some(r.figures.run_twice as f64)
                    }),
                    &zero,
                    "",
                ),
                (
                    "graceful: workers resumed within 10 ms of the new master becoming writable (probe)",
                    jobs(Some(Scenario::Graceful), &|r| r.writable_to_resumed_ms),
                    &within,
                    poll,
                ),
                (
                    "master killed: first write within 10 ms after the first `+switch-master` (negative: before it)",
                    writer(Scenario::Kill, &|r| r.switch_to_write_ms),
                    &within,
                    "",
                ),
                (
                    "no job lost in any scenario",
                    jobs(None, &|r| Some(r.figures.lost as f64)),
                    &zero,
                    "",
                ),
            ];
            for (target, samples, ok, cause) in rows {
                verdict(out, target, &label, &samples, ok, cause);
            }
        }
        let _ = writeln!(out);
    }

    /// Failed runs, second failovers, error samples and every run's values.
    fn details(&self, out: &mut String) {
        let failed: Vec<String> = self
            .writers
            .iter()
            .filter_map(|(s, c, r)| {
                r.as_ref()
                    .err()
                    .map(|e| format!("- writer, {}, {c}: {e}", s.id()))
            })
            .chain(self.jobs.iter().filter_map(|(s, c, r)| {
                r.as_ref()
                    .err()
                    .map(|e| format!("- jobs, {}, {c}: {e}", s.id()))
            }))
            .collect();
        if !failed.is_empty() {
            let _ = writeln!(out, "## Runs that failed (not in the tables)\n");
            for f in failed {
                let _ = writeln!(out, "{}", f.replace('\n', " "));
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(
            out,
            "## Errors the clients surfaced (first distinct messages per scenario and client)\n"
        );
        error_samples(out, &self.writers, "", |r| &r.error_samples);
        error_samples(out, &self.jobs, "jobs, ", |r| &r.error_samples);
        let _ = writeln!(out);
        let _ = writeln!(out, "<details><summary>Every run</summary>\n");
        let _ = writeln!(
            out,
            "Writer runs: scenario, client, load, writes/s, acked, lost, handed back, errors, gap acked/durable (ms), switch→write, writable→write (ms), trigger→signal/writable/switch (ms), failovers, our `SwitchCompleted`.\n"
        );
        let o = |x: Option<f64>| x.map_or("–".to_owned(), num);
        for (s, c, r) in &self.writers {
            if let Ok(r) = r {
                let _ = writeln!(
                    out,
                    "- {} {c}: load {:.2}, {:.0}/s, {} acked, {} lost, {} handed back, {} errors, gaps {}/{}, {} / {}, ref {} / {} / {}, {} failover(s){}",
                    s.id(),
                    r.load,
                    r.rate,
                    r.figures.acked,
                    r.figures.lost,
                    r.handed_back.map_or("–".to_owned(), |n| n.to_string()),
                    r.errors,
                    num(r.figures.ack_gap_ms),
                    num(r.figures.durable_gap_ms),
                    o(r.switch_to_write_ms),
                    o(r.writable_to_write_ms),
                    o(r.reference.signal_ms),
                    o(r.reference.writable_ms),
                    o(r.reference.switch_ms),
                    r.reference.failovers,
                    r.switch_event
                        .as_ref()
                        .map(|e| format!(", `{e}`"))
                        .unwrap_or_default()
                );
            }
        }
        let _ = writeln!(
            out,
            "\nJob runs: scenario, variant, load, produced, lost, run twice, requeued, uncertain pushes, errors, gap (ms), signal→resumed, writable→resumed (ms), failovers, `SwitchCompleted`.\n"
        );
        for (s, c, r) in &self.jobs {
            if let Ok(r) = r {
                let _ = writeln!(
                    out,
                    "- {} {c}: load {:.2}, {} produced, {} lost, {} twice, {} requeued, {} uncertain, {} errors, gap {}, {} / {}, {} failover(s){}",
                    s.id(),
                    r.load,
                    r.figures.produced,
                    r.figures.lost,
                    r.figures.run_twice,
                    r.requeued,
                    r.uncertain,
                    r.errors,
                    num(r.figures.gap_ms),
                    o(r.signal_to_resumed_ms),
                    o(r.writable_to_resumed_ms),
                    r.reference.failovers,
                    r.switch_event
                        .as_ref()
                        .map(|e| format!(", `{e}`"))
                        .unwrap_or_default()
                );
            }
        }
        let _ = writeln!(out, "\n</details>\n");
    }

    /// The whole document.
    pub(crate) fn markdown(&self) -> String {
        let f = &self.facts;
        let mut out = String::new();
        let _ = writeln!(out, "# Failover benchmark\n");
        let _ = writeln!(
            out,
            "Generated by `failover-bench` (`bench/src/`); see issue 6. Do not edit by hand: run it again.\n"
        );
        let _ = writeln!(out, "```\n{}\n```\n", f.command);
        let _ = writeln!(
            out,
            "- date: {}; duration {:.0} min; commit `{}`",
            f.date, f.duration_min, f.commit
        );
        let _ = writeln!(
            out,
            "- machine: {} CPUs (`nproc`), {}; load average at start {}, at end {} (shared machine: other work ran at the same time)",
            f.nproc, f.cpu, f.load_start, f.load_end
        );
        let versions: Vec<String> = f.versions.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "- versions: {}", versions.join(", "));
        let _ = writeln!(
            out,
            "- repetitions: {} per scenario and client{}; cells are median (min..max) over the runs\n",
            f.reps,
            if f.quick { " (`--quick`)" } else { "" }
        );
        let _ = writeln!(out, "{}", METHOD);
        out.push_str(&self.tables());
        self.details(&mut out);
        out
    }
}

/// How the figures are obtained (part of the report).
const METHOD: &str = "## Method

- Each run starts a fresh deployment (the test harness: 3 data nodes, 3 sentinels with quorum 2,
  `down-after-milliseconds` 1000, failover-timeout 6000, all on 127.0.0.1), then an independent
  observer: a `PSUBSCRIBE *` subscriber on every sentinel and, on every data node but the master,
  a probe that tries an `RPUSH` of a marker every 1 ms until one succeeds (the candidate is
  writable). All processes timestamp with `CLOCK_MONOTONIC`.
- The client under test runs as its own process (ours and the `redis` crate's client are this
  binary in child mode; redis-py and ioredis run `bench/bench-peers/writer.py` / `writer.js`).
  Scenarios: `SENTINEL FAILOVER`; `SIGKILL` of the master; `SIGSTOP` of the master for 3 s,
  then `SIGCONT`. A run lasts at least 15 s and until the sentinels agree on a new master and the
  old one is a replica (or dead), plus 2 s; a graceful run therefore lasts about 18 s, because
  Sentinel reconfigures the deposed master only about 11 s after the promotion.
- Writer workload: every 1 ms (lags up to 10 ms are caught up, longer stalls are not) an
  `INCR bench:ctr` then an
  `RPUSH bench:list <seq>`; a sequence number is acknowledged when both succeed. *Acked writes
  lost*: acknowledged numbers missing from the final master's list. *Longest gap*: between
  consecutive acknowledgements (as the application saw them) and between consecutive
  acknowledgements that the final master holds (durable), up to the end of the run. *First
  write on the new master*: the acknowledgement of the first number that follows the probe's
  marker in the final list (everything after the marker was executed by the new master;
  resolution about 1 ms, the probe's interval). Negative times mean before the reference event.
  A second failover (redis/redis#8607, possible at down-after 1000 ms) leaves every figure
  well defined: losses are counted against whichever master is final, and such runs are
  counted in the deployment table.
- Client settings: ours with `command_timeout` 0.5 s in the writer workload (the job workload
  keeps the default 5 s, above its `WAIT 1 2000`), defaults otherwise (early fencing on,
  `ROLE` poll of the candidate every 5 ms); redis-py `Sentinel(..., socket_timeout=0.5)` and
  `master_for(..., socket_timeout=0.5)`, defaults otherwise; ioredis `commandTimeout: 500` and
  `reconnectOnError` for `READONLY` (the documented remedy for a demoted master), with and
  without `failoverDetector: true`; the `redis` crate's `SentinelClient` with 0.5 s connection
  and response timeouts, its connection dropped (and the master asked for again) after any error.
- Job workload (ours only: it needs the worker gate): the driver pushes a backlog of 2000 jobs
  (`WAIT` for both replicas); the child runs 4 workers and a producer of 100 jobs/s through one
  supervisor. A worker takes a gate permit, `LMOVE`s a job to `processing`, works 10 ms,
  `SADD done`, `LREM processing`, retrying the last two until they succeed. A push counts as
  produced once `WAIT 1` confirmed it. After the run the queue is drained; jobs sitting in
  `processing` for 5 s are requeued (a reaper). *Lost*: produced jobs not in `done` on the final
  master; *run twice*: jobs a worker started more than once; *processing gap*: the longest time
  without a job start while jobs were produced; *workers resumed*: our `SwitchCompleted` event.
";
