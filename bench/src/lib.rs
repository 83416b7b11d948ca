//! `failover-bench`: what a failover costs writes and jobs, for our supervisor and for the
//! clients people use instead, measured on a real Redis Sentinel deployment in one run
//! (issue 6). Not a test: a command that prints markdown tables and writes `BENCHMARKS.md`.
//!
//! ```text
//! cargo run --release -p dramatiq-sentinel-bench --bin failover-bench            # full run
//! cargo run --release -p dramatiq-sentinel-bench --bin failover-bench -- --quick # development
//! ```
//!
//! # How it works
//! - The driver ([`main`]) starts, for every run, a fresh harness deployment (3 data nodes,
//!   3 sentinels, down-after 1000 ms) and an independent observer (`observer`): a subscriber on
//!   every sentinel and a write probe on every candidate.
//! - The client under test is a child process reporting JSON lines with `CLOCK_MONOTONIC`
//!   timestamps: our supervisor (tokio or smol, early fencing on or off) and the `redis`
//!   crate's `sentinel::SentinelClient` are this binary in child mode (`writer`, `jobs`);
//!   redis-py and ioredis run the scripts of `bench/bench-peers/`, with packages installed
//!   into the git-ignored `bench-peers/` when missing (`peers`).
//! - Each scenario (graceful `SENTINEL FAILOVER`, master SIGKILL, master frozen 3 s) is
//!   triggered in the middle of the workload (`run`); figures are computed against the final
//!   master (`metrics`) and summarised as median (min..max) over the repetitions (`report`).
//! - Overhead (`overhead`): idle CPU and RSS of a supervisor watching 3 sentinels, the worker
//!   gate against a bare semaphore permit, and the core benchmark's inputs per second.

mod apalis;
mod apalis_report;
mod args;
mod child;
mod child_args;
mod clock;
mod commands;
mod emit;
mod error;
mod facts;
mod fleet;
mod fleet_child;
mod floor;
mod idle;
mod jobs;
mod metrics;
mod observer;
mod ours;
mod overhead;
mod peers;
mod report;
mod run;
mod scale_report;
mod scenario;
mod tables;
mod writer;

pub use error::{BenchError, Result};
pub use floor::floor_main;

