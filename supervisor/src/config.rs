//! The supervisor's configuration: the core's settings ([`CoreConfig`], what the failover
//! logic decides with) plus the settings of the I/O this crate does (credentials, TLS, the
//! database, command and hold timeouts), validated here. One builder sets both.

use dramatiq_sentinel_core::{
    Config as CoreConfig, ConfigBuilder as CoreBuilder, ConfigError, PauseTimeoutPolicy, setting,
};
use std::fmt;
use std::ops::Deref;
use std::time::Duration;

/// Username (for Redis ACL) and password for sentinels or data nodes.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// ACL username; `None` authenticates as the default user (`AUTH <password>`).
    pub username: Option<String>,
    /// The password.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A client certificate and its private key (PEM), for servers that require one
/// (`tls-auth-clients yes`).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The certificate chain (PEM).
    pub cert: Vec<u8>,
    /// The private key (PEM).
    pub key: Vec<u8>,
}

impl fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCert")
            .field("cert", &format_args!("<{} bytes of PEM>", self.cert.len()))
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The settings of the supervisor's own I/O.
#[derive(Debug, Clone)]
struct Io {
    sentinel_auth: Option<Credentials>,
    redis_auth: Option<Credentials>,
    tls: bool,
    tls_root_cert: Option<Vec<u8>>,
    tls_client_cert: Option<ClientCert>,
    db: u32,
    command_timeout: Option<Duration>,
    hold_timeout: Duration,
}

impl Default for Io {
    fn default() -> Self {
        Io {
            sentinel_auth: None,
            redis_auth: None,
            tls: false,
            tls_root_cert: None,
            tls_client_cert: None,
            db: 0,
            command_timeout: Some(Duration::from_secs(5)),
            hold_timeout: Duration::from_secs(30),
        }
    }
}

/// The validated configuration of a supervisor: the core's settings (read through `Deref`:
/// `config.pause_timeout()`, `config.service_name()`, ...) and the supervisor's I/O settings.
/// See [`ConfigBuilder`] for the meaning and default of each.
#[derive(Debug, Clone)]
pub struct Config {
    core: CoreConfig,
    io: Io,
}

impl Config {
    /// A builder holding the defaults (the original middleware's where it had the setting).
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// The core's settings.
    pub fn core(&self) -> &CoreConfig {
        &self.core
    }

    /// Credentials for sentinels.
    pub fn sentinel_auth(&self) -> Option<&Credentials> {
        self.io.sentinel_auth.as_ref()
    }

    /// Credentials for data nodes.
    pub fn redis_auth(&self) -> Option<&Credentials> {
        self.io.redis_auth.as_ref()
    }

    /// Whether every connection uses TLS.
    pub fn tls(&self) -> bool {
        self.io.tls
    }

    /// The CA certificates (PEM) TLS connections trust instead of the system's.
    pub fn tls_root_cert(&self) -> Option<&[u8]> {
        self.io.tls_root_cert.as_deref()
    }

    /// The client certificate TLS connections present.
    pub fn tls_client_cert(&self) -> Option<&ClientCert> {
        self.io.tls_client_cert.as_ref()
    }

    /// The database selected on data-node connections.
    pub fn db(&self) -> u32 {
        self.io.db
    }

    /// Timeout of one application command; `None` when off.
    pub fn command_timeout(&self) -> Option<Duration> {
        self.io.command_timeout
    }

    /// How long an application command waits for a verified master.
    pub fn hold_timeout(&self) -> Duration {
        self.io.hold_timeout
    }

    /// The same configuration with `drain` on (the supervisor uses it when the worker pool
    /// asks for a drain).
    pub fn with_drain(mut self) -> Self {
        self.core = self.core.with_drain();
        self
    }

    /// The same configuration with `jitter_seed` set (the supervisor gives each process a
    /// seed of its own when the user set none).
    pub fn with_jitter_seed(mut self, seed: u64) -> Self {
        self.core = self.core.with_jitter_seed(seed);
        self
    }
}

