//! An invalid configuration value, and the bound every duration setting is checked against:
//! what [`crate::ConfigBuilder`] and the text parsers of [`crate::setting`] report.

use std::time::Duration;

/// The longest duration any setting accepts (365 days), so deadline arithmetic never overflows.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// The problem of a name that is not a setting.
const UNKNOWN_SETTING: &str = "unknown setting";

/// An invalid configuration value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: `{field}`: {problem}")]
pub struct ConfigError {
    field: String,
    problem: String,
}

impl ConfigError {
    /// An error about `field` (the setting's name, such as `min_backoff` or `sentinels[2]`).
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The error of a text setter given a name that is not a setting (the problem reads
    /// `unknown setting`).
    pub fn unknown_setting(field: impl Into<String>) -> Self {
        Self::new(field, UNKNOWN_SETTING)
    }

    /// Whether this is the error of a name that is not a setting.
    pub fn is_unknown_setting(&self) -> bool {
        self.problem == UNKNOWN_SETTING
    }

    /// The name of the offending setting, such as `min_backoff` or `sentinels[2]`.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong with it.
    pub fn problem(&self) -> &str {
        &self.problem
    }
}
