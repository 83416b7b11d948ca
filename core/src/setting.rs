//! Parsing one setting from text, as a command line, an environment variable or another
//! language's keyword gives it, with errors that name the setting. Used by
//! [`ConfigBuilder::set`](crate::ConfigBuilder::set) and by the runtimes' settings of their own.

use crate::config_error::{ConfigError, MAX_DURATION};
use std::time::Duration;

/// `true`/`yes`/`on`/`1` or `false`/`no`/`off`/`0`.
pub fn boolean(field: &str, text: &str) -> Result<bool, ConfigError> {
    match text {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(ConfigError::new(
            field,
            format!("`{text}` is not a boolean"),
        )),
    }
}

/// A finite number.
pub fn number(field: &str, text: &str) -> Result<f64, ConfigError> {
    let x: f64 = text
        .parse()
        .map_err(|_| ConfigError::new(field, format!("`{text}` is not a number")))?;
    if !x.is_finite() {
        return Err(ConfigError::new(field, format!("`{text}` is not finite")));
    }
    Ok(x)
}

/// Seconds (`0.5`), not negative, at most [`MAX_DURATION`].
pub fn seconds(field: &str, text: &str) -> Result<Duration, ConfigError> {
    let secs = number(field, text)?;
    if secs < 0.0 {
        return Err(ConfigError::new(field, format!("`{text}` is negative")));
    }
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(ConfigError::new(
            field,
            format!("`{text}` s is longer than the maximum of 365 days"),
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// [`seconds`], or `off`/`none`/empty for none.
pub fn optional_seconds(field: &str, text: &str) -> Result<Option<Duration>, ConfigError> {
    match text {
        "off" | "none" | "" => Ok(None),
        _ => seconds(field, text).map(Some),
    }
}

/// A duration setting is above zero and at most [`MAX_DURATION`] (`None`, an optional one
/// turned off, passes).
pub fn check_duration(field: &str, value: Option<Duration>) -> Result<(), ConfigError> {
    match value {
        Some(d) if d.is_zero() => Err(ConfigError::new(field, "must be above zero")),
        Some(d) if d > MAX_DURATION => Err(ConfigError::new(
            field,
            format!("{d:?} is longer than the maximum of 365 days"),
        )),
        _ => Ok(()),
    }
}
