//! Command-line options of `failover-bench`, and of the child processes it starts itself
//! (`failover-bench child <role> ...`, hidden from the help).

use super::child_args::ChildArgs;
use super::fleet::FleetScenario;
use super::ours::Ours;
use super::scenario::Scenario;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// What `failover-bench --help` says before the options.
const ABOUT: &str = "\
Failover benchmark of dramatiq-sentinel against peer clients, on a real Redis Sentinel
deployment on 127.0.0.1 (3 data nodes, 3 sentinels, down-after 1000 ms).

Run it as: cargo run --release -p dramatiq-sentinel-bench --bin failover-bench -- [options]";

/// What `failover-bench --help` says after the options.
const AFTER_HELP: &str = "\
FAILOVER_BENCH_CHILD_EXE=PATH: the Rust children run that `failover-bench` (e.g. another
commit's build) instead of this one, with this driver and report.

Python (redis-py) and Node (ioredis) peers are installed into bench-peers/ at the repo root
(git-ignored) when missing. Progress goes to stderr; the tables to stdout and the report.";

/// The parts of a run `--only` picks from.
const PARTS: [&str; 7] = [
    "writers",
    "jobs",
    "long-jobs",
    "overhead",
    "commands",
    "fleet",
    "apalis",
];

/// The command line of `failover-bench`: the benchmark's options, or a child process.
#[derive(Debug, Parser)]
#[command(
    name = "failover-bench",
    about = "Failover benchmark of dramatiq-sentinel against peer clients",
    long_about = ABOUT,
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    child: Option<Child>,
    #[command(flatten)]
    bench: BenchArgs,
}

/// The child processes the benchmark starts (not for people).
#[derive(Debug, Subcommand)]
enum Child {
    /// A child process of the benchmark.
    #[command(hide = true)]
    Child(ChildArgs),
}

/// The benchmark's options as given; [`BenchArgs::options`] resolves them.
#[derive(Debug, Args)]
struct BenchArgs {
    /// 1 repetition, graceful and kill only, job workload graceful only, 10 s overhead window,
    /// no core bench, fleet sizes 1,50, 1 command round; writes target/BENCHMARKS-quick.md
    #[arg(long)]
    quick: bool,
    /// Repetitions of each scenario and client [default: 3]
    #[arg(long, value_name = "N", value_parser = count)]
    reps: Option<usize>,
    /// Scenarios: graceful, kill, freeze, leader-unheard [default: the first three;
    /// leader-unheard: writer workload only]
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = Scenario::parse)]
    scenarios: Option<Vec<Scenario>>,
    /// Writer clients [default: all]
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = CLIENTS)]
    clients: Option<Vec<String>>,
    /// Our variants for the job workload [default: all four ours-*]
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = job_variant)]
    job_variants: Option<Vec<String>>,
    /// No writer workload
    #[arg(long)]
    skip_writers: bool,
    /// No job workload
    #[arg(long)]
    skip_jobs: bool,
    /// No long-job rows (a 1 s and a 30 s job in flight at the failover, with and without the
    /// drain)
    #[arg(long)]
    skip_long_jobs: bool,
    /// No idle CPU/RSS, worker-gate or core measurements
    #[arg(long)]
    skip_overhead: bool,
    /// No per-command overhead (MasterConnection vs a plain connection)
    #[arg(long)]
    skip_commands: bool,
    /// No fleet runs (many supervisors on one deployment)
    #[arg(long)]
    skip_fleet: bool,
    /// No apalis job workload (apalis workers on apalis-redis: ours on tokio and smol, and on
    /// a `ConnectionManager` from `redis::sentinel`)
    #[arg(long)]
    skip_apalis: bool,
    /// Only these parts
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = PARTS)]
    only: Option<Vec<String>>,
    /// Supervisors per fleet run [default: 1,50,200,500]
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = count)]
    fleet_sizes: Option<Vec<usize>>,
    /// Supervisors per child process in fleet runs
    #[arg(long, value_name = "N", value_parser = count, default_value_t = super::fleet::PER_PROCESS)]
    fleet_per_process: usize,
    /// Fleet scenarios: graceful, kill, kill-busy, sentinel-restart [default: all]
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = fleet_scenario)]
    fleet_scenarios: Option<Vec<FleetScenario>>,
    /// tcp-backlog of the data nodes in fleet runs, each value a set of runs: numbers or
    /// `default` (Redis's 511) [default: default]
    // The full path keeps clap from reading the inner `Option` as an optional value: the
    // value parser makes `None` of `default`.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = backlog)]
    fleet_tcp_backlog: Option<Vec<::std::option::Option<u32>>>,
    /// Rounds of the per-command overhead (15: with 5, the medians of two identical plain
    /// connections strayed past the targets' 3-10 % on this 2-core machine)
    #[arg(long, value_name = "N", value_parser = count, default_value = "15")]
    command_rounds: usize,
    /// Seconds per client, case and round of the per-command overhead
    #[arg(long, value_name = "S", value_parser = positive_secs, default_value = "2")]
    command_secs: Duration,
    /// Do not run `cargo bench -p dramatiq-sentinel-core --bench core_inputs`
    #[arg(long)]
    skip_core_bench: bool,
    /// Idle measurement window in seconds [default: 60]
    #[arg(long, value_name = "N")]
    overhead_secs: Option<u64>,
    /// Where to write the report [default: BENCHMARKS.md at the repo root]
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Keep every run's raw observations there (JSON lines)
    #[arg(long, value_name = "DIR")]
    raw: Option<PathBuf>,
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
    Bench(Box<Options>),
    /// Run as a child process of the benchmark.
    Child(ChildArgs),
}

