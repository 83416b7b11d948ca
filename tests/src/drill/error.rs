//! Why the drill could not run.

use crate::harness::HarnessError;
use dramatiq_sentinel_supervisor::{ConfigError, StartError, SupervisorError};

/// Everything that stops the drill before it can print a summary.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DrillError {
    /// The command line is wrong.
    #[error("{0} (see --help)")]
    Usage(String),
    /// A supervisor setting is invalid (the error names the field).
    #[error(transparent)]
    Config(#[from] ConfigError),
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
    /// The process exit code for this error: 2 for bad options or configuration, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            DrillError::Usage(_)
            | DrillError::Config(_)
            | DrillError::Start(StartError::InvalidConfig { .. }) => 2,
            _ => 1,
        }
    }
}
