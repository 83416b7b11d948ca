//! The drill's command line: its own options, the deployment options it shares with `status`
//! and `watch` ([`Target`]), and every supervisor setting.

use crate::exit;
use crate::target::{PasswordEnv, REDIS_PASSWORD_ENV, SENTINEL_PASSWORD_ENV, Target};
use std::time::Duration;

/// Where the drill reads the passwords not given by a flag.
pub const DRILL_PASSWORD_ENV: PasswordEnv = PasswordEnv {
    sentinel: &["DRILL_SENTINEL_PASSWORD", SENTINEL_PASSWORD_ENV],
    redis: &["DRILL_REDIS_PASSWORD", REDIS_PASSWORD_ENV],
};

/// The description of `drill --help`.
const ABOUT: &str = "\
Run a worker pool and a producer on a reliable Redis queue behind a Sentinel supervisor, print a
live timeline of its events, and on exit a summary: jobs produced, done, lost, run twice, the
longest fence and, per failover, the time from the first signal to resume.

Against a deployment you run (--sentinels HOST:PORT,... [--service NAME]), or one it starts
itself (--local [--story ACTS]). It stops on Ctrl-C or SIGTERM (a second one exits at once),
after --failovers switches, after --duration, or when the --local story ends; it then stops
producing, lets the workers finish the queue (--drain-timeout) and prints the summary.";

/// What `drill --help` prints after the options.
fn after_help() -> String {
    format!(
        "\
KEYS
    Jobs are pushed to the list `queue`, moved to `processing` while they run and recorded
    in the set `done`; the set `produced` holds every id pushed, so a retried push never
    queues a job twice. Ids are `drill-<run>-<n>`, so several runs can share a deployment.

{}",
        exit::TABLE
    )
}

/// The executor the drill runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeChoice {
    /// `dramatiq-sentinel-tokio` on a multi-threaded tokio runtime.
    Tokio,
    /// `dramatiq-sentinel-smol` on smol's global executor.
    Smol,
}

impl RuntimeChoice {
    /// `tokio` or `smol`.
    pub fn name(self) -> &'static str {
        match self {
            RuntimeChoice::Tokio => "tokio",
            RuntimeChoice::Smol => "smol",
        }
    }
}

/// One act of the `--local` story.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// `SENTINEL FAILOVER`.
    Graceful,
    /// SIGKILL the master; revive it afterwards (it rejoins as a replica).
    Kill,
    /// SIGSTOP the master; thaw it after the failover (it rejoins as a replica).
    Freeze,
    /// `SENTINEL FAILOVER` led by a sentinel restarted a moment before: the supervisor's
    /// listener to it waits its backoff, so the failover's early signals are not heard.
    Unheard,
}

impl Act {
    /// The act's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Act::Graceful => "graceful",
            Act::Kill => "kill",
            Act::Freeze => "freeze",
            Act::Unheard => "unheard",
        }
    }
}

/// Everything the command line asks for.
#[derive(Debug, Clone, clap::Args)]
#[command(
    about = "The failover drill: a worker pool and a producer on a reliable queue behind the \
             supervisor through failovers (your deployment, or --local starts one), a timeline \
             and a summary of every job",
    long_about = ABOUT,
    override_usage = "dramatiq-sentinel drill --sentinels HOST:PORT,... [OPTIONS]   against a \
                      deployment you run\n       dramatiq-sentinel drill --local [--story ACTS] \
                      [OPTIONS]      against one it starts itself",
    after_help = after_help()
)]
pub struct Options {
    /// Start a deployment on 127.0.0.1 (1 master, 2 replicas, 3 sentinels) with the test
    /// harness, play a story, clean up
    #[arg(
        long,
        help_heading = "Local mode",
        conflicts_with_all = [
            "sentinels", "service", "sentinel_password", "sentinel_user", "redis_password",
            "redis_user", "tls_ca", "tls_cert", "tls_key", "nat",
        ]
    )]
    pub local: bool,
    /// Comma-separated acts: graceful (SENTINEL FAILOVER), kill (SIGKILL the master, then
    /// revive it as a replica), freeze (SIGSTOP the master, thaw it after the failover),
    /// unheard (a graceful failover led by a sentinel restarted a moment before, whose events
    /// the supervisor does not hear)
    #[arg(
        long,
        help_heading = "Local mode",
        value_name = "ACTS",
        value_delimiter = ',',
        value_parser = act,
        default_value = "graceful,graceful,kill"
    )]
    pub story: Vec<Act>,
    /// Pause between acts, while the pool works
    #[arg(long, help_heading = "Local mode", value_name = "SECS", value_parser = secs, default_value = "4")]
    pub act_interval: Duration,
    /// Executor of the supervisor and the pool
    #[arg(long, help_heading = "Workload", value_enum, default_value = "tokio")]
    pub runtime: RuntimeChoice,
    /// Workers
    #[arg(long, help_heading = "Workload", value_name = "N", value_parser = concurrency, default_value = "8")]
    pub concurrency: usize,
    /// How long each job works
    #[arg(
        long = "job-ms",
        help_heading = "Workload",
        value_name = "MS",
        value_parser = millis,
        default_value = "20"
    )]
    pub job_time: Duration,
    /// Jobs produced per second
    #[arg(
        long,
        help_heading = "Workload",
        value_name = "N",
        value_parser = rate,
        allow_negative_numbers = true,
        default_value = "100"
    )]
    pub rate: f64,
    /// WAIT for one replica after every write, so a killed master loses nothing acknowledged
    /// (default: on with --local, else off)
    #[arg(long, help_heading = "Workload", overrides_with = "no_durable")]
    durable: bool,
    /// Do not WAIT for a replica after writes
    #[arg(long, help_heading = "Workload", overrides_with = "durable")]
    no_durable: bool,
    /// Stop after N completed switches
    #[arg(long, help_heading = "Ending and output", value_name = "N")]
    pub failovers: Option<usize>,
    /// Stop after this long
    #[arg(
        long,
        help_heading = "Ending and output",
        value_name = "SECS",
        value_parser = secs,
        allow_negative_numbers = true
    )]
    pub duration: Option<Duration>,
    /// How long the workers may take to finish the queue
    #[arg(long, help_heading = "Ending and output", value_name = "SECS", value_parser = secs, default_value = "30")]
    pub drain_timeout: Duration,
    /// Job counts every SECS, 0 for none
    // The full path keeps clap from treating the option as optional: the value parser makes
    // `None` of 0.
    #[arg(
        long,
        help_heading = "Ending and output",
        value_name = "SECS",
        value_parser = every,
        default_value = "5"
    )]
    pub progress: ::std::option::Option<Duration>,
    /// JSON lines instead of text
    #[arg(long, help_heading = "Ending and output")]
    pub json: bool,
    /// Also print routine events (confirmations, duplicates)
    #[arg(long, help_heading = "Ending and output")]
    pub verbose: bool,
    /// Your own deployment (not with --local) and the supervisor settings.
    #[command(flatten)]
    pub target: Target,
}