/// Parses the command line (without the program name); `Err` is clap's: a usage error (exit
/// status 2), or the help to print (exit status 0).
pub(crate) fn parse(args: Vec<String>) -> Result<Command, clap::Error> {
    let cli =
        Cli::try_parse_from(std::iter::once("failover-bench".to_owned()).chain(args.clone()))?;
    Ok(match cli.child {
        Some(Child::Child(c)) => Command::Child(c),
        None => Command::Bench(Box::new(cli.bench.options(args))),
    })
}

/// A count above 0.
fn count(v: &str) -> Result<usize, String> {
    match v.parse() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{v}` is not a count above 0")),
    }
}

/// A duration in seconds above 0.
fn positive_secs(v: &str) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(s) if s > 0.0 && s.is_finite() => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("`{v}` is not a duration above 0")),
    }
}

/// One of our variants of the job workload.
fn job_variant(v: &str) -> Result<String, String> {
    Ours::from_id(v)
        .map(|o| o.id().to_owned())
        .ok_or_else(|| format!("unknown job variant `{v}`; see --help"))
}

/// A fleet scenario.
fn fleet_scenario(v: &str) -> Result<FleetScenario, String> {
    FleetScenario::from_id(v)
        .ok_or_else(|| format!("unknown `{v}` (graceful, kill, kill-busy, sentinel-restart)"))
}

/// A tcp-backlog, `None` for `default`.
fn backlog(v: &str) -> Result<Option<u32>, String> {
    match v {
        "default" => Ok(None),
        _ => v
            .parse()
            .map(Some)
            .map_err(|_| format!("`{v}` is not a number")),
    }
}

impl BenchArgs {
    /// The options of a run: the defaults, `--quick`'s, then what the command line sets
    /// (`--reps`, `--scenarios` and `--overhead-secs` win over `--quick`); `given` is the
    /// command line, for the report.
    fn options(self, given: Vec<String>) -> Options {
        let mut o = Options {
            quick: self.quick,
            reps: 3,
            scenarios: Scenario::ALL.to_vec(),
            job_scenarios: Scenario::ALL.to_vec(),
            clients: self
                .clients
                .unwrap_or_else(|| CLIENTS.iter().map(|s| (*s).to_owned()).collect()),
            job_variants: self
                .job_variants
                .unwrap_or_else(|| Ours::ALL.iter().map(|o| o.id().to_owned()).collect()),
            writers: !self.skip_writers,
            jobs: !self.skip_jobs,
            long_jobs: !self.skip_long_jobs,
            overhead: !self.skip_overhead,
            commands: !self.skip_commands,
            fleet: !self.skip_fleet,
            apalis: !self.skip_apalis,
            fleet_sizes: self
                .fleet_sizes
                .unwrap_or_else(|| super::fleet::SIZES.to_vec()),
            fleet_per_process: self.fleet_per_process,
            fleet_scenarios: self
                .fleet_scenarios
                .unwrap_or_else(|| FleetScenario::ALL.to_vec()),
            fleet_backlogs: self.fleet_tcp_backlog.unwrap_or_else(|| vec![None]),
            command_rounds: self.command_rounds,
            command_time: self.command_secs,
            core_bench: !self.skip_core_bench,
            overhead_window: Duration::from_secs(60),
            out: self.out,
            raw: self.raw,
            given,
        };
        if let Some(parts) = self.only {
            let has = |p: &str| parts.iter().any(|x| x == p);
            (o.writers, o.jobs, o.overhead) = (has("writers"), has("jobs"), has("overhead"));
            o.long_jobs = has("long-jobs");
            (o.commands, o.fleet) = (has("commands"), has("fleet"));
            o.apalis = has("apalis");
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
        if let Some(n) = self.reps {
            o.reps = n;
        }
        if let Some(s) = self.scenarios {
            // The job workload's children are not cut off from any sentinel.
            o.job_scenarios = s
                .iter()
                .copied()
                .filter(|s| *s != Scenario::LeaderUnheard)
                .collect();
            o.scenarios = s;
        }
        if let Some(secs) = self.overhead_secs {
            o.overhead_window = Duration::from_secs(secs.max(1));
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::child_args::Role;
    use clap::CommandFactory;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn bench(s: &str) -> Options {
        match parse(args(s)) {
            Ok(Command::Bench(o)) => *o,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn error(s: &str) -> String {
        match parse(args(s)) {
            Err(e) => e.to_string(),
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let o = bench("");
        assert_eq!((o.quick, o.reps), (false, 3));
        assert_eq!(o.scenarios, Scenario::ALL);
        assert_eq!(o.job_scenarios, Scenario::ALL);
        assert_eq!(o.clients, CLIENTS);
        assert_eq!(o.job_variants.len(), Ours::ALL.len());
        assert!(o.writers && o.jobs && o.long_jobs && o.overhead);
        assert!(o.commands && o.fleet && o.apalis && o.core_bench);
        assert_eq!(o.fleet_sizes, super::super::fleet::SIZES);
        assert_eq!(o.fleet_per_process, super::super::fleet::PER_PROCESS);
        assert_eq!(o.fleet_scenarios, FleetScenario::ALL);
        assert_eq!(o.fleet_backlogs, [None]);
        assert_eq!(o.command_rounds, 15);
        assert_eq!(o.command_time, Duration::from_secs(2));
        assert_eq!(o.overhead_window, Duration::from_secs(60));
        assert_eq!((o.out, o.raw), (None, None));
        assert!(o.given.is_empty());
    }

    #[test]
    fn quick_mode_and_overrides() {
        let o = bench("--quick --reps 2");
        assert_eq!(o.reps, 2);
        assert_eq!(o.scenarios, vec![Scenario::Graceful, Scenario::Kill]);
        assert_eq!(o.fleet_sizes, [1, 50]);
        assert!(!o.core_bench);
        assert_eq!(o.given, ["--quick", "--reps", "2"]);
        let o = bench("--scenarios freeze,leader-unheard --clients redis-py");
        assert_eq!(o.scenarios, vec![Scenario::Freeze, Scenario::LeaderUnheard]);
        assert_eq!(o.job_scenarios, vec![Scenario::Freeze]);
        assert_eq!(o.clients, vec!["redis-py".to_owned()]);
        let o = bench("--only long-jobs,apalis --fleet-tcp-backlog 4096,default --overhead-secs 0");
        assert!(o.long_jobs && o.apalis && !o.writers && !o.jobs && !o.fleet);
        assert_eq!(o.fleet_backlogs, [Some(4096), None]);
        assert_eq!(o.overhead_window, Duration::from_secs(1));
        let o = bench("--skip-fleet --command-secs 0.5 --out /tmp/x.md");
        assert!(!o.fleet && o.writers);
        assert_eq!(o.command_time, Duration::from_millis(500));
        assert_eq!(o.out, Some(PathBuf::from("/tmp/x.md")));
    }

    #[test]
    fn the_documented_command_lines_parse() {
        // BENCHMARKS.md's and the README's reproduce commands.
        for line in [
            "--raw target/failover-bench-raw",
            "--only writers --skip-core-bench --scenarios graceful,leader-unheard --reps 3 \
             --clients ours-tokio,ours-smol,redis-py,ioredis,redis-rs --out /tmp/lu.md \
             --raw /tmp/lu-raw",
            "--only commands --skip-core-bench --out /tmp/commands.md",
            "--only long-jobs,apalis,fleet,commands --reps 2 --fleet-tcp-backlog 4096 \
             --out /tmp/parts.md --raw /tmp/parts-raw",
            "--only jobs --scenarios graceful,kill --job-variants ours-tokio --reps 3",
            "--only apalis --reps 2 --out /tmp/apalis.md",
            "--quick",
        ] {
            bench(line);
        }
    }

    #[test]
    fn clear_errors() {
        for (line, needle) in [
            (
                "--clients nope",
                "invalid value 'nope' for '--clients <LIST>'",
            ),
            ("--reps 0", "not a count above 0"),
            ("--scenarios explode", "unknown scenario `explode`"),
            ("--job-variants redis-py", "unknown job variant `redis-py`"),
            (
                "--only nothing",
                "invalid value 'nothing' for '--only <LIST>'",
            ),
            ("--fleet-scenarios x", "unknown `x`"),
            ("--fleet-tcp-backlog lots", "`lots` is not a number"),
            ("--command-secs 0", "not a duration above 0"),
            ("--bogus", "unexpected argument '--bogus'"),
            ("--reps", "a value is required"),
        ] {
            let e = error(line);
            assert!(e.contains(needle), "{line}: {e}");
        }
        let help = match parse(args("-h")) {
            Err(e) => e.to_string(),
            other => panic!("{other:?}"),
        };
        assert!(
            help.contains("--quick") && !help.contains("Commands:"),
            "{help}"
        );
    }

    #[test]
    fn child_arguments() {
        let Ok(Command::Child(c)) = parse(args(
            "child writer --client ours-smol --sentinels 127.0.0.1:1,127.0.0.1:2 --service s \
             --nat 127.0.0.1:1=127.0.0.1:9 --drain 1 --job-ms 20",
        )) else {
            panic!("parses");
        };
        assert_eq!(c.role, Role::Writer);
        assert_eq!(c.client, "ours-smol");
        assert_eq!(c.sentinels.len(), 2);
        assert_eq!(c.service, "s");
        assert_eq!(
            c.nat,
            [("127.0.0.1:1".to_owned(), "127.0.0.1:9".to_owned())]
        );
        assert!(c.drain);
        assert_eq!(c.job_time, Duration::from_millis(20));
        assert_eq!((c.workers, c.rate, c.prefix.as_str()), (4, 100, "bench"));
        let Ok(Command::Child(c)) = parse(args("child fleet --supervisors 50 --drain 0")) else {
            panic!("parses");
        };
        assert_eq!((c.role, c.supervisors, c.drain), (Role::Fleet, 50, false));
        assert!(parse(args("child nope")).is_err());
        assert!(parse(args("--quick child writer")).is_err());
    }
}
