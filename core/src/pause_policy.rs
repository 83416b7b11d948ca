//! [`PauseTimeoutPolicy`]: what happens when workers do not pause in time, and its text form
//! for [`ConfigBuilder::set`](crate::ConfigBuilder::set).

use crate::config_error::ConfigError;
use crate::setting::FromSetting;
use crate::setting_info::SettingKind;

/// What happens when workers do not pause within [`Config::pause_timeout`](crate::Config::pause_timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseTimeoutPolicy {
    /// Stop the workers with [`Config::stop_grace`](crate::Config::stop_grace), then exit the process with `code`
    /// (the original middleware's behaviour, code 69 = `EX_UNAVAILABLE`).
    Exit {
        /// The process exit code, 1 to 255.
        code: u8,
    },
    /// Stop the workers with [`Config::stop_grace`](crate::Config::stop_grace), then stop the supervisor with an error
    /// the application can handle.
    Fail,
}

impl FromSetting for PauseTimeoutPolicy {
    const KIND: SettingKind = SettingKind::PausePolicy;
    fn parse(field: &str, text: &str) -> Result<Self, ConfigError> {
        match text.split_once(':') {
            _ if text == "fail" => Ok(PauseTimeoutPolicy::Fail),
            Some(("exit", code)) => Ok(PauseTimeoutPolicy::Exit {
                code: code.parse().map_err(|_| {
                    ConfigError::new(field, format!("exit code `{code}` is not 1..=255"))
                })?,
            }),
            _ => Err(ConfigError::new(
                field,
                format!("`{text}` is neither `exit:<code>` nor `fail`"),
            )),
        }
    }
}
