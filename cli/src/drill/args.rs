//! The drill's command line: a small hand-written parser.
//!
//! Drill options are parsed here; every other `--<setting> VALUE` is kept as a
//! `(field, value)` pair for the supervisor's [`ConfigBuilder::set`] (dashes become
//! underscores), so an invalid value is rejected by the core with an error naming the field.
//!
//! [`ConfigBuilder::set`]: dramatiq_sentinel_supervisor::ConfigBuilder::set

use super::error::DrillError;
use crate::target::{REDIS_PASSWORD_ENV, SENTINEL_PASSWORD_ENV, credentials, is_setting};
use dramatiq_sentinel_supervisor::Credentials;
use std::time::Duration;

/// The usage text (`--help`).
pub const HELP: &str = "\
dramatiq-sentinel drill: run a worker pool and a producer on a reliable Redis queue behind a
Sentinel supervisor, print a live timeline of its events, and on exit a summary: jobs produced,
done, lost, run twice, the longest fence and, per failover, the time from the first signal to
resume.

USAGE
    dramatiq-sentinel drill --sentinels HOST:PORT,... [OPTIONS]   against a deployment you run
    dramatiq-sentinel drill --local [--story ACTS] [OPTIONS]      against one it starts itself

It stops on Ctrl-C or SIGTERM (a second one exits at once), after --failovers switches, after
--duration, or when the --local story ends; it then stops producing, lets the workers finish
the queue (--drain-timeout) and prints the summary.

DEPLOYMENT (not with --local)
    --sentinels LIST          sentinel addresses, HOST:PORT,HOST:PORT,... (or --sentinel
                              HOST:PORT once per sentinel)
    --service NAME            monitored master name (default: redis)
    --sentinel-password PW    password for the sentinels (or DRILL_SENTINEL_PASSWORD, or
                              DRAMATIQ_SENTINEL_SENTINEL_PASSWORD)
    --sentinel-user NAME      ACL user for the sentinels (needs a password)
    --redis-password PW       password for the data nodes (or DRILL_REDIS_PASSWORD, or
                              DRAMATIQ_SENTINEL_REDIS_PASSWORD)
    --redis-user NAME         ACL user for the data nodes (needs a password)
    --nat MAP                 announced=reachable,... address map (HOST:PORT=HOST:PORT)
    --tls                     TLS for every connection, trusting the system's CAs
    --tls-ca FILE             TLS, trusting the CA certificates in FILE (PEM) instead
    --tls-cert FILE           TLS, presenting this client certificate (PEM; needs --tls-key)
    --tls-key FILE            the client certificate's private key (PEM)

LOCAL MODE
    --local                   start a deployment on 127.0.0.1 (1 master, 2 replicas,
                              3 sentinels) with the test harness, play a story, clean up
    --story ACTS              comma-separated acts: graceful (SENTINEL FAILOVER), kill
                              (SIGKILL the master, then revive it as a replica), freeze
                              (SIGSTOP the master, thaw it after the failover), unheard
                              (a graceful failover led by a sentinel restarted a moment
                              before, whose events the supervisor does not hear)
                              (default: graceful,graceful,kill)
    --act-interval SECS       pause between acts, while the pool works (default: 4)
    --tls                     the deployment speaks TLS only and requires client
                              certificates (a throwaway CA made with `openssl`)

WORKLOAD
    --runtime tokio|smol      executor of the supervisor and the pool (default: tokio)
    --concurrency N           workers (default: 8)
    --job-ms MS               how long each job works (default: 20)
    --rate N                  jobs produced per second (default: 100)
    --durable, --no-durable   WAIT for one replica after every write, so a killed master
                              loses nothing acknowledged (default: on with --local, else off)

ENDING AND OUTPUT
    --failovers N             stop after N completed switches
    --duration SECS           stop after this long
    --drain-timeout SECS      how long the workers may take to finish the queue (default: 30)
    --progress SECS           job counts every SECS, 0 for none (default: 5)
    --json                    JSON lines instead of text
    --verbose                 also print routine events (confirmations, duplicates)
    -h, --help                this text

SUPERVISOR SETTINGS
    Any other --NAME VALUE sets that field of the supervisor's configuration, dashes for
    underscores, e.g. --pause-timeout 30 --fence-timeout 15 --hold-timeout 30
    --command-timeout 5 --query-timeout 0.5 --connect-timeout 1 --periodic-check 5|off
    --min-backoff 3 --max-backoff 60 --early-fencing true|false --health-check-interval 2
    --startup-timeout 60|off --on-pause-timeout exit:69|fail. --set NAME=VALUE does the same.
    Durations are in seconds. An invalid value is rejected naming the field.