impl Deref for Config {
    type Target = CoreConfig;

    fn deref(&self) -> &CoreConfig {
        &self.core
    }
}

/// Builds a [`Config`]: every setting of the core and of the supervisor's I/O. Invalid values
/// are rejected by [`ConfigBuilder::build`] with a [`ConfigError`] naming the field.
#[derive(Debug, Clone, Default)]
pub struct ConfigBuilder {
    core: CoreBuilder,
    io: Io,
}

/// Setters that hand the value to the core's builder, with its documentation.
macro_rules! core_settings {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        impl ConfigBuilder {
            $($(#[$doc])* pub fn $name(mut self, value: $ty) -> Self {
                self.core = self.core.$name(value);
                self
            })*
        }
    };
}

core_settings! {
    /// Timeout of one sentinel command (the original middleware's `socket_timeout`).
    /// Default 0.5 s.
    query_timeout: Duration,
    /// Timeout to open a connection to a sentinel or data node and get its first answer
    /// (subscription, `ROLE`). Default 1 s.
    connect_timeout: Duration,
    /// First delay before a failed listener reconnects. Default 3 s.
    min_backoff: Duration,
    /// Longest listener reconnect delay. Default 60 s.
    max_backoff: Duration,
    /// Multiplier of the listener reconnect delay after each failure, at least 1. Default 2.0.
    backoff_factor: f64,
    /// First delay before re-asking the sentinels after a failed discovery. Default 0.1 s.
    retry_delay: Duration,
    /// Longest delay before re-asking the sentinels. Default 5 s.
    max_retry_delay: Duration,
    /// Re-discover the master on this interval, in case every event was missed. Default off.
    periodic_check: Option<Duration>,
    /// Drain the workers at each switch (wait for the jobs in flight before resuming).
    /// Default false.
    drain: bool,
    /// How long a drain may take before `on_pause_timeout`. Default 600 s.
    pause_timeout: Duration,
    /// Grace period for workers stopped after a pause timeout. Default 10 s.
    stop_grace: Duration,
    /// What happens after a pause timeout. Default exit with code 69.
    on_pause_timeout: PauseTimeoutPolicy,
    /// Fence on early failover signals and switch on the candidate's promotion. Default true.
    early_fencing: bool,
    /// How long an early fence waits for a promotion. Default 15 s.
    fence_timeout: Duration,
    /// Interval of the fallback `ROLE` polls of a failover candidate. Default 100 ms.
    role_poll_interval: Duration,
    /// Listener silence after which it is pinged. Default 2 s.
    health_check_interval: Duration,
    /// Deadline for the first verified master; `None` waits forever. Default 60 s.
    startup_timeout: Option<Duration>,
    /// Fail startup at once when every sentinel refuses us for good (or the master refuses
    /// our credentials). Default true.
    startup_fail_fast: bool,
    /// Keep one idle connection to every replica of the master in use, so a promotion fences
    /// at once even when no sentinel's event is heard. Default true.
    watch_replicas: bool,
    /// Pause writes on a deposed master that still answers, for this long, when switching
    /// away from it (`CLIENT PAUSE <ms> WRITE`); `None` never pauses. Default 2 s.
    deposed_pause: Option<Duration>,
    /// Learn other sentinels from `SENTINEL SENTINELS`. Default true.
    refresh_sentinels: bool,
    /// Most sentinels tracked, configured plus learned. Default 32.
    max_sentinels: usize,
    /// A learned sentinel unreachable this long is forgotten. Default 300 s.
    forget_sentinel_after: Duration,
    /// Seed of the backoff jitter; `None`: a random seed per process. Default `None`.
    jitter_seed: Option<u64>,
}

