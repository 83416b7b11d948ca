//! An invalid configuration value, and the bound every duration setting is checked against:
//! what [`crate::ConfigBuilder`] and the text parsers of [`crate::setting`] report.

use std::time::Duration;

/// The longest duration any setting accepts (365 days), so deadline arithmetic never overflows.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

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

    /// The name of the offending setting, such as `min_backoff` or `sentinels[2]`.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong with it.
    pub fn problem(&self) -> &str {
        &self.problem
    }
}