KEYS
    Jobs are pushed to the list `queue`, moved to `processing` while they run and recorded
    in the set `done`; the set `produced` holds every id pushed, so a retried push never
    queues a job twice. Ids are `drill-<run>-<n>`, so several runs can share a deployment.

EXIT STATUS
    0 every job accounted for, none lost or run twice; 1 jobs lost or run twice, or an error
    after the start (an act of the story, the supervisor stopping); 2 bad options or
    configuration; 3 no sentinel reachable; 4 the sentinels do not know the service or its
    master failed verification; 5 the accounting could not be completed; 130 a second Ctrl-C.
";

/// The executor the drill runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone)]
pub struct Options {
    /// The executor.
    pub runtime: RuntimeChoice,
    /// Start a deployment with the harness and play [`Options::story`].
    pub local: bool,
    /// The acts of the local story.
    pub story: Vec<Act>,
    /// Pause between acts.
    pub act_interval: Duration,
    /// Supervisor settings in command-line order, for `ConfigBuilder::set`.
    pub settings: Vec<(String, String)>,
    /// Credentials for the sentinels.
    pub sentinel_auth: Option<Credentials>,
    /// Credentials for the data nodes.
    pub redis_auth: Option<Credentials>,
    /// TLS for every connection (`--tls`, or implied by a certificate file).
    pub tls: bool,
    /// PEM files: CA certificates to trust, client certificate, its key.
    pub tls_ca: Option<std::path::PathBuf>,
    /// The client certificate (PEM file).
    pub tls_cert: Option<std::path::PathBuf>,
    /// The client certificate's key (PEM file).
    pub tls_key: Option<std::path::PathBuf>,
    /// Number of workers.
    pub concurrency: usize,
    /// How long each job works.
    pub job_time: Duration,
    /// Jobs produced per second.
    pub rate: f64,
    /// `WAIT 1` after writes; `None` picks the mode's default.
    pub durable: Option<bool>,
    /// Stop after this many completed switches.
    pub failovers: Option<usize>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// How long the workers may take to finish the queue after the stop.
    pub drain_timeout: Duration,
    /// Interval of progress lines, if any.
    pub progress: Option<Duration>,
    /// JSON lines output.
    pub json: bool,
    /// Print routine events too.
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            runtime: RuntimeChoice::Tokio,
            local: false,
            story: vec![Act::Graceful, Act::Graceful, Act::Kill],
            act_interval: Duration::from_secs(4),
            settings: Vec::new(),
            sentinel_auth: None,
            redis_auth: None,
            tls: false,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            concurrency: 8,
            job_time: Duration::from_millis(20),
            rate: 100.0,
            durable: None,
            failovers: None,
            duration: None,
            drain_timeout: Duration::from_secs(30),
            progress: Some(Duration::from_secs(5)),
            json: false,
            verbose: false,
        }
    }
}

impl Options {
    /// Whether writes wait for a replica: `--durable`/`--no-durable`, else on in local mode.
    pub fn durable(&self) -> bool {
        self.durable.unwrap_or(self.local)
    }

    /// Whether a supervisor setting was given on the command line.
    pub fn has_setting(&self, field: &str) -> bool {
        self.settings.iter().any(|(f, _)| f == field)
    }
}

/// What the command line asks the program to do.
#[derive(Debug, Clone)]
pub enum Command {
    /// Run the drill.
    Run(Box<Options>),
    /// Print [`HELP`].
    Help,
}

fn usage(message: impl Into<String>) -> DrillError {
    DrillError::Usage(message.into())
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, DrillError> {
    v.parse()
        .map_err(|_| usage(format!("{flag}: `{v}` is not a valid number")))
}

fn secs(flag: &str, v: &str) -> Result<Duration, DrillError> {
    let s: f64 = number(flag, v)?;
    if !(0.0..=365.0 * 24.0 * 3600.0).contains(&s) {
        return Err(usage(format!(
            "{flag}: `{v}` is not a duration in seconds (0 to 365 days)"
        )));
    }
    Ok(Duration::from_secs_f64(s))
}

fn story(v: &str) -> Result<Vec<Act>, DrillError> {
    v.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| match a {
            "graceful" | "failover" => Ok(Act::Graceful),
            "kill" => Ok(Act::Kill),
            "freeze" => Ok(Act::Freeze),
            "unheard" => Ok(Act::Unheard),
            other => Err(usage(format!(
                "--story: unknown act `{other}` (graceful, kill, freeze or unheard)"
            ))),
        })
        .collect()
}

