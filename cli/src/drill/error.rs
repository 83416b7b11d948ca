//! Why the drill could not run.

use crate::error::{CliError, start_error_code};
use crate::exit;
use dramatiq_sentinel_harness::HarnessError;
use dramatiq_sentinel_supervisor::{ConfigError, StartError, SupervisorError};

/// Everything that stops the drill before it can print a summary.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DrillError {
    /// The command line is wrong.
    #[error("{0} (see --help)")]
    Usage(String),
    /// A supervisor setting is invalid (the error names the option and the field).
    #[error("{}", crate::error::config_error(.0))]
    Config(#[from] ConfigError),
    /// The deployment options are wrong (a password file, a user without a password, an
    /// invalid setting).
    #[error(transparent)]
    Target(#[from] CliError),
    /// The supervisor found no verified master.
    #[error("the supervisor did not start: {0}")]
    Start(#[from] StartError),
    /// The supervisor stopped with an error.
    #[error("the supervisor stopped: {0}")]
    Supervisor(#[from] SupervisorError),
    /// The local deployment could not be started or driven.
    #[error("local deployment: {0}")]
    Harness(#[from] HarnessError),
    /// An act of the local story did not complete.
    #[error("act {act}: {detail}")]
    Story {
        /// The act, e.g. `2/3 kill`.
        act: String,
        /// What did not happen in time.
        detail: String,
    },
    /// The executor could not be created.
    #[error("cannot create the {runtime} runtime: {source}")]
    Runtime {
        /// `tokio` or `smol`.
        runtime: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The Ctrl-C / SIGTERM handler could not be installed.
    #[error("cannot handle Ctrl-C and SIGTERM: {0}")]
    Signal(#[from] ctrlc::Error),
}

impl DrillError {
    /// The process exit code for this error ([`crate::exit`]): 2 for bad options or
    /// configuration, 3 when no sentinel could be reached, 4 when the sentinels do not know
    /// the service or its master failed verification, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            DrillError::Usage(_) | DrillError::Config(_) => exit::USAGE,
            DrillError::Start(e) => start_error_code(e),
            DrillError::Target(e) => e.exit_code(),
            _ => exit::FAILED,
        }
    }
}
