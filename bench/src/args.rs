//! Command-line options of `failover-bench`, and of the child processes it starts itself.

use super::error::{Result, err};
use std::path::PathBuf;
use std::time::Duration;

/// What `failover-bench --help` prints.
pub const HELP: &str = "\
failover-bench: failover benchmark of dramatiq-sentinel against peer clients, on a real
Redis Sentinel deployment on 127.0.0.1 (3 data nodes, 3 sentinels, down-after 1000 ms).

usage: cargo run --release -p dramatiq-sentinel-bench --bin failover-bench -- [options]

  --quick              1 repetition, graceful and kill only, job workload graceful only,
                       10 s overhead window, no core bench; writes target/BENCHMARKS-quick.md
  --reps N             repetitions of each scenario and client (default 3)
  --scenarios LIST     graceful,kill,freeze,leader-unheard (default: the first three;
                       leader-unheard: writer workload only)
  --clients LIST       writer clients (default all): ours-tokio, ours-tokio-nofence,
                       ours-smol, ours-smol-nofence, redis-py, ioredis, ioredis-detector,
                       redis-rs
  --job-variants LIST  our variants for the job workload (default all four ours-*)
  --skip-writers       no writer workload
  --skip-jobs          no job workload
  --skip-long-jobs     no long-job rows (a 1 s and a 30 s job in flight at the failover,
                       with and without the drain)
  --skip-overhead      no idle CPU/RSS, worker-gate or core measurements
  --skip-commands      no per-command overhead (MasterConnection vs a plain connection)
  --skip-fleet         no fleet runs (many supervisors on one deployment)
  --skip-apalis        no apalis job workload (apalis workers on apalis-redis: ours on tokio
                       and smol, and on a `ConnectionManager` from `redis::sentinel`)
  --only LIST          only these parts: writers,jobs,long-jobs,overhead,commands,fleet,apalis
  --fleet-sizes LIST   supervisors per fleet run (default 1,50,200,500)
  --fleet-per-process N  supervisors per child process in fleet runs (default 50)
  --fleet-scenarios LIST  graceful,kill,kill-busy,sentinel-restart (default all)
  --fleet-tcp-backlog LIST  tcp-backlog of the data nodes in fleet runs, each value a set of
                       runs: numbers or `default` (Redis's 511; the default)
  --command-rounds N   rounds of the per-command overhead (default 5)
  --command-secs S     seconds per client, case and round of the per-command overhead
                       (default 2)
  --skip-core-bench    do not run `cargo bench -p dramatiq-sentinel-core --bench core_inputs`
  --overhead-secs N    idle measurement window in seconds (default 60)
  --out PATH           where to write the report (default BENCHMARKS.md at the repo root)
  --raw DIR            keep every run's raw observations there (JSON lines)
  -h, --help           this text

FAILOVER_BENCH_CHILD_EXE=PATH: the Rust children run that `failover-bench` (e.g. another
commit's build) instead of this one, with this driver and report.

Python (redis-py) and Node (ioredis) peers are installed into bench-peers/ at the repo root
(git-ignored) when missing. Progress goes to stderr; the tables to stdout and the report.
";

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Scenario {
    /// `SENTINEL FAILOVER`.
    Graceful,
    /// The master killed with SIGKILL.
    Kill,
    /// The master frozen (SIGSTOP) for 3 s, then thawed.
    Freeze,
    /// `SENTINEL FAILOVER` led by a sentinel the client cannot reach (its address, configured
    /// and as the other sentinels announce it, leads to a port that closes every connection),
    /// so the client never hears the failover's early signals.
    LeaderUnheard,
}

impl Scenario {
    /// Every scenario, in table order.
    /// Every scenario of a default run, in table order (`leader-unheard` runs when asked for,
    /// with the writer workload only).
    pub(crate) const ALL: [Scenario; 3] = [Scenario::Graceful, Scenario::Kill, Scenario::Freeze];

    /// The id on the command line.
    pub(crate) fn id(self) -> &'static str {
        match self {
            Scenario::Graceful => "graceful",
            Scenario::Kill => "kill",
            Scenario::Freeze => "freeze",
            Scenario::LeaderUnheard => "leader-unheard",
        }
    }

    /// The label in the tables.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Scenario::Graceful => "graceful `SENTINEL FAILOVER`",
            Scenario::Kill => "master SIGKILL",
            Scenario::Freeze => "master frozen 3 s",
            Scenario::LeaderUnheard => "graceful, led by a sentinel the client cannot reach",
        }
    }

    fn parse(id: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .chain([Scenario::LeaderUnheard])
            .find(|s| s.id() == id)
            .ok_or_else(|| {
                err(format!(
                    "unknown scenario `{id}` (graceful, kill, freeze, leader-unheard)"
                ))
            })
    }
}

