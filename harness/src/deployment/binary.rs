//! Finding the server binary: `REDIS_SERVER` (a `redis-server` or a `valkey-server`), else
//! `redis-server` on `PATH`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::error::{HarnessError, Result};

/// Environment variable that points the harness at a specific server binary: a
/// `redis-server` (Redis 7.0 or newer) or a `valkey-server` (any Valkey). Data nodes and
/// sentinels (`<binary> <conf> --sentinel`) are both started from it.
pub const REDIS_SERVER_ENV: &str = "REDIS_SERVER";

/// Which server a binary is, from its `--version` banner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerKind {
    /// `Redis server v=...`
    Redis,
    /// `Valkey server v=...` (the Redis 7.2 fork; speaks the same protocol and Sentinel).
    Valkey,
}

impl ServerKind {
    /// `Redis` or `Valkey`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Redis => "Redis",
            Self::Valkey => "Valkey",
        }
    }
}

/// A `redis-server` or `valkey-server` binary that was found and answered `--version`.
#[derive(Clone, Debug)]
pub struct RedisBinary {
    path: PathBuf,
    kind: ServerKind,
    version: String,
}

impl RedisBinary {
    /// Finds `redis-server`: the path in `REDIS_SERVER` if set, otherwise the first
    /// `redis-server` on `PATH`. The result is cached for the whole process.
    ///
    /// Fails with [`HarnessError::RedisServerNotFound`] (which says how to install Redis) when
    /// nothing is found; the harness never skips silently.
    pub fn locate() -> Result<Self> {
        static CACHE: OnceLock<Result<RedisBinary, HarnessError>> = OnceLock::new();
        match CACHE.get_or_init(Self::locate_uncached) {
            Ok(binary) => Ok(binary.clone()),
            Err(e) => Err(again(e)),
        }
    }

    fn locate_uncached() -> Result<Self> {
        let path = find(std::env::var_os(REDIS_SERVER_ENV), std::env::var_os("PATH"))?;
        let (kind, version) = version_of(&path)?;
        Ok(Self {
            path,
            kind,
            version,
        })
    }

    /// The binary's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The version it reports, e.g. `7.0.15` (Redis) or `8.1.8` (Valkey).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Redis or Valkey.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// Server and version for people, e.g. `Redis 7.0.15` or `Valkey 8.1.8`.
    pub fn describe(&self) -> String {
        format!("{} {}", self.kind.name(), self.version)
    }
}

/// The cached failure of [`RedisBinary::locate`] once more, as it was: `locate_uncached` fails
/// with one of the two variants that say what is wrong with the binary.
fn again(e: &HarnessError) -> HarnessError {
    match e {
        HarnessError::RedisServerUnusable { binary, detail } => HarnessError::RedisServerUnusable {
            binary: binary.clone(),
            detail: detail.clone(),
        },
        HarnessError::RedisServerNotFound { detail } => HarnessError::RedisServerNotFound {
            detail: detail.clone(),
        },
        other => HarnessError::RedisServerNotFound {
            detail: other.to_string(),
        },
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

fn version_of(path: &Path) -> Result<(ServerKind, String)> {
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
    if !output.status.success() {
        return Err(unusable(format!(
            "`--version` printed {:?} ({})",
            text.trim(),
            output.status
        )));
    }
    parse_version(&text).map_err(unusable)
}

/// Parses a `--version` banner: `Redis server v=7.0.15 sha=...` or
/// `Valkey server v=8.1.8 sha=...`. Redis must be 7.0 or newer (the harness uses
/// `bind-source-addr` and sentinel ACL users); every Valkey release (7.2 and later) has both.
fn parse_version(text: &str) -> Result<(ServerKind, String), String> {
    let kind = if text.contains("Redis server") {
        ServerKind::Redis
    } else if text.contains("Valkey server") {
        ServerKind::Valkey
    } else {
        return Err(format!(
            "`--version` printed {:?}, neither a Redis nor a Valkey server",
            text.trim()
        ));
    };
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
        return Err(format!(
            "{} {version} is too old, the harness needs Redis 7.0 or newer or Valkey \
             (bind-source-addr, sentinel ACL users)",
            kind.name()
        ));
    }
    Ok((kind, version))
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
    fn a_cached_failure_reads_as_it_did_the_first_time() {
        let failures = [
            find(None, Some("/nonexistent-dir".into())).map(|_| ()),
            Err(HarnessError::RedisServerUnusable {
                binary: "/usr/bin/redis-server".into(),
                detail: "`--version` printed \"\"".to_owned(),
            }),
        ];
        for failure in failures {
            let Err(first) = failure else {
                panic!("expected a failure");
            };
            let message = first.to_string();
            assert_eq!(again(&first).to_string(), message);
            // The hint on how to install Redis, once at most.
            assert!(message.matches("apt-get install").count() <= 1, "{message}");
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

    #[test]
    fn redis_and_valkey_banners_are_parsed() {
        let cases = [
            (
                "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=e08dbad3e06f3fb\n",
                Ok((ServerKind::Redis, "7.0.15".to_owned())),
            ),
            (
                "Valkey server v=8.1.8 sha=00000000:1 malloc=libc bits=64 build=7eb4ebc9d7e91f4e\n",
                Ok((ServerKind::Valkey, "8.1.8".to_owned())),
            ),
            (
                "Redis server v=6.2.14 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=1\n",
                Err("too old"),
            ),
            (
                "KeyDB server v=6.3.4\n",
                Err("neither a Redis nor a Valkey"),
            ),
        ];
        for (banner, expected) in cases {
            match (parse_version(banner), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{banner}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{banner}: {got}"),
                (got, want) => panic!("{banner}: got {got:?}, expected {want:?}"),
            }
        }
    }
}