use args::{Command, Options};
use child_args::Role;
use facts::Facts;
use report::Report;
use run::Ctx;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Runs `failover-bench` with the command-line arguments `args` (without the program name);
/// returns 0 when the report was written (or the help printed), 1 on an error, 2 on bad
/// options.
pub fn main(args: Vec<String>) -> ExitCode {
    let command = match args::parse(args) {
        Ok(c) => c,
        Err(e) => {
            // The help goes to stdout (exit 0), a usage error to stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let result = match command {
        Command::Child(c) => match c.role {
            Role::Writer => writer::run(&c),
            Role::Jobs => jobs::run(&c),
            Role::Idle => idle::run_idle(&c),
            Role::Gate => idle::run_gate(&c),
            Role::Fleet => fleet_child::run(&c),
            Role::Apalis => apalis::run_child(&c),
            Role::Commands => commands::run_child(&c),
        },
        Command::Bench(o) => bench(&o),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("failover-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root (the workspace directory).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `YYYY-MM-DD HH:MM UTC` of now.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The version of a package in the workspace's `Cargo.lock`.
fn locked_version(root: &Path, package: &str) -> Option<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).ok()?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == format!("name = \"{package}\"") {
            let version = lines.next()?.trim().strip_prefix("version = ")?;
            return Some(version.trim_matches('"').to_owned());
        }
    }
    None
}

/// Ends a run's progress line on stderr: its figures, or why it failed.
fn outcome<T>(result: &std::result::Result<T, String>, figures: impl Fn(&T) -> String) {
    match result {
        Ok(r) => eprintln!("{}", figures(r)),
        Err(e) => eprintln!("failed: {e}"),
    }
}

fn bench(o: &Options) -> Result<()> {
    let started = Instant::now();
    let root = root();
    let mut facts = Facts {
        command: std::env::var("FAILOVER_BENCH_CHILD_EXE")
            .ok()
            .map(|exe| format!("FAILOVER_BENCH_CHILD_EXE={exe}"))
            .into_iter()
            .chain(std::iter::once(
                "cargo run --release -p dramatiq-sentinel-bench --bin failover-bench".to_owned(),
            ))
            .chain((!o.given.is_empty()).then(|| format!("-- {}", o.given.join(" "))))
            .collect::<Vec<_>>()
            .join(" "),
        date: utc_now(),
        commit: command_output("git", &["describe", "--always", "--dirty"])
            .unwrap_or_else(|| "?".to_owned()),
        nproc: std::thread::available_parallelism().map_or(0, usize::from),
        cpu: cpu_model(),
        load_start: loadavg(),
        reps: o.reps,
        quick: o.quick,
        ..Facts::default()
    };
    eprintln!(
        "failover-bench: load average {} on {} CPUs",
        facts.load_start, facts.nproc
    );
    let want_py = o.writers && o.clients.iter().any(|c| c == "redis-py");
    let want_node = o.writers && o.clients.iter().any(|c| c.starts_with("ioredis"));
    let peers = if want_py || want_node {
        Some(peers::ensure(&root, want_py, want_node)?)
    } else {
        None
    };
    let logs = tempfile::Builder::new()
        .prefix("failover-bench-")
        .tempdir()?;
    // The children run a copy of this executable: a rebuild of the workspace during the
    // benchmark (which replaces the file) must not break or change them.
    let exe = logs.path().join("failover-bench");
    // `FAILOVER_BENCH_CHILD_EXE`: the Rust children run that build instead (another commit's
    // `failover-bench`, to compare its clients with the same driver and reports).
    let child_exe = std::env::var_os("FAILOVER_BENCH_CHILD_EXE").map(PathBuf::from);
    if let Some(other) = &child_exe {
        eprintln!("failover-bench: children run {}", other.display());
    }
    std::fs::copy(child_exe.unwrap_or(std::env::current_exe()?), &exe)?;
    let ctx = Ctx {
        exe,
        peers: peers.clone(),
        logs: logs.path().to_path_buf(),
        raw: o.raw.clone(),
        runs: std::cell::Cell::new(0),
    };

    let mut writers = Vec::new();
    let mut jobs = Vec::new();
    for rep in 1..=o.reps {
        let progress = |workload: &str, scenario: scenario::Scenario, client: &str| {
            eprint!(
                "failover-bench: [{rep}/{}] {workload}, {}, {client} (load {:.2}) ... ",
                o.reps,
                scenario.id(),
                run::load1()
            );
        };
        if o.writers {
            for &scenario in &o.scenarios {
                for client in &o.clients {
                    progress("writer", scenario, client);
                    let result = run::writer_run(&ctx, scenario, client).map_err(|e| e.to_string());
                    outcome(&result, |r| {
                        format!(
                            "{} acked, {} lost, {} errors, gap {:.0} ms",
                            r.figures.acked, r.figures.lost, r.errors, r.figures.durable_gap_ms
                        )
                    });
                    writers.push((scenario, client.clone(), result));
                }
            }
        }
        if o.jobs {
            for &scenario in &o.job_scenarios {
                for variant in &o.job_variants {
                    progress("jobs", scenario, variant);
                    let result =
                        run::jobs_run(&ctx, scenario, variant, None).map_err(|e| e.to_string());
                    outcome(&result, |r| {
                        format!(
                            "{} produced, {} lost, {} run twice, gap {:.0} ms",
                            r.figures.produced,
                            r.figures.lost,
                            r.figures.run_twice,
                            r.figures.gap_ms
                        )
                    });
                    jobs.push((scenario, variant.clone(), result));
                }
            }
        }
    }
    let mut long_jobs = Vec::new();
    if o.long_jobs {
        for rep in 1..=o.reps {
            for &scenario in &o.job_scenarios {
                for long in run::LONG_JOBS {
                    eprint!(
                        "failover-bench: [{rep}/{}] long job of {} s{}, {} (load {:.2}) ... ",
                        o.reps,
                        long.time.as_secs(),
                        if long.drain { ", drain" } else { "" },
                        scenario.id(),
                        run::load1()
                    );
                    let result = run::jobs_run(&ctx, scenario, "ours-tokio", Some(long))
                        .map_err(|e| e.to_string());
                    outcome(&result, |r| {
                        format!(
                            "{} lost, {} run twice, gap {:.0} ms, new job {:.0} ms after writable",
                            r.figures.lost,
                            r.figures.run_twice,
                            r.figures.gap_ms,
                            r.writable_to_new_job_ms.unwrap_or(f64::NAN)
                        )
                    });
                    long_jobs.push((scenario, long, result));
                }
            }
        }
    }
    let mut apalis_runs = Vec::new();
    if o.apalis {
        for rep in 1..=o.reps {
            for &scenario in &o.job_scenarios {
                for variant in apalis::VARIANTS {
                    eprint!(
                        "failover-bench: [{rep}/{}] apalis, {}, {variant} (load {:.2}) ... ",
                        o.reps,
                        scenario.id(),
                        run::load1()
                    );
                    let result =
                        apalis::apalis_run(&ctx, scenario, variant).map_err(|e| e.to_string());
                    outcome(&result, |r| {
                        format!(
                            "{} produced, {} lost, {} run twice, {} stranded, {} restarts, gap {:.0} ms",
                            r.figures.produced,
                            r.figures.lost,
                            r.figures.run_twice,
                            r.stranded,
                            r.restarts,
                            r.figures.gap_ms
                        )
                    });
                    apalis_runs.push((scenario, variant.to_owned(), result));
                }
            }
        }
    }
    let fleet = o.fleet.then(|| {
        let mut runs = Vec::new();
        for rep in 1..=o.reps {
            for &backlog in &o.fleet_backlogs {
                for &n in &o.fleet_sizes {
                    for scenario in o
                        .fleet_scenarios
                        .iter()
                        .copied()
                        .filter(|s| s.runs_with(n))
                    {
                        eprint!(
                            "failover-bench: [{rep}/{}] fleet of {n}, {}, tcp-backlog {} (load {:.2}) ... ",
                            o.reps,
                            scenario.label(),
                            backlog.map_or("default".to_owned(), |b| b.to_string()),
                            run::load1()
                        );
                        let result = fleet::fleet_run(&ctx, n, o.fleet_per_process, scenario, backlog)
                            .map_err(|e| e.to_string());
                        outcome(&result, |r| {
                            let all = r.resumed_ms.iter().chain(&r.reconnect_ms);
                            let worst = all.fold(0.0, |a: f64, &b| a.max(b));
                            format!("{} missing, worst {worst:.0} ms", r.missing)
                        });
                        runs.push((n, scenario, result));
                    }
                }
            }
        }
        runs
    });
    let commands = o.commands.then(|| {
        eprint!(
            "failover-bench: per-command overhead, {} rounds ",
            o.command_rounds
        );
        let result =
            commands::measure(&ctx, o.command_rounds, o.command_time).map_err(|e| e.to_string());
        outcome(&result, |_| " done".to_owned());
        result
    });
    let overhead = o.overhead.then(|| {
        let iterations = if o.quick { 200_000 } else { 2_000_000 };
        overhead::measure(&ctx, &root, o.overhead_window, iterations, o.core_bench)
    });

    let probe = run::deployment()?;
    facts.versions.push((
        probe.server_binary().kind().name().into(),
        probe.redis_version().to_owned(),
    ));
    drop(probe);
    facts.versions.push((
        "redis crate".into(),
        locked_version(&root, "redis").unwrap_or_else(|| "?".into()),
    ));
    if let Some(p) = &peers {
        facts.versions.extend(p.versions.iter().cloned());
    }
    facts.versions.push((
        "Rust".into(),
        command_output("rustc", &["--version"]).unwrap_or_else(|| "?".into()),
    ));
    facts.load_end = loadavg();
    facts.duration_min = started.elapsed().as_secs_f64() / 60.0;

    let report = Report {
        facts,
        writers,
        jobs,
        long_jobs,
        apalis: apalis_runs,
        overhead,
        commands,
        fleet,
    };
    print!("{}", report.tables());
    let out = o.out.clone().unwrap_or_else(|| {
        if o.quick {
            root.join("target/BENCHMARKS-quick.md")
        } else {
            root.join("BENCHMARKS.md")
        }
    });
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Sections other benchmarks write (the Python one) follow KEEP_MARKER: kept as they are.
    let kept = std::fs::read_to_string(&out)
        .ok()
        .and_then(|old| old.find(KEEP_MARKER).map(|at| old[at..].to_owned()))
        .unwrap_or_default();
    let mut markdown = report.markdown();
    if !kept.is_empty() {
        markdown.push('\n');
        markdown.push_str(&kept);
    }
    std::fs::write(&out, markdown)?;
    eprintln!("failover-bench: wrote {}", out.display());
    Ok(())
}

/// Where the sections of other benchmarks begin in `BENCHMARKS.md`; a new report keeps them.
const KEEP_MARKER: &str =
    "<!-- sections below: written by other benchmarks, kept by failover-bench -->";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_lockfile_versions() {
        let d = utc_now();
        assert!(d.ends_with(" UTC") && d.len() == 20, "{d}");
        assert!(locked_version(&root(), "redis").is_some());
    }
}
