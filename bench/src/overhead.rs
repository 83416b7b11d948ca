//! Overhead figures: idle CPU and memory of a supervisor watching 3 sentinels (read from
//! `/proc`, against a bare runtime as baseline), the worker gate against a bare
//! `tokio::sync::Semaphore` permit, and the core's inputs per second (its own benchmark).

use super::child::Child;
use super::error::{Result, err};
use super::metrics::{Stats, stats};
use super::run::{Ctx, deployment};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// One idle process over the window.
#[derive(Debug, Clone)]
pub(crate) struct Idle {
    pub(crate) label: &'static str,
    /// CPU time over the window as a percentage of one core.
    pub(crate) cpu_pct: f64,
    /// Resident memory at the end, KiB.
    pub(crate) rss_kib: u64,
    /// Largest resident memory sampled, KiB.
    pub(crate) rss_max_kib: u64,
    /// Threads at the end.
    pub(crate) threads: u64,
}

/// The worker-gate micro-benchmark, ns per permit over 5 rounds.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    pub(crate) gate1: Option<Stats>,
    pub(crate) sem1: Option<Stats>,
    pub(crate) gate4: Option<Stats>,
    pub(crate) sem4: Option<Stats>,
    pub(crate) iterations: u64,
}

/// Everything measured here.
#[derive(Debug, Clone)]
pub(crate) struct Overhead {
    pub(crate) window: Duration,
    pub(crate) idle: Result<Vec<Idle>, String>,
    pub(crate) gate: Result<Gate, String>,
    /// The core benchmark's table rows, or why there are none.
    pub(crate) core: Result<Vec<String>, String>,
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU time of a process in ns: the sum of its threads' `schedstat` run time (ns precision),
/// or utime + stime from `stat` (clock ticks) where schedstat is unavailable.
pub(crate) fn cpu_ns(pid: u32) -> Result<u64> {
    let mut total = 0_u64;
    let mut any = false;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let ran = std::fs::read_to_string(task.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
            if let Some(ns) = ran {
                total += ns;
                any = true;
            }
        }
    }
    if any {
        return Ok(total);
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start at field 3.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| err("unexpected /proc/<pid>/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state (field 3).
    Ok(((num(11) + num(12)) as f64 / clock_ticks() * 1e9) as u64)
}

/// A `/proc/<pid>/status` value in its unit (kB for memory).
fn status_value(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn measure_idle(ctx: &Ctx, window: Duration) -> Result<Vec<Idle>> {
    let d = deployment()?;
    let which = [
        ("ours-tokio", "supervisor on tokio (3 sentinels)"),
        ("ours-smol", "supervisor on smol (3 sentinels)"),
        ("baseline-tokio", "baseline: bare tokio runtime"),
        ("baseline-smol", "baseline: bare smol block_on"),
    ];
    let mut children = Vec::new();
    for (client, label) in which {
        let mut child = Child::spawn(
            &format!("idle-{client}"),
            ctx.rust_child("idle", client, &d),
            &ctx.logs,
        )?;
        child.wait_ready(Duration::from_secs(30))?;
        children.push((label, child));
    }
    // Let startup work (discovery, subscriptions, learning sentinels) settle.
    std::thread::sleep(Duration::from_secs(5));
    let before: Vec<u64> = children
        .iter()
        .map(|(_, c)| cpu_ns(c.pid()))
        .collect::<Result<_>>()?;
    let mut rss_max = vec![0_u64; children.len()];
    let steps = window.as_secs().max(1);
    for _ in 0..steps {
        std::thread::sleep(Duration::from_secs(1));
        for (i, (_, c)) in children.iter().enumerate() {
            rss_max[i] = rss_max[i].max(status_value(c.pid(), "VmRSS:"));
        }
    }
    let mut out = Vec::new();
    for (i, (label, c)) in children.iter().enumerate() {
        let used = cpu_ns(c.pid())?.saturating_sub(before[i]) as f64 / 1e9;
        out.push(Idle {
            label,
            cpu_pct: used / steps as f64 * 100.0,
            rss_kib: status_value(c.pid(), "VmRSS:"),
            rss_max_kib: rss_max[i],
            threads: status_value(c.pid(), "Threads:"),
        });
    }
    for (_, c) in children {
        let _ = c.finish("stop", Duration::from_secs(10));
    }
    Ok(out)
}

fn measure_gate(ctx: &Ctx, iterations: u64) -> Result<Gate> {
    let d = deployment()?;
    let mut cmd = ctx.rust_child("gate", "ours-tokio", &d);
    cmd.arg("--iterations").arg(iterations.to_string());
    let child = Child::spawn("gate", cmd, &ctx.logs)?;
    let lines = child.finish("", Duration::from_secs(300))?;
    let result = lines
        .iter()
        .find(|v| v.get("gate1").is_some())
        .ok_or_else(|| err("the gate benchmark reported nothing"))?;
    let s = |k: &str| {
        let v: Vec<f64> = result
            .get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        stats(&v)
    };
    Ok(Gate {
        gate1: s("gate1"),
        sem1: s("sem1"),
        gate4: s("gate4"),
        sem4: s("sem4"),
        iterations: result
            .get("iterations")
            .and_then(Value::as_u64)
            .unwrap_or(iterations),
    })
}

/// Runs the core benchmark (`cargo bench -p dramatiq-sentinel-core --bench core_inputs`) and
/// returns its table rows.
fn core_bench(root: &Path) -> Result<Vec<String>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("failover-bench: running cargo bench -p dramatiq-sentinel-core --bench core_inputs");
    let out = Command::new(cargo)
        .args([
            "bench",
            "-p",
            "dramatiq-sentinel-core",
            "--bench",
            "core_inputs",
        ])
        .current_dir(root)
        .output()?;
    if !out.status.success() {
        return Err(err(format!(
            "cargo bench failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )));
    }
    let rows: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("| steady") || l.starts_with("| failover"))
        .map(str::to_owned)
        .collect();
    if rows.is_empty() {
        return Err(err("the core benchmark printed no table"));
    }
    Ok(rows)
}

/// Measures every overhead figure.
pub(crate) fn measure(
    ctx: &Ctx,
    root: &Path,
    window: Duration,
    gate_iterations: u64,
    run_core: bool,
) -> Overhead {
    eprintln!(
        "failover-bench: overhead: idle processes for {} s",
        window.as_secs()
    );
    let idle = measure_idle(ctx, window).map_err(|e| e.to_string());
    eprintln!("failover-bench: overhead: worker gate vs semaphore");
    let gate = measure_gate(ctx, gate_iterations).map_err(|e| e.to_string());
    let core = if run_core {
        core_bench(root).map_err(|e| e.to_string())
    } else {
        Err("not run (--quick or --skip-core-bench); run `cargo bench -p dramatiq-sentinel-core --bench core_inputs`".to_owned())
    };
    Overhead {
        window,
        idle,
        gate,
        core,
    }
}