impl Options {
    /// Whether writes wait for a replica: `--durable`/`--no-durable` (the last one given),
    /// else on in local mode.
    pub fn durable(&self) -> bool {
        if self.durable {
            true
        } else if self.no_durable {
            false
        } else {
            self.local
        }
    }

    /// Checks what the drill needs beyond what each option checks: the sentinels of your
    /// deployment unless `--local`.
    pub fn check(&self) -> Result<(), String> {
        if !self.local
            && self.target.sentinel_list().is_empty()
            && !self.target.settings.has("sentinels")
        {
            return Err("--sentinels is required (or --local to start a deployment)".to_owned());
        }
        Ok(())
    }
}

fn number<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("`{v}` is not a valid number"))
}

fn secs(v: &str) -> Result<Duration, String> {
    let s: f64 = number(v)?;
    if !(0.0..=365.0 * 24.0 * 3600.0).contains(&s) {
        return Err(format!(
            "`{v}` is not a duration in seconds (0 to 365 days)"
        ));
    }
    Ok(Duration::from_secs_f64(s))
}

/// `--progress`: a duration, 0 for none.
fn every(v: &str) -> Result<Option<Duration>, String> {
    Ok(Some(secs(v)?).filter(|d| !d.is_zero()))
}

fn millis(v: &str) -> Result<Duration, String> {
    number(v).map(Duration::from_millis)
}

fn rate(v: &str) -> Result<f64, String> {
    let rate: f64 = number(v)?;
    if rate.is_nan() || rate <= 0.0 || rate > 100_000.0 {
        return Err("must be more than 0 and at most 100000 jobs/s".to_owned());
    }
    Ok(rate)
}

fn concurrency(v: &str) -> Result<usize, String> {
    match number(v)? {
        n @ 1..=10_000 => Ok(n),
        _ => Err("must be between 1 and 10000".to_owned()),
    }
}

