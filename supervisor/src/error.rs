//! Why a supervisor could not start, and why it stopped.

use dramatiq_sentinel_core::{Addr, DiscoveryError, FatalError};
use std::time::Duration;

/// Why [`crate::Builder::start`] found no verified master.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A setting cannot work with this build (for example TLS without a TLS feature).
    #[error("invalid configuration: `{field}`: {problem}")]
    InvalidConfig {
        /// The setting.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// No sentinel answered until the startup deadline, or (with `startup_fail_fast`, the
    /// default) every sentinel refused us at once (authentication failed, not a sentinel);
    /// each one's last failure is listed (refused, timed out, authentication failed, ...).
    #[error("no sentinel reachable within {waited:?}: {}", Addr::join_failures(.failures))]
    NoSentinelReachable {
        /// Each sentinel asked, with why it failed.
        failures: Vec<(Addr, String)>,
        /// How long startup waited.
        waited: Duration,
    },
    /// The sentinels that answered do not monitor a master of that name.
    #[error("sentinels {} do not know a master named `{service}`", Addr::join(.sentinels))]
    MasterNameUnknown {
        /// The configured service name.
        service: String,
        /// The sentinels that said so.
        sentinels: Vec<Addr>,
        /// How long startup waited.
        waited: Duration,
    },
    /// The sentinels named a master, but it is not one (its `ROLE`) or cannot be reached.
    #[error("master {node} failed verification: {reason}")]
    VerificationFailed {
        /// The node the sentinels named.
        node: Addr,
        /// Why it failed.
        reason: String,
        /// How long startup waited.
        waited: Duration,
    },
    /// The startup deadline passed for another reason (the master is flagged down, answers
    /// were stale, or no answer came at all).
    #[error("no verified master within {waited:?}: {}", last.as_ref().map_or_else(|| "no answer yet".to_owned(), ToString::to_string))]
    DeadlinePassed {
        /// How long startup waited.
        waited: Duration,
        /// The last reason discovery failed, if it failed.
        last: Option<DiscoveryError>,
    },
    /// The supervisor stopped during startup for another reason.
    #[error("the supervisor stopped during startup: {0}")]
    Stopped(FatalError),
    /// The supervisor's task ended without a verdict (it was shut down).
    #[error("the supervisor's task ended during startup")]
    Ended,
}

/// Why a running supervisor stopped (see [`crate::Supervisor::wait`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// The core stopped for good: workers did not pause in time (with the `Fail` policy).
    #[error(transparent)]
    Fatal(#[from] FatalError),
    /// The supervisor's task panicked (a bug); every handle was closed.
    #[error("the supervisor's task panicked: {0}")]
    Panicked(String),
}

impl From<FatalError> for StartError {
    fn from(e: FatalError) -> Self {
        match e {
            // At the deadline, or at once when every sentinel refused (`startup_fail_fast`):
            // the same errors, from the last reason discovery failed.
            FatalError::StartupTimedOut { waited, last } => Self::discovery(waited, last),
            FatalError::StartupRefused { waited, error } => Self::discovery(waited, Some(error)),
            other => StartError::Stopped(other),
        }
    }
}

impl StartError {
    /// The error of a startup that ended after `waited` with `last` as its last discovery
    /// failure.
    fn discovery(waited: Duration, last: Option<DiscoveryError>) -> Self {
        match last {
            Some(DiscoveryError::SentinelsUnreachable { failures }) => {
                StartError::NoSentinelReachable { failures, waited }
            }
            Some(DiscoveryError::MasterNameUnknown { service, sentinels }) => {
                StartError::MasterNameUnknown {
                    service,
                    sentinels,
                    waited,
                }
            }
            Some(DiscoveryError::VerificationFailed { node, reason }) => {
                StartError::VerificationFailed {
                    node,
                    reason,
                    waited,
                }
            }
            last => StartError::DeadlinePassed { waited, last },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_each_discovery_failure_to_its_own_error() {
        let waited = Duration::from_secs(1);
        let a = Addr::new("127.0.0.1", 26379);
        let timed_out = |last| FatalError::StartupTimedOut { waited, last };
        let e = StartError::from(timed_out(Some(DiscoveryError::SentinelsUnreachable {
            failures: vec![(a.clone(), "authentication failed".into())],
        })));
        assert!(matches!(e, StartError::NoSentinelReachable { .. }));
        assert!(
            e.to_string()
                .contains("127.0.0.1:26379: authentication failed"),
            "{e}"
        );
        let e = StartError::from(timed_out(Some(DiscoveryError::MasterNameUnknown {
            service: "svc".into(),
            sentinels: vec![a.clone()],
        })));
        assert!(matches!(e, StartError::MasterNameUnknown { .. }));
        let e = StartError::from(timed_out(Some(DiscoveryError::VerificationFailed {
            node: a,
            reason: "ROLE says replica".into(),
        })));
        assert!(matches!(e, StartError::VerificationFailed { .. }));
        let e = StartError::from(timed_out(None));
        assert!(matches!(e, StartError::DeadlinePassed { last: None, .. }));
        let e = StartError::from(FatalError::PauseTimedOut { waited });
        assert!(matches!(e, StartError::Stopped(_)));
    }
}