/// Every writer client id, in table order.
pub(crate) const CLIENTS: [&str; 8] = [
    "ours-tokio",
    "ours-tokio-nofence",
    "ours-smol",
    "ours-smol-nofence",
    "redis-py",
    "ioredis",
    "ioredis-detector",
    "redis-rs",
];

/// The driver's options.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) quick: bool,
    pub(crate) reps: usize,
    pub(crate) scenarios: Vec<Scenario>,
    pub(crate) job_scenarios: Vec<Scenario>,
    pub(crate) clients: Vec<String>,
    pub(crate) job_variants: Vec<String>,
    pub(crate) writers: bool,
    pub(crate) jobs: bool,
    pub(crate) long_jobs: bool,
    pub(crate) overhead: bool,
    pub(crate) commands: bool,
    pub(crate) fleet: bool,
    /// The apalis job workload (issue 14).
    pub(crate) apalis: bool,
    pub(crate) fleet_sizes: Vec<usize>,
    /// Supervisors per child process of the fleet runs.
    pub(crate) fleet_per_process: usize,
    /// The fleet scenarios to run.
    pub(crate) fleet_scenarios: Vec<super::fleet::FleetScenario>,
    pub(crate) fleet_backlogs: Vec<Option<u32>>,
    pub(crate) command_rounds: usize,
    /// How long each client runs each case per round of the per-command overhead.
    pub(crate) command_time: Duration,
    pub(crate) core_bench: bool,
    pub(crate) overhead_window: Duration,
    pub(crate) out: Option<PathBuf>,
    pub(crate) raw: Option<PathBuf>,
    /// The arguments as given, for the report.
    pub(crate) given: Vec<String>,
}