/// Whether `flag` is a drill option or names a supervisor setting.
fn known(flag: &str) -> bool {
    const DRILL: &[&str] = &[
        "--sentinel",
        "--runtime",
        "--story",
        "--act-interval",
        "--concurrency",
        "--job-ms",
        "--rate",
        "--failovers",
        "--duration",
        "--drain-timeout",
        "--progress",
        "--sentinel-password",
        "--sentinel-user",
        "--redis-password",
        "--redis-user",
        "--set",
        "--service",
        "--tls-ca",
        "--tls-cert",
        "--tls-key",
    ];
    DRILL.contains(&flag) || is_setting(&flag.trim_start_matches("--").replace('-', "_"))
}

/// Parses the arguments (without the program name).
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, DrillError> {
    let mut o = Options::default();
    let (mut sentinel_pw, mut sentinel_user, mut redis_pw, mut redis_user) =
        (None, None, None, None);
    let mut deployment_flags = Vec::new();
    let mut sentinel_list: Vec<String> = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let switch = |o: &mut Options| -> Result<bool, DrillError> {
            if inline.is_some() {
                return Err(usage(format!("{flag} takes no value")));
            }
            match flag.as_str() {
                "--local" => o.local = true,
                "--json" => o.json = true,
                "--verbose" => o.verbose = true,
                "--durable" => o.durable = Some(true),
                "--no-durable" => o.durable = Some(false),
                "--tls" => o.tls = true,
                _ => return Ok(false),
            }
            Ok(true)
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--local" | "--json" | "--verbose" | "--durable" | "--no-durable" | "--tls" => {
                switch(&mut o)?;
                continue;
            }
            f if !f.starts_with("--") || f.len() == 2 => {
                return Err(usage(format!("unexpected argument `{arg}`")));
            }
            _ => {}
        }
        let value = match inline {
            Some(v) => v,
            None => args.next().ok_or_else(|| {
                if known(&flag) {
                    usage(format!("{flag} needs a value"))
                } else {
                    usage(format!("unknown option {flag}"))
                }
            })?,
        };
        let v = value.as_str();
        match flag.as_str() {
            "--runtime" => {
                o.runtime = match v {
                    "tokio" => RuntimeChoice::Tokio,
                    "smol" => RuntimeChoice::Smol,
                    _ => return Err(usage(format!("--runtime: `{v}` is neither tokio nor smol"))),
                }
            }
            "--story" => o.story = story(v)?,
            "--act-interval" => o.act_interval = secs(&flag, v)?,
            "--concurrency" => o.concurrency = number(&flag, v)?,
            "--job-ms" => o.job_time = Duration::from_millis(number(&flag, v)?),
            "--rate" => o.rate = number(&flag, v)?,
            "--failovers" => o.failovers = Some(number(&flag, v)?),
            "--duration" => o.duration = Some(secs(&flag, v)?),
            "--drain-timeout" => o.drain_timeout = secs(&flag, v)?,
            "--progress" => o.progress = Some(secs(&flag, v)?).filter(|d| !d.is_zero()),
            "--sentinel" | "--sentinels" => {
                if !deployment_flags.contains(&flag) {
                    deployment_flags.push(flag.clone());
                }
                sentinel_list.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                );
            }
            "--sentinel-password" => sentinel_pw = Some(value),
            "--sentinel-user" => sentinel_user = Some(value),
            "--redis-password" => redis_pw = Some(value),
            "--redis-user" => redis_user = Some(value),
            "--tls-ca" => o.tls_ca = Some(value.into()),
            "--tls-cert" => o.tls_cert = Some(value.into()),
            "--tls-key" => o.tls_key = Some(value.into()),
            "--set" => {
                let (field, v) = v
                    .split_once('=')
                    .ok_or_else(|| usage(format!("--set: `{v}` is not NAME=VALUE")))?;
                o.settings
                    .push((field.trim().replace('-', "_"), v.to_owned()));
            }
            other => {
                if !known(other) && other != "--service" {
                    return Err(usage(format!("unknown option {other}")));
                }
                let field = match other {
                    "--service" => "service_name".to_owned(),
                    _ => other.trim_start_matches("--").replace('-', "_"),
                };
                if matches!(field.as_str(), "service_name" | "nat") {
                    deployment_flags.push(other.to_owned());
                }
                o.settings.push((field, value));
            }
        }
        if o.rate.is_nan() || o.rate <= 0.0 || o.rate > 100_000.0 {
            return Err(usage(
                "--rate: must be more than 0 and at most 100000 jobs/s",
            ));
        }
        if o.concurrency == 0 || o.concurrency > 10_000 {
            return Err(usage("--concurrency: must be between 1 and 10000"));
        }
    }
    if !sentinel_list.is_empty() {
        o.settings
            .push(("sentinels".to_owned(), sentinel_list.join(",")));
    }
    if sentinel_pw.is_some() || sentinel_user.is_some() {
        deployment_flags.push("--sentinel-password/--sentinel-user".to_owned());
    }
    if redis_pw.is_some() || redis_user.is_some() {
        deployment_flags.push("--redis-password/--redis-user".to_owned());
    }
    if o.tls_ca.is_some() || o.tls_cert.is_some() || o.tls_key.is_some() {
        deployment_flags.push("--tls-ca/--tls-cert/--tls-key".to_owned());
        o.tls = true;
    }
    if o.tls_cert.is_some() != o.tls_key.is_some() {
        return Err(usage("--tls-cert and --tls-key go together"));
    }
    if o.local {
        if let Some(flag) = deployment_flags.first() {
            return Err(usage(format!(
                "{flag} describes your own deployment; --local starts one itself"
            )));
        }
        if o.story.is_empty() {
            return Err(usage("--story: at least one act is needed"));
        }
    } else {
        if !o.has_setting("sentinels") {
            return Err(usage(
                "--sentinels is required (or --local to start a deployment)",
            ));
        }
        o.sentinel_auth = credentials(
            "sentinel",
            sentinel_pw,
            &["DRILL_SENTINEL_PASSWORD", SENTINEL_PASSWORD_ENV],
            sentinel_user,
        )
        .map_err(usage)?;
        o.redis_auth = credentials(
            "redis",
            redis_pw,
            &["DRILL_REDIS_PASSWORD", REDIS_PASSWORD_ENV],
            redis_user,
        )
        .map_err(usage)?;
    }
    Ok(Command::Run(Box::new(o)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options, String> {
        match parse(args.iter().map(|s| (*s).to_owned())) {
            Ok(Command::Run(o)) => Ok(*o),
            Ok(Command::Help) => Err("help".into()),
            Err(e) => Err(e.to_string()),
        }
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
            o.settings,
            [
                ("service_name".into(), "svc".into()),
                ("pause_timeout".into(), "30".into()),
                ("fence_timeout".into(), "2".into()),
                ("sentinels".into(), "a:1,b:2".into()),
            ]
        );
        assert_eq!(
            o.redis_auth.as_ref().map(|c| c.password.as_str()),
            Some("pw")
        );
        assert!(!o.durable());
        let merged = run(&[
            "--sentinel",
            "a:1",
            "--sentinels",
            "b:2,c:3",
            "--sentinel=d:4",
        ])
        .expect("valid");
        assert_eq!(
            merged.settings,
            [("sentinels".into(), "a:1,b:2,c:3,d:4".into())]
        );
    }

    #[test]
    fn certificate_files_imply_tls() {
        let o = run(&["--sentinels", "a:1", "--tls-ca", "ca.pem"]).expect("valid");
        assert!(o.tls);
        assert_eq!(o.tls_ca.as_deref(), Some(std::path::Path::new("ca.pem")));
        assert!(run(&["--local", "--tls"]).expect("valid").tls);
    }

    #[test]
    fn local_mode_and_story() {
        let o = run(&[
            "--local",
            "--story",
            "graceful,kill,freeze",
            "--runtime",
            "smol",
        ])
        .expect("valid");
        assert_eq!(o.story, [Act::Graceful, Act::Kill, Act::Freeze]);
        assert_eq!(o.runtime, RuntimeChoice::Smol);
        assert!(o.durable());
    }

    #[test]
    fn clear_errors() {
        for (args, needle) in [
            (
                &["--local", "--sentinels", "a:1"][..],
                "--sentinels describes",
            ),
            (&["--concurrency", "2"][..], "--sentinels is required"),
            (&["--local", "--rate", "0"][..], "--rate"),
            (
                &["--local", "--story", "explode"][..],
                "unknown act `explode`",
            ),
            (
                &["--local", "--runtime", "async-std"][..],
                "neither tokio nor smol",
            ),
            (&["--local", "--json=1"][..], "takes no value"),
            (&["--local", "--failovers"][..], "needs a value"),
            (&["--local", "--pause-timeout"][..], "needs a value"),
            (&["--local", "--bogus"][..], "unknown option --bogus"),
            (&["--local", "--bogus", "1"][..], "unknown option --bogus"),
            (
                &["--local", "--sentinel", "a:1"][..],
                "--sentinel describes",
            ),
            (&["--local", "stray"][..], "unexpected argument"),
            (
                &["--local", "--tls-ca", "ca.pem"][..],
                "--tls-ca/--tls-cert/--tls-key describes",
            ),
            (
                &["--sentinels", "a:1", "--tls-cert", "c.pem"][..],
                "--tls-cert and --tls-key go together",
            ),
            (
                &["--sentinels", "a:1", "--redis-user", "u"][..],
                "needs --redis-password",
            ),
        ] {
            let e = run(args).expect_err("invalid");
            assert!(e.contains(needle), "{args:?}: {e}");
        }
        assert_eq!(run(&["--help"]).expect_err("help"), "help");
    }
}
