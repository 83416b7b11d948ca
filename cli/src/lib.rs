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
pub mod settings;
pub mod status;
pub mod target;
pub mod watch;

#[cfg(feature = "drill")]
pub mod drill;

mod events;
mod output;
mod sync;

pub use error::CliError;

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

// The command line of `dramatiq-sentinel` (`--help` prints it). Each command's description
// comes from its arguments (`#[command(about, long_about)]`), so the variants have no doc
// comment of their own.
#[derive(Debug, Parser)]
#[command(
    name = "dramatiq-sentinel",
    version,
    about = "The operator command of dramatiq-sentinel (Redis Sentinel failover handling for job \
             workers)",
    after_help = format!(
        "Logs (tracing) go to stderr: RUST_LOG=info (default: error).\n\n{}",
        exit::TABLE
    ),
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Status(status::StatusArgs),
    Watch(watch::WatchArgs),
    #[cfg(feature = "drill")]
    Drill(Box<drill::Options>),
    // `drill` in a build without it: a clear error instead of an unknown command.
    #[cfg(not(feature = "drill"))]
    #[command(hide = true)]
    Drill {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    // `dramatiq-sentinel version`, as `--version`.
    #[command(hide = true)]
    Version,
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
    eprintln!("dramatiq-sentinel {command}: {e}");
    ExitCode::from(e.exit_code())
}

/// Runs `dramatiq-sentinel` with the command-line arguments `args` (without the program name)
/// and returns the process exit status ([`exit`]).
pub fn main<I: IntoIterator<Item = String>>(args: I) -> ExitCode {
    init_logs();
    let cli = match Cli::try_parse_from(std::iter::once("dramatiq-sentinel".to_owned()).chain(args))
    {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout (exit 0), usage errors to stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let (command, result) = match &cli.command {
        Command::Status(args) => ("status", status::run(args)),
        Command::Watch(args) => ("watch", watch::run(args)),
        #[cfg(feature = "drill")]
        Command::Drill(options) => return drill::main(options),
        #[cfg(not(feature = "drill"))]
        Command::Drill { .. } => (
            "drill",
            Err(CliError::Usage(
                "this build has no drill: it was built without the `drill` feature \
                 (cargo install --path cli, with default features)"
                    .to_owned(),
            )),
        ),
        Command::Version => {
            println!("dramatiq-sentinel {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => fail(command, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