fn act(v: &str) -> Result<Act, String> {
    match v.trim() {
        "graceful" | "failover" => Ok(Act::Graceful),
        "kill" => Ok(Act::Kill),
        "freeze" => Ok(Act::Freeze),
        "unheard" => Ok(Act::Unheard),
        other => Err(format!(
            "unknown act `{other}` (graceful, kill, freeze or unheard)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Line {
        #[command(flatten)]
        options: Options,
    }

    fn run(args: &[&str]) -> Result<Options, String> {
        let line = Line::try_parse_from(std::iter::once("drill").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        line.options.check()?;
        Ok(line.options)
    }

    #[test]
    fn defaults() {
        let o = run(&["--local"]).expect("valid");
        assert_eq!(o.story, [Act::Graceful, Act::Graceful, Act::Kill]);
        assert_eq!(o.act_interval, Duration::from_secs(4));
        assert_eq!(o.runtime, RuntimeChoice::Tokio);
        assert_eq!(o.concurrency, 8);
        assert_eq!(o.job_time, Duration::from_millis(20));
        assert_eq!(o.rate, 100.0);
        assert_eq!((o.failovers, o.duration), (None, None));
        assert_eq!(o.drain_timeout, Duration::from_secs(30));
        assert_eq!(o.progress, Some(Duration::from_secs(5)));
        assert!(!o.json && !o.verbose && !o.target.tls());
        assert!(o.durable());
        // The check of the settings before a local deployment starts: the default sentinel
        // list stands in for the deployment's.
        super::super::session::config(&o, None).expect("a valid configuration");
        let o = run(&["--local", "--pause-timeout", "0"]).expect("parsed");
        let e = super::super::session::config(&o, None).expect_err("zero");
        assert!(e.to_string().contains("invalid --pause-timeout"), "{e}");
        assert_eq!(
            run(&["--local", "--progress", "0"])
                .expect("valid")
                .progress,
            None
        );
    }

    #[test]
    fn settings_pass_through_to_the_config() {
        let o = run(&[
            "--sentinels",
            "a:1,b:2",
            "--service=svc",
            "--pause-timeout",
            "30",
            "--set",
            "fence-timeout=2",
            "--redis-password",
            "pw",
        ])
        .expect("valid");
        assert_eq!(
            o.target.settings.0,
            [
                ("pause_timeout".into(), "30".into()),
                ("fence_timeout".into(), "2".into()),
            ]
        );
        let config = o
            .target
            .builder(&[], DRILL_PASSWORD_ENV)
            .and_then(|b| Ok(b.build()?))
            .expect("valid");
        assert_eq!(config.service_name(), "svc");
        assert_eq!(config.pause_timeout(), Duration::from_secs(30));
        assert_eq!(config.sentinels().len(), 2);
        assert!(!o.durable());
        let merged = run(&[
            "--sentinel",
            "a:1",
            "--sentinels",
            "b:2,c:3",
            "--sentinel=d:4",
        ])
        .expect("valid");
        assert_eq!(merged.target.sentinel_list(), ["a:1", "b:2", "c:3", "d:4"]);
        assert!(
            run(&["--sentinels", "a:1", "--durable"])
                .expect("valid")
                .durable()
        );
        assert!(
            !run(&["--local", "--durable", "--no-durable"])
                .expect("valid")
                .durable()
        );
    }

    #[test]
    fn certificate_files_imply_tls() {
        let o = run(&["--sentinels", "a:1", "--tls-ca", "ca.pem"]).expect("valid");
        assert!(o.target.tls());
        assert!(run(&["--local", "--tls"]).expect("valid").target.tls());
    }

    #[test]
    fn local_mode_and_story() {
        let o = run(&[
            "--local",
            "--story",
            "graceful,kill,freeze,failover",
            "--runtime",
            "smol",
        ])
        .expect("valid");
        assert_eq!(
            o.story,
            [Act::Graceful, Act::Kill, Act::Freeze, Act::Graceful]
        );
        assert_eq!(o.runtime, RuntimeChoice::Smol);
        assert!(o.durable());
    }

    #[test]
    fn clear_errors() {
        for (args, needle) in [
            (
                &["--local", "--sentinels", "a:1"][..],
                "'--local' cannot be used with '--sentinel <HOST:PORT>'",
            ),
            (&["--concurrency", "2"][..], "--sentinels is required"),
            (&["--local", "--rate", "0"][..], "--rate <N>"),
            (&["--local", "--rate", "-1"][..], "more than 0"),
            (
                &["--local", "--concurrency", "0"][..],
                "between 1 and 10000",
            ),
            (
                &["--local", "--story", "explode"][..],
                "unknown act `explode`",
            ),
            (
                &["--local", "--runtime", "async-std"][..],
                "[possible values: tokio, smol]",
            ),
            (
                &["--local", "--json=1"][..],
                "unexpected value '1' for '--json'",
            ),
            (&["--local", "--failovers"][..], "a value is required"),
            (&["--local", "--pause-timeout"][..], "a value is required"),
            (&["--local", "--bogus"][..], "unexpected argument '--bogus'"),
            (&["--local", "stray"][..], "unexpected argument 'stray'"),
            (
                &["--local", "--tls-ca", "ca.pem"][..],
                "'--local' cannot be used with '--tls-ca <FILE>'",
            ),
            (
                &["--local", "--nat", "a:1=b:2"][..],
                "'--local' cannot be used with '--nat",
            ),
            (
                &["--sentinels", "a:1", "--tls-cert", "c.pem"][..],
                "--tls-key <FILE>",
            ),
            (&["--local", "--duration", "-1"][..], "0 to 365 days"),
        ] {
            let e = run(args).expect_err("invalid");
            assert!(e.contains(needle), "{args:?}: {e}");
        }
        let o = run(&["--sentinels", "a:1", "--redis-user", "u"]).expect("parsed");
        let e = o
            .target
            .builder(&[], DRILL_PASSWORD_ENV)
            .expect_err("no password")
            .to_string();
        assert!(e.contains("needs --redis-password"), "{e}");
    }
}
