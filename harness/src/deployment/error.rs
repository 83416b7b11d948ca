//! The harness error type.

use std::path::PathBuf;
use std::time::Duration;

/// Result alias used throughout the harness.
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

/// Everything that can go wrong while running a test deployment.
///
/// Every variant names what failed and, where a Redis process is involved, the log file or the
/// deployment directory to look at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// No usable `redis-server` binary was found.
    #[error(
        "redis-server not found: {detail}. On Debian/Ubuntu install it with \
         `sudo apt-get install redis-server redis-sentinel` (or run `bash scripts/test.sh` as root, \
         which installs it), or set REDIS_SERVER=/path/to/redis-server (a valkey-server works too)"
    )]
    RedisServerNotFound {
        /// Where the harness looked and what it found.
        detail: String,
    },
    /// A `redis-server` binary was found but cannot be used.
    #[error("{binary} is not usable: {detail}")]
    RedisServerUnusable {
        /// The binary that was tried.
        binary: PathBuf,
        /// Why it cannot be used.
        detail: String,
    },
    /// The deployment options are inconsistent.
    #[error("invalid deployment options: {0}")]
    InvalidOptions(String),
    /// A file system or socket operation of the harness itself failed.
    #[error("{what}: {source}")]
    Io {
        /// What the harness was doing.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A Redis process did not come up.
    #[error("{process} failed to start: {detail} (log: {})", log.display())]
    StartFailed {
        /// The process, e.g. `node-0` or `sentinel-1`.
        process: String,
        /// What went wrong.
        detail: String,
        /// Its log file.
        log: PathBuf,
    },
    /// A condition was not reached in time.
    #[error("timed out after {waited:?} waiting for {what}; last observation: {detail} (logs: {})", logs.display())]
    Timeout {
        /// The condition waited for.
        what: String,
        /// How long the harness waited.
        waited: Duration,
        /// The last observation, e.g. what each sentinel reported.
        detail: String,
        /// The deployment directory holding every log file.
        logs: PathBuf,
    },
    /// A Redis command failed (connection refused, timeout, error reply, ...).
    #[error("{command} on {target} failed: {source} (log: {})", log.display())]
    Command {
        /// The process the command was sent to.
        target: String,
        /// The command name.
        command: String,
        /// The underlying error.
        #[source]
        source: redis::RedisError,
        /// The log file of the target.
        log: PathBuf,
    },
    /// A Redis reply did not have the expected shape.
    #[error("unexpected reply from {target} to {command}: {detail}")]
    UnexpectedReply {
        /// The process that replied.
        target: String,
        /// The command name.
        command: String,
        /// What was wrong with the reply.
        detail: String,
    },
    /// Sending a signal to a process failed.
    #[error("sending {signal} to {process} (pid {pid}) failed: {source}")]
    Signal {
        /// The signal name.
        signal: String,
        /// The process.
        process: String,
        /// Its pid.
        pid: u32,
        /// The underlying error.
        #[source]
        source: nix::Error,
    },
    /// The operation needs a running process but it is stopped (killed or never restarted).
    #[error("{0} is not running")]
    NotRunning(String),
    /// The process is frozen (SIGSTOP), so it cannot answer.
    #[error("{0} is frozen (SIGSTOP)")]
    Frozen(String),
    /// The running sentinels do not (yet) name one and the same master.
    #[error("the sentinels do not agree on the master of {service}: {detail}")]
    NoAgreement {
        /// The service.
        service: String,
        /// What each sentinel reported.
        detail: String,
    },
    /// An address reported by Redis does not belong to any process of the deployment.
    #[error("address {0} does not belong to any data node of this deployment")]
    UnknownAddress(String),
}

impl HarnessError {
    /// Builds an [`HarnessError::Io`] with a description of what the harness was doing.
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}
