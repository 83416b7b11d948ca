//! Why a command failed, and the exit status it means.

use crate::exit;
use dramatiq_sentinel_supervisor::{Addr, ConfigError, DiscoveryError, StartError, StatusError};

/// Why `status` or `watch` could not do its work. Every variant names what failed and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The command line is wrong.
    #[error("{0} (see --help)")]
    Usage(String),
    /// A supervisor setting is invalid (the error names the option and the field).
    #[error("{}", config_error(.0))]
    Config(#[from] ConfigError),
    /// No sentinel answered; each one is listed with why.
    #[error("no sentinel answered: {}", list(.0))]
    Unreachable(Vec<(Addr, String)>),
    /// The sentinels that answered do not monitor the service; the others are listed with why
    /// they did not answer.
    #[error("{}", unknown_service(.service, .failures))]
    UnknownService {
        /// The service asked for.
        service: String,
        /// Each sentinel asked, with its answer or failure.
        failures: Vec<(Addr, String)>,
    },
    /// The executor could not be created.
    #[error("cannot create the tokio runtime: {0}")]
    Runtime(std::io::Error),
    /// The Ctrl-C / SIGTERM handler could not be installed.
    #[error("cannot handle Ctrl-C and SIGTERM: {0}")]
    Signal(#[from] ctrlc::Error),
    /// The supervisor (of `watch`) stopped with an error.
    #[error("the supervisor stopped: {0}")]
    Supervisor(String),
}

/// The command-line option that sets the configuration field `field` (such as `sentinels[2]`
/// or `query_timeout`).
pub fn option_for(field: &str) -> String {
    let base = field.split('[').next().unwrap_or(field);
    match base {
        "sentinels" => "--sentinel".to_owned(),
        "service_name" => "--service".to_owned(),
        "sentinel_auth" => "--sentinel-password/--sentinel-user".to_owned(),
        "redis_auth" => "--redis-password/--redis-user".to_owned(),
        "tls_root_cert" => "--tls-ca".to_owned(),
        "tls_client_cert" => "--tls-cert/--tls-key".to_owned(),
        other => format!("--{}", crate::settings::flag(other)),
    }
}

/// An invalid setting for people: the option and the field, then the problem, e.g.
/// ``invalid --query-timeout (setting `query_timeout`): must be positive``.
pub fn config_error(e: &ConfigError) -> String {
    if e.is_unknown_setting() {
        return format!("unknown setting `{}`", e.field());
    }
    format!(
        "invalid {} (setting `{}`): {}",
        option_for(e.field()),
        e.field(),
        e.problem()
    )
}

fn list(failures: &[(Addr, String)]) -> String {
    failures
        .iter()
        .map(|(a, e)| format!("sentinel {a}: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether a sentinel's answer says it does not monitor the service.
fn no_such_master(failure: &str) -> bool {
    failure.to_ascii_lowercase().contains("no such master")
}

fn unknown_service(service: &str, failures: &[(Addr, String)]) -> String {
    let (unknown, other): (Vec<_>, Vec<_>) = failures
        .iter()
        .cloned()
        .partition(|(_, e)| no_such_master(e));
    let said: Vec<String> = unknown.iter().map(|(a, _)| a.to_string()).collect();
    let mut text = format!(
        "sentinel(s) {} do not monitor a master named `{service}`",
        said.join(", ")
    );
    if !other.is_empty() {
        text.push_str(&format!("; {}", list(&other)));
    }
    text
}

/// The exit status for a supervisor that did not start ([`crate::exit`]): 2 for an invalid
/// setting, 3 when no sentinel could be reached, 4 when the sentinels do not know the service
/// or its master failed verification, else 1.
pub fn start_error_code(e: &StartError) -> u8 {
    match e {
        StartError::InvalidConfig { .. } => exit::USAGE,
        StartError::NoSentinelReachable { .. }
        | StartError::DeadlinePassed {
            last: Some(DiscoveryError::SentinelsUnreachable { .. }),
            ..
        } => exit::UNREACHABLE,
        StartError::MasterNameUnknown { .. }
        | StartError::VerificationFailed { .. }
        | StartError::DeadlinePassed { .. } => exit::UNKNOWN_SERVICE,
        _ => exit::FAILED,
    }
}

impl CliError {
    /// The error of a status query that no sentinel answered: [`CliError::UnknownService`]
    /// when a sentinel said it does not know the service, else [`CliError::Unreachable`].
    pub fn from_status(service: &str, e: StatusError) -> Self {
        match e {
            StatusError::NoSentinel { failures } => {
                if failures.iter().any(|(_, e)| no_such_master(e)) {
                    CliError::UnknownService {
                        service: service.to_owned(),
                        failures,
                    }
                } else {
                    CliError::Unreachable(failures)
                }
            }
            other => CliError::Supervisor(other.to_string()),
        }
    }

    /// The process exit status for this error (see [`crate::exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Config(_) => exit::USAGE,
            CliError::Unreachable(_) => exit::UNREACHABLE,
            CliError::UnknownService { .. } => exit::UNKNOWN_SERVICE,
            CliError::Runtime(_) | CliError::Signal(_) | CliError::Supervisor(_) => exit::FAILED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_each_sentinel_and_pick_the_exit_status() {
        let refused = (
            Addr::new("10.0.0.1", 26379),
            "connection refused".to_owned(),
        );
        let unknown = (
            Addr::new("10.0.0.2", 26379),
            "SENTINEL MASTER: ERR No such master with that name".to_owned(),
        );
        let e = CliError::from_status(
            "svc",
            StatusError::NoSentinel {
                failures: vec![refused.clone()],
            },
        );
        assert_eq!(e.exit_code(), exit::UNREACHABLE);
        assert_eq!(
            e.to_string(),
            "no sentinel answered: sentinel 10.0.0.1:26379: connection refused"
        );
        let e = CliError::from_status(
            "svc",
            StatusError::NoSentinel {
                failures: vec![refused, unknown],
            },
        );
        assert_eq!(e.exit_code(), exit::UNKNOWN_SERVICE);
        assert_eq!(
            e.to_string(),
            "sentinel(s) 10.0.0.2:26379 do not monitor a master named `svc`; \
             sentinel 10.0.0.1:26379: connection refused"
        );
    }

    #[test]
    fn invalid_settings_name_the_option_and_the_field() {
        let e = CliError::from(ConfigError::new("sentinels[1]", "`x` is not `host:port`"));
        assert_eq!(e.exit_code(), exit::USAGE);
        assert_eq!(
            e.to_string(),
            "invalid --sentinel (setting `sentinels[1]`): `x` is not `host:port`"
        );
        assert_eq!(
            config_error(&ConfigError::new("query_timeout", "must be positive")),
            "invalid --query-timeout (setting `query_timeout`): must be positive"
        );
        assert_eq!(
            config_error(&ConfigError::unknown_setting("bogus")),
            "unknown setting `bogus`"
        );
    }
}