/// What the command line asks for.
#[derive(Debug)]
pub(crate) enum Command {
    /// Run the benchmark.
    Bench(Options),
    /// Print [`HELP`].
    Help,
    /// Run as a child process of the benchmark.
    Child(ChildArgs),
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses the command line (without the program name).
pub(crate) fn parse(args: Vec<String>) -> Result<Command> {
    if args.first().map(String::as_str) == Some("child") {
        return ChildArgs::parse(&args[1..]).map(Command::Child);
    }
    let mut o = Options {
        quick: false,
        reps: 3,
        scenarios: Scenario::ALL.to_vec(),
        job_scenarios: Scenario::ALL.to_vec(),
        clients: CLIENTS.iter().map(|s| (*s).to_owned()).collect(),
        job_variants: super::ours::Ours::ALL
            .iter()
            .map(|o| o.id().to_owned())
            .collect(),
        writers: true,
        jobs: true,
        long_jobs: true,
        overhead: true,
        commands: true,
        fleet: true,
        apalis: true,
        fleet_sizes: super::fleet::SIZES.to_vec(),
        fleet_per_process: super::fleet::PER_PROCESS,
        fleet_scenarios: super::fleet::FleetScenario::ALL.to_vec(),
        fleet_backlogs: vec![None],
        command_rounds: 5,
        command_time: Duration::from_secs(2),
        core_bench: true,
        overhead_window: Duration::from_secs(60),
        out: None,
        raw: None,
        given: args.clone(),
    };
    let (mut reps, mut scenarios, mut window) = (None, None, None);
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| err(format!("{name} needs a value")))
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--quick" => o.quick = true,
            "--reps" => {
                let v = value("--reps")?;
                let n: usize = v
                    .parse()
                    .map_err(|_| err(format!("--reps {v}: not a number")))?;
                if n == 0 {
                    return Err(err("--reps must be at least 1"));
                }
                reps = Some(n);
            }
            "--scenarios" => {
                scenarios = Some(
                    list(&value("--scenarios")?)
                        .iter()
                        .map(|s| Scenario::parse(s))
                        .collect::<Result<Vec<_>>>()?,
                );
            }
            "--clients" => {
                let clients = list(&value("--clients")?);
                if let Some(bad) = clients.iter().find(|c| !CLIENTS.contains(&c.as_str())) {
                    return Err(err(format!("unknown client `{bad}`; see --help")));
                }
                o.clients = clients;
            }
            "--job-variants" => {
                let variants = list(&value("--job-variants")?);
                if let Some(bad) = variants
                    .iter()
                    .find(|v| super::ours::Ours::from_id(v).is_none())
                {
                    return Err(err(format!("unknown job variant `{bad}`; see --help")));
                }
                o.job_variants = variants;
            }
            "--skip-writers" => o.writers = false,
            "--skip-jobs" => o.jobs = false,
            "--skip-long-jobs" => o.long_jobs = false,
            "--skip-overhead" => o.overhead = false,
            "--skip-commands" => o.commands = false,
            "--skip-fleet" => o.fleet = false,
            "--skip-apalis" => o.apalis = false,
            "--only" => {
                let parts = list(&value("--only")?);
                let known = [
                    "writers",
                    "jobs",
                    "long-jobs",
                    "overhead",
                    "commands",
                    "fleet",
                    "apalis",
                ];
                if let Some(bad) = parts.iter().find(|p| !known.contains(&p.as_str())) {
                    return Err(err(format!("unknown part `{bad}` (one of {known:?})")));
                }
                let has = |p: &str| parts.iter().any(|x| x == p);
                (o.writers, o.jobs, o.overhead) = (has("writers"), has("jobs"), has("overhead"));
                o.long_jobs = has("long-jobs");
                (o.commands, o.fleet) = (has("commands"), has("fleet"));
                o.apalis = has("apalis");
            }
            "--fleet-sizes" => {
                o.fleet_sizes = list(&value("--fleet-sizes")?)
                    .iter()
                    .map(|v| match v.parse::<usize>() {
                        Ok(n) if n > 0 => Ok(n),
                        _ => Err(err(format!("--fleet-sizes: `{v}` is not a count above 0"))),
                    })
                    .collect::<Result<_>>()?;
            }
            "--fleet-per-process" => {
                let v = value("--fleet-per-process")?;
                o.fleet_per_process = match v.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(err(format!("--fleet-per-process {v}: not a count above 0"))),
                };
            }
            "--fleet-scenarios" => {
                o.fleet_scenarios = list(&value("--fleet-scenarios")?)
                    .iter()
                    .map(|v| {
                        super::fleet::FleetScenario::from_id(v).ok_or_else(|| {
                            err(format!(
                                "--fleet-scenarios: unknown `{v}` (graceful, kill, kill-busy, sentinel-restart)"
                            ))
                        })
                    })
                    .collect::<Result<_>>()?;
            }
            "--fleet-tcp-backlog" => {
                o.fleet_backlogs = list(&value("--fleet-tcp-backlog")?)
                    .iter()
                    .map(|v| match v.as_str() {
                        "default" => Ok(None),
                        _ => v.parse().map(Some).map_err(|_| {
                            err(format!("--fleet-tcp-backlog: `{v}` is not a number"))
                        }),
                    })
                    .collect::<Result<_>>()?;
            }
            "--command-rounds" => {
                let v = value("--command-rounds")?;
                o.command_rounds = match v.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(err(format!("--command-rounds {v}: not a count above 0"))),
                };
            }
            "--command-secs" => {
                let v = value("--command-secs")?;
                o.command_time = match v.parse::<f64>() {
                    Ok(s) if s > 0.0 && s.is_finite() => Duration::from_secs_f64(s),
                    _ => return Err(err(format!("--command-secs {v}: not a duration above 0"))),
                };
            }
            "--skip-core-bench" => o.core_bench = false,
            "--overhead-secs" => {
                let v = value("--overhead-secs")?;
                let n: u64 = v
                    .parse()
                    .map_err(|_| err(format!("--overhead-secs {v}: not a number")))?;
                window = Some(Duration::from_secs(n.max(1)));
            }
            "--out" => o.out = Some(PathBuf::from(value("--out")?)),
            "--raw" => o.raw = Some(PathBuf::from(value("--raw")?)),
            other => return Err(err(format!("unknown option `{other}`; see --help"))),
        }
    }
    if o.quick {
        o.reps = 1;
        o.scenarios = vec![Scenario::Graceful, Scenario::Kill];
        o.job_scenarios = vec![Scenario::Graceful];
        o.overhead_window = Duration::from_secs(10);
        o.core_bench = false;
        o.fleet_sizes = vec![1, 50];
        o.command_rounds = 1;
    }
    if let Some(n) = reps {
        o.reps = n;
    }
    if let Some(s) = scenarios {
        // The job workload's children are not cut off from any sentinel.
        o.job_scenarios = s
            .iter()
            .copied()
            .filter(|s| *s != Scenario::LeaderUnheard)
            .collect();
        o.scenarios = s;
    }
    if let Some(w) = window {
        o.overhead_window = w;
    }
    Ok(Command::Bench(o))
}

