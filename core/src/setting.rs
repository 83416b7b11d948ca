//! Parsing one setting from text, as a command line, an environment variable or another
//! language's keyword gives it, with errors that name the setting. Used by
//! [`ConfigBuilder::set`](crate::ConfigBuilder::set) and by the runtimes' settings of their own.

use crate::config_error::{ConfigError, MAX_DURATION};
use crate::setting_info::{SettingInfo, SettingKind};
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

/// The row of the settings table for a setting of type `T`: `T`'s kind, with the setting's
/// name, default and bounds as text, and documentation.
pub const fn row<T: FromSetting>(
    name: &'static str,
    default: &'static str,
    bounds: &'static str,
    doc: &'static str,
) -> SettingInfo {
    SettingInfo::new(name, T::KIND, default, bounds, doc)
}

/// A value type of a typed setting: its kind, how `set()` reads it from text (with errors
/// that name the setting) and the bounds every setting of the type has. The core's settings
/// and the runtimes' settings of their own are built on it.
pub trait FromSetting: Sized {
    /// The kind of text it is read from.
    const KIND: SettingKind;
    /// Reads `text` (trimmed) for `field`.
    fn parse(field: &str, text: &str) -> Result<Self, ConfigError>;
    /// Whether a value of `field`, however it was set (typed setter or text), is in the
    /// bounds every setting of its type has ([`ConfigBuilder::build`](crate::ConfigBuilder::build)
    /// checks each; the bounds particular to one setting are checked there by name).
    fn check(&self, _field: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}

impl FromSetting for Duration {
    const KIND: SettingKind = SettingKind::Duration;
    fn parse(field: &str, text: &str) -> Result<Self, ConfigError> {
        seconds(field, text)
    }
    fn check(&self, field: &str) -> Result<(), ConfigError> {
        check_duration(field, Some(*self))
    }
}

impl FromSetting for Option<Duration> {
    const KIND: SettingKind = SettingKind::OptionalDuration;
    fn parse(field: &str, text: &str) -> Result<Self, ConfigError> {
        optional_seconds(field, text)
    }
    fn check(&self, field: &str) -> Result<(), ConfigError> {
        check_duration(field, *self)
    }
}

impl FromSetting for bool {
    const KIND: SettingKind = SettingKind::Bool;
    fn parse(field: &str, text: &str) -> Result<Self, ConfigError> {
        boolean(field, text)
    }
}

impl FromSetting for f64 {
    const KIND: SettingKind = SettingKind::Number;
    fn parse(field: &str, text: &str) -> Result<Self, ConfigError> {
        number(field, text)
    }
}

impl FromSetting for usize {
    const KIND: SettingKind = SettingKind::Integer;
    fn parse(field: &str, text: &str) -> Result<Self, ConfigError> {
        text.parse()
            .map_err(|_| ConfigError::new(field, format!("`{text}` is not a count")))
    }
}

impl FromSetting for u32 {
    const KIND: SettingKind = SettingKind::Integer;
    fn parse(field: &str, text: &str) -> Result<Self, ConfigError> {
        text.parse()
            .map_err(|_| ConfigError::new(field, format!("`{text}` is not a number 0..2^32")))
    }
}

impl FromSetting for Option<u64> {
    const KIND: SettingKind = SettingKind::OptionalInteger;
    fn parse(field: &str, text: &str) -> Result<Self, ConfigError> {
        match text {
            "off" | "none" | "" => Ok(None),
            _ => Ok(Some(text.parse().map_err(|_| {
                ConfigError::new(field, format!("`{text}` is not a number 0..2^64"))
            })?)),
        }
    }
}
