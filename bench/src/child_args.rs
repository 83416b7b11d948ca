//! The command line of a child process of the benchmark (`failover-bench child <role> ...`):
//! what it does, and with which settings.

use clap::{Args, ValueEnum};
use std::time::Duration;

/// What a child process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Role {
    /// The writer workload through one client.
    Writer,
    /// The job workload: a worker pool and a producer through our supervisor.
    Jobs,
    /// Our supervisor, idle (or a bare runtime with `--client baseline`).
    Idle,
    /// The worker-gate micro-benchmark.
    Gate,
    /// Many supervisors in one process (the fleet benchmark).
    Fleet,
    /// apalis workers on apalis-redis (ours or a `ConnectionManager`).
    Apalis,
    /// The per-command overhead: our master handle and a plain connection, in rounds.
    Commands,
}

/// The arguments of a child process: `child <role> --key value ...`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ChildArgs {
    /// What the child does.
    #[arg(value_enum)]
    pub(crate) role: Role,
    /// The client under test.
    #[arg(long, default_value = "")]
    pub(crate) client: String,
    /// The sentinels, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub(crate) sentinels: Vec<String>,
    /// The monitored master name.
    #[arg(long, default_value = "mymaster")]
    pub(crate) service: String,
    /// The prefix of the keys.
    #[arg(long, default_value = "bench")]
    pub(crate) prefix: String,
    /// Workers of the job workloads.
    #[arg(long, default_value_t = 4)]
    pub(crate) workers: usize,
    /// How long a job works.
    #[arg(long = "job-ms", value_parser = millis, default_value = "10")]
    pub(crate) job_time: Duration,
    /// Writes or jobs per second.
    #[arg(long, default_value_t = 100)]
    pub(crate) rate: u32,
    /// Iterations of a micro-benchmark.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) iterations: u64,
    /// Supervisors in a fleet child.
    #[arg(long, default_value_t = 1)]
    pub(crate) supervisors: usize,
    /// How long a job named `long-*` works.
    #[arg(long = "long-ms", value_parser = millis, default_value = "0")]
    pub(crate) long_time: Duration,
    /// The supervisor drains the workers at each switch (`--drain 1`).
    #[arg(long, action = clap::ArgAction::Set, value_parser = nonzero, default_value = "0")]
    pub(crate) drain: bool,
    /// Sentinel addresses the child cannot reach, each with the dead address it leads to
    /// (`--nat REAL=DEAD`, repeatable): ours maps them (as the sentinels announce them too).
    #[arg(long, value_parser = real_dead)]
    pub(crate) nat: Vec<(String, String)>,
}

fn millis(v: &str) -> Result<Duration, String> {
    v.parse()
        .map(Duration::from_millis)
        .map_err(|_| format!("`{v}` is not a number of milliseconds"))
}

fn nonzero(v: &str) -> Result<bool, String> {
    v.parse::<u64>()
        .map(|n| n != 0)
        .map_err(|_| format!("`{v}` is not a number"))
}

fn real_dead(v: &str) -> Result<(String, String), String> {
    v.split_once('=')
        .map(|(real, dead)| (real.to_owned(), dead.to_owned()))
        .ok_or_else(|| format!("`{v}`: expected REAL=DEAD"))
}
