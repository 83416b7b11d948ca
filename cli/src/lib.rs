//! # dramatiq-sentinel-cli
//!
//! The operator command of dramatiq-sentinel, `dramatiq-sentinel` (install it with
//! `cargo install --path cli`):
//! - [`status`]: the deployment as the sentinels see it (master, replicas, sentinels with
//!   their flags, quorum), as a table or JSON, read with the supervisor's status code
//!   ([`dramatiq_sentinel_supervisor::read_status`]) without starting a supervisor;
//! - [`watch`]: a live timeline of every sentinel's events for one service, each decoded with
//!   the core's parser ([`dramatiq_sentinel_supervisor::core_api::decode_message`]) and
//!   explained, next to the decisions of a core with no workers; Ctrl-C ends it;
//! - `drill` (the `drill` feature, on by default): the failover drill, a worker pool and a
//!   producer on a reliable queue behind the supervisor through failovers, with a summary of
//!   every job.
//!
//! Every error names the sentinel (or the option, or the field) and the cause; the exit
//! status is the same for every command ([`exit`]).

pub mod error;
pub mod exit;
pub mod status;
pub mod target;
pub mod watch;

#[cfg(feature = "drill")]
pub mod drill;

mod events;
mod output;
mod sync;

pub use error::CliError;

use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// The usage text of `dramatiq-sentinel` (`--help`).
pub fn help() -> String {
    format!(
        "\
dramatiq-sentinel {version}: the operator command of dramatiq-sentinel (Redis Sentinel failover
handling for job workers).

USAGE
    dramatiq-sentinel status --sentinel HOST:PORT [--sentinel ...] --service NAME [--json]
    dramatiq-sentinel watch  --sentinel HOST:PORT [--sentinel ...] --service NAME [--json]
    dramatiq-sentinel drill  --sentinels HOST:PORT,... --service NAME | --local  [OPTIONS]
    dramatiq-sentinel help [COMMAND]      dramatiq-sentinel COMMAND --help      --version

COMMANDS
    status    the deployment as the sentinels see it: master, replicas, sentinels with their
              flags, quorum; a table, or JSON with --json
    watch     a live timeline of every sentinel's events for one service, each decoded and
              explained, with the decisions of a core that has no workers; reads only, never
              touches workers or data; Ctrl-C ends it
    drill     the failover drill: a worker pool and a producer on a reliable queue behind the
              supervisor through failovers (your deployment, or --local starts one), a
              timeline and a summary of every job{drill}

Logs (tracing) go to stderr: RUST_LOG=info (default: error).

{table}",
        version = env!("CARGO_PKG_VERSION"),
        drill = if cfg!(feature = "drill") {
            ""
        } else {
            "\n              (not in this build: it was built without the `drill` feature)"
        },
        table = exit::TABLE,
    )
}

fn init_logs() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Prints `e` for `command` on stderr and returns its exit status.
fn fail(command: &str, e: &CliError) -> ExitCode {
    if command.is_empty() {
        eprintln!("dramatiq-sentinel: {e}");
    } else {
        eprintln!("dramatiq-sentinel {command}: {e}");
    }
    ExitCode::from(e.exit_code())
}

/// Runs `dramatiq-sentinel` with the command-line arguments `args` (without the program name)
/// and returns the process exit status ([`exit`]).
pub fn main<I: IntoIterator<Item = String>>(args: I) -> ExitCode {
    init_logs();
    let mut args = args.into_iter();
    let Some(command) = args.next() else {
        eprint!("{}", help());
        return ExitCode::from(exit::USAGE);
    };
    match command.as_str() {
        "status" => match status::run(args) {
            Ok(code) => ExitCode::from(code),
            Err(e) => fail("status", &e),
        },
        "watch" => match watch::run(args) {
            Ok(code) => ExitCode::from(code),
            Err(e) => fail("watch", &e),
        },
        "drill" => drill_main(args),
        "help" | "-h" | "--help" => {
            match args.next().as_deref() {
                Some("status") => print!("{}", status::help()),
                Some("watch") => print!("{}", watch::help()),
                Some("drill") => return drill_main(["--help".to_owned()].into_iter()),
                None | Some("help") => print!("{}", help()),
                Some(other) => {
                    return fail(
                        "help",
                        &CliError::Usage(format!(
                            "unknown command `{other}` (status, watch or drill)"
                        )),
                    );
                }
            }
            ExitCode::SUCCESS
        }
        "-V" | "--version" | "version" => {
            println!("dramatiq-sentinel {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        other => fail(
            "",
            &CliError::Usage(format!(
                "unknown command `{other}` (status, watch, drill or help)"
            )),
        ),
    }
}

#[cfg(feature = "drill")]
fn drill_main(args: impl Iterator<Item = String>) -> ExitCode {
    drill::main(args)
}

#[cfg(not(feature = "drill"))]
fn drill_main(_args: impl Iterator<Item = String>) -> ExitCode {
    fail(
        "drill",
        &CliError::Usage(
            "this build has no drill: it was built without the `drill` feature \
             (cargo install --path cli, with default features)"
                .to_owned(),
        ),
    )
}