impl ConfigBuilder {
    /// Replaces the sentinel list (`host:port`, `[ipv6]:port`). Default `localhost:26379`.
    pub fn sentinels<I, S>(mut self, sentinels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.core = self.core.sentinels(sentinels);
        self
    }

    /// Name of the master the sentinels monitor. Default `"redis"`.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.core = self.core.service_name(name);
        self
    }

    /// Adds a NAT rule: the address a sentinel announces, and where to reach it instead.
    pub fn nat(mut self, announced: impl Into<String>, reachable: impl Into<String>) -> Self {
        self.core = self.core.nat(announced, reachable);
        self
    }

    /// Credentials for sentinels (`requirepass`, optionally an ACL user). Default none.
    pub fn sentinel_auth(mut self, credentials: Option<Credentials>) -> Self {
        self.io.sentinel_auth = credentials;
        self
    }

    /// Credentials for data nodes. Default none.
    pub fn redis_auth(mut self, credentials: Option<Credentials>) -> Self {
        self.io.redis_auth = credentials;
        self
    }

    /// Use TLS for every connection (needs the shim's TLS feature). Default false.
    pub fn tls(mut self, tls: bool) -> Self {
        self.io.tls = tls;
        self
    }

    /// CA certificates (PEM) that TLS connections trust instead of the system's trust store.
    /// Needs `tls`. Default none.
    pub fn tls_root_cert(mut self, pem: Option<Vec<u8>>) -> Self {
        self.io.tls_root_cert = pem;
        self
    }

    /// The client certificate TLS connections present (`tls-auth-clients yes`). Needs `tls`.
    /// Default none.
    pub fn tls_client_cert(mut self, cert: Option<ClientCert>) -> Self {
        self.io.tls_client_cert = cert;
        self
    }

    /// Database number selected on data-node connections (`SELECT`). Default 0.
    pub fn db(mut self, db: u32) -> Self {
        self.io.db = db;
        self
    }

    /// Timeout of one application command on the master connection; a timeout is reported as
    /// a trigger to re-check the master. Must exceed the timeout of any blocking command you
    /// send. `None` disables it. Default 5 s.
    pub fn command_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.io.command_timeout = timeout;
        self
    }

    /// How long an application command waits while the master is fenced or switching, or
    /// unreachable before the command was sent, before it fails with a clear error. Default
    /// 30 s.
    pub fn hold_timeout(mut self, timeout: Duration) -> Self {
        self.io.hold_timeout = timeout;
        self
    }

    /// Sets one field from text, as a command line or environment would give it: durations in
    /// seconds (`0.5`), `off`/`none` for optional durations, booleans `true`/`false`, lists
    /// comma-separated (`sentinels`), NAT as `announced=reachable,...`, `on_pause_timeout` as
    /// `exit:<code>` or `fail`, `jitter_seed` as a number or `off`, `db` as a number. Every
    /// setting of the builder that is not a credential or a certificate can be set this way.
    pub fn set(mut self, field: &str, value: &str) -> Result<Self, ConfigError> {
        let v = value.trim();
        match field {
            "tls" => self.io.tls = setting::boolean(field, v)?,
            "db" => {
                self.io.db = v.parse().map_err(|_| {
                    ConfigError::new(field, format!("`{v}` is not a database number 0..2^32"))
                })?
            }
            "command_timeout" => self.io.command_timeout = setting::optional_seconds(field, v)?,
            "hold_timeout" => self.io.hold_timeout = setting::seconds(field, v)?,
            _ => self.core = self.core.set(field, value)?,
        }
        Ok(self)
    }

    /// Validates every value and returns the configuration, or the first invalid field.
    pub fn build(self) -> Result<Config, ConfigError> {
        let core = self.core.build()?;
        let io = self.io;
        for (name, creds) in [
            ("sentinel_auth", &io.sentinel_auth),
            ("redis_auth", &io.redis_auth),
        ] {
            if let Some(c) = creds
                && c.username.as_deref() == Some("")
            {
                return Err(ConfigError::new(
                    name,
                    "username is empty (use None for the default user)",
                ));
            }
        }
        setting::check_duration("command_timeout", io.command_timeout)?;
        setting::check_duration("hold_timeout", Some(io.hold_timeout))?;
        let pem = |field: &str, bytes: &[u8], label: &str| {
            let text = String::from_utf8_lossy(bytes);
            if !text.contains("-----BEGIN ") || !text.contains(label) {
                return Err(ConfigError::new(
                    field,
                    format!("not PEM: no `-----BEGIN ...{label}` block"),
                ));
            }
            if !io.tls {
                return Err(ConfigError::new(field, "set, but `tls` is off"));
            }
            Ok(())
        };
        if let Some(root) = &io.tls_root_cert {
            pem("tls_root_cert", root, "CERTIFICATE-----")?;
        }
        if let Some(client) = &io.tls_client_cert {
            pem("tls_client_cert.cert", &client.cert, "CERTIFICATE-----")?;
            pem("tls_client_cert.key", &client.key, "PRIVATE KEY-----")?;
        }
        Ok(Config { core, io })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM_CERT: &[u8] = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const PEM_KEY: &[u8] = b"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

    fn field_of(b: Result<ConfigBuilder, ConfigError>) -> String {
        match b.and_then(ConfigBuilder::build) {
            Ok(_) => "accepted".into(),
            Err(e) => e.field().to_owned(),
        }
    }

    #[test]
    fn io_settings_are_validated_here_and_core_ones_by_the_core() {
        let b = Config::builder;
        let cases: Vec<(&str, Result<ConfigBuilder, ConfigError>)> = vec![
            ("db", b().set("db", "-1")),
            ("db", b().set("db", "x")),
            ("hold_timeout", Ok(b().hold_timeout(Duration::ZERO))),
            ("command_timeout", b().set("command_timeout", "0")),
            (
                "sentinel_auth",
                Ok(b().sentinel_auth(Some(Credentials {
                    username: Some(String::new()),
                    password: "p".into(),
                }))),
            ),
            (
                "tls_root_cert",
                Ok(b().tls(true).tls_root_cert(Some(b"junk".to_vec()))),
            ),
            (
                "tls_root_cert",
                Ok(b().tls_root_cert(Some(PEM_CERT.to_vec()))),
            ),
            (
                "tls_client_cert.key",
                Ok(b().tls(true).tls_client_cert(Some(ClientCert {
                    cert: PEM_CERT.to_vec(),
                    key: PEM_CERT.to_vec(),
                }))),
            ),
            ("pause_timeout", b().set("pause_timeout", "-1")),
            ("service_name", Ok(b().service_name("a b"))),
            ("nonsense", b().set("nonsense", "1")),
            ("accepted", b().set("db", "3")),
        ];
        for (field, builder) in cases {
            assert_eq!(field_of(builder), field);
        }
    }

    #[test]
    fn one_builder_sets_both_and_secrets_stay_out_of_debug() {
        let c = Config::builder()
            .service_name("svc")
            .pause_timeout(Duration::from_secs(7))
            .tls(true)
            .tls_root_cert(Some(PEM_CERT.to_vec()))
            .tls_client_cert(Some(ClientCert {
                cert: PEM_CERT.to_vec(),
                key: PEM_KEY.to_vec(),
            }))
            .set("hold_timeout", "2.5")
            .and_then(|b| b.set("drain", "true"))
            .and_then(ConfigBuilder::build)
            .expect("valid");
        assert_eq!(c.service_name(), "svc");
        assert_eq!(c.pause_timeout(), Duration::from_secs(7));
        assert!(c.drain());
        assert_eq!(c.hold_timeout(), Duration::from_millis(2500));
        assert_eq!(c.tls_root_cert(), Some(PEM_CERT));
        assert_eq!(c.db(), 0);
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("PRIVATE KEY") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
