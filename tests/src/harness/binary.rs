//! Finding the `redis-server` binary (`REDIS_SERVER` or `PATH`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::error::{HarnessError, Result};

/// Environment variable that points the harness at a specific `redis-server` binary.
pub const REDIS_SERVER_ENV: &str = "REDIS_SERVER";

/// A `redis-server` binary that was found and answered `--version`.
#[derive(Clone, Debug)]
pub struct RedisBinary {
    path: PathBuf,
    version: String,
}

impl RedisBinary {
    /// Finds `redis-server`: the path in `REDIS_SERVER` if set, otherwise the first
    /// `redis-server` on `PATH`. The result is cached for the whole process.
    ///
    /// Fails with [`HarnessError::RedisServerNotFound`] (which says how to install Redis) when
    /// nothing is found; the harness never skips silently.
    pub fn locate() -> Result<Self> {
        static CACHE: OnceLock<Result<RedisBinary, String>> = OnceLock::new();
        match CACHE.get_or_init(|| Self::locate_uncached().map_err(|e| e.to_string())) {
            Ok(binary) => Ok(binary.clone()),
            Err(message) => Err(HarnessError::RedisServerNotFound {
                detail: message.clone(),
            }),
        }
    }

    fn locate_uncached() -> Result<Self> {
        let path = find(std::env::var_os(REDIS_SERVER_ENV), std::env::var_os("PATH"))?;
        let version = version_of(&path)?;
        Ok(Self { path, version })
    }

    /// The binary's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The version it reports, e.g. `7.0.15`.
    pub fn version(&self) -> &str {
        &self.version
    }
}

/// The binary named by `REDIS_SERVER` (`env`), else `redis-server` on `PATH` (`path`).
fn find(env: Option<OsString>, path: Option<OsString>) -> Result<PathBuf> {
    if let Some(value) = env.filter(|v| !v.is_empty()) {
        let binary = PathBuf::from(value);
        return if binary.is_file() {
            Ok(binary)
        } else {
            Err(HarnessError::RedisServerNotFound {
                detail: format!(
                    "{REDIS_SERVER_ENV}={} does not name a file",
                    binary.display()
                ),
            })
        };
    }
    path.as_deref()
        .and_then(|paths| {
            std::env::split_paths(paths)
                .map(|dir| dir.join("redis-server"))
                .find(|candidate| candidate.is_file())
        })
        .ok_or_else(|| HarnessError::RedisServerNotFound {
            detail: format!("no redis-server on PATH and {REDIS_SERVER_ENV} is not set"),
        })
}

fn version_of(path: &Path) -> Result<String> {
    let unusable = |detail: String| HarnessError::RedisServerUnusable {
        binary: path.to_path_buf(),
        detail,
    };
    let output = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| unusable(format!("cannot run `--version`: {e}")))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !text.contains("Redis server") {
        return Err(unusable(format!(
            "`--version` printed {:?} ({})",
            text.trim(),
            output.status
        )));
    }
    let version = text
        .split_whitespace()
        .find_map(|word| word.strip_prefix("v="))
        .unwrap_or("unknown")
        .to_owned();
    let major = version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    if major.is_some_and(|m| m < 7) {
        return Err(unusable(format!(
            "version {version} is too old, the harness needs Redis 7.0 or newer \
             (bind-source-addr, sentinel ACL users)"
        )));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_error_says_how_to_install() {
        for error in [
            find(Some("/nonexistent/redis-server".into()), None),
            find(None, Some("/nonexistent-dir".into())),
            find(None, None),
        ] {
            let message = match error {
                Err(e @ HarnessError::RedisServerNotFound { .. }) => e.to_string(),
                other => panic!("expected RedisServerNotFound, got {other:?}"),
            };
            assert!(
                message.contains("apt-get install redis-server redis-sentinel"),
                "{message}"
            );
            assert!(
                message.contains("REDIS_SERVER=/path/to/redis-server"),
                "{message}"
            );
        }
    }

    #[test]
    fn redis_server_env_wins_over_path() {
        let this = std::env::current_exe().map_err(|e| e.to_string());
        let Ok(this) = this else {
            panic!("no current exe: {this:?}")
        };
        let found = find(
            Some(this.clone().into_os_string()),
            Some("/nonexistent".into()),
        );
        assert_eq!(found.ok(), Some(this));
    }
}