/// What a child process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone)]
pub(crate) struct ChildArgs {
    pub(crate) role: Role,
    pub(crate) client: String,
    pub(crate) sentinels: Vec<String>,
    pub(crate) service: String,
    pub(crate) prefix: String,
    pub(crate) workers: usize,
    pub(crate) job_time: Duration,
    pub(crate) rate: u32,
    pub(crate) iterations: u64,
    /// Supervisors in a fleet child.
    pub(crate) supervisors: usize,
    /// How long a job named `long-*` works.
    pub(crate) long_time: Duration,
    /// The supervisor drains the workers at each switch.
    pub(crate) drain: bool,
    /// Sentinel addresses the child cannot reach, each with the dead address it leads to
    /// (`--nat REAL=DEAD`, repeatable): ours maps them (as the sentinels announce them too).
    pub(crate) nat: Vec<(String, String)>,
}

impl ChildArgs {
    fn parse(args: &[String]) -> Result<Self> {
        let role = match args.first().map(String::as_str) {
            Some("writer") => Role::Writer,
            Some("jobs") => Role::Jobs,
            Some("idle") => Role::Idle,
            Some("gate") => Role::Gate,
            Some("fleet") => Role::Fleet,
            Some("apalis") => Role::Apalis,
            Some("commands") => Role::Commands,
            other => return Err(err(format!("unknown child role {other:?}"))),
        };
        let mut c = ChildArgs {
            role,
            client: String::new(),
            sentinels: Vec::new(),
            service: "mymaster".to_owned(),
            prefix: "bench".to_owned(),
            workers: 4,
            job_time: Duration::from_millis(10),
            rate: 100,
            iterations: 1_000_000,
            supervisors: 1,
            long_time: Duration::ZERO,
            drain: false,
            nat: Vec::new(),
        };
        let mut rest = args[1..].iter();
        while let Some(key) = rest.next() {
            let value = rest
                .next()
                .ok_or_else(|| err(format!("{key} needs a value")))?;
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| err(format!("{key} {value}: not a number")))
            };
            match key.as_str() {
                "--client" => c.client = value.clone(),
                "--sentinels" => c.sentinels = list(value),
                "--nat" => {
                    let (real, dead) = value
                        .split_once('=')
                        .ok_or_else(|| err(format!("--nat {value}: expected REAL=DEAD")))?;
                    c.nat.push((real.to_owned(), dead.to_owned()));
                }
                "--service" => c.service = value.clone(),
                "--prefix" => c.prefix = value.clone(),
                "--workers" => c.workers = number()? as usize,
                "--job-ms" => c.job_time = Duration::from_millis(number()?),
                "--rate" => c.rate = number()? as u32,
                "--iterations" => c.iterations = number()?,
                "--supervisors" => c.supervisors = number()? as usize,
                "--long-ms" => c.long_time = Duration::from_millis(number()?),
                "--drain" => c.drain = number()? != 0,
                other => return Err(err(format!("unknown child option `{other}`"))),
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn quick_mode_and_overrides() {
        let Ok(Command::Bench(o)) = parse(args("--quick --reps 2")) else {
            panic!("parses");
        };
        assert_eq!(o.reps, 2);
        assert_eq!(o.scenarios, vec![Scenario::Graceful, Scenario::Kill]);
        assert!(!o.core_bench);
        let Ok(Command::Bench(o)) = parse(args("--scenarios freeze --clients redis-py")) else {
            panic!("parses");
        };
        assert_eq!(o.scenarios, vec![Scenario::Freeze]);
        assert_eq!(o.job_scenarios, vec![Scenario::Freeze]);
        assert_eq!(o.clients, vec!["redis-py".to_owned()]);
        assert!(parse(args("--clients nope")).is_err());
        assert!(parse(args("--reps 0")).is_err());
        assert!(matches!(parse(args("-h")), Ok(Command::Help)));
    }

    #[test]
    fn child_arguments() {
        let Ok(Command::Child(c)) = parse(args(
            "child writer --client ours-smol --sentinels 127.0.0.1:1,127.0.0.1:2 --service s",
        )) else {
            panic!("parses");
        };
        assert_eq!(c.role, Role::Writer);
        assert_eq!(c.sentinels.len(), 2);
        assert_eq!(c.service, "s");
        assert!(parse(args("child nope")).is_err());
    }
}
