//! The supervisor's configuration: the core's settings ([`CoreConfig`], what the failover
//! logic decides with) plus the settings of the I/O this crate does (credentials, TLS, the
//! database, command and hold timeouts), validated here. One builder sets both.

use dramatiq_sentinel_core::setting::{self, FromSetting};
use dramatiq_sentinel_core::{
    Config as CoreConfig, ConfigBuilder as CoreBuilder, ConfigError, SETTINGS, SettingInfo,
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

/// The settings of the supervisor's own I/O: the credentials and certificates (typed setters
/// only), and the settings of [`io_settings!`] (typed setters and text).
#[derive(Debug, Clone, Default)]
struct Io {
    sentinel_auth: Option<Credentials>,
    redis_auth: Option<Credentials>,
    tls_root_cert: Option<Vec<u8>>,
    tls_client_cert: Option<ClientCert>,
    table: IoTable,
}

/// The supervisor's I/O settings that [`ConfigBuilder::set`] reads from text, the one list of
/// them: each one's documentation, name, type, default (as text, and as a value) and bounds.
/// It calls `$callback! { entries }`, which makes their field, setter, getter, row of
/// [`IO_SETTINGS`], text setter and bounds check.
macro_rules! io_settings {
    ($callback:ident) => {
        $callback! {
            /// Use TLS for every connection (needs the shim's TLS feature). Default false.
            tls: bool = false, "false", "a boolean";
            /// Database number selected on data-node connections (`SELECT`). Default 0.
            db: u32 = 0, "0", "0..2^32";
            /// Timeout of one application command on the master connection; a timeout is
            /// reported as a trigger to re-check the master. Must exceed the timeout of any
            /// blocking command you send. `None` (`off`) disables it. Default 5 s.
            command_timeout: Option<Duration> = Some(Duration::from_secs(5)), "5",
                "`off`, or above zero and at most 365 days";
            /// How long an application command waits while the master is fenced or switching,
            /// or unreachable before the command was sent, before it fails with a clear error.
            /// Default 30 s.
            hold_timeout: Duration = Duration::from_secs(30), "30", "above zero, at most 365 days";
        }
    };
}

/// Makes, from [`io_settings!`], everything of each I/O setting.
macro_rules! io_table {
    ($($(#[doc = $doc:literal])* $name:ident: $ty:ty = $value:expr, $default:literal,
       $bounds:literal;)*) => {
        /// The values of the settings of [`io_settings!`].
        #[derive(Debug, Clone)]
        struct IoTable {
            $($name: $ty,)*
        }

        impl Default for IoTable {
            fn default() -> Self {
                Self { $($name: $value,)* }
            }
        }

        impl IoTable {
            /// Sets `field` from text; `Ok(false)` if it is not one of these settings.
            fn set(&mut self, field: &str, text: &str) -> Result<bool, ConfigError> {
                match field {
                    $(stringify!($name) => self.$name = <$ty as FromSetting>::parse(field, text)?,)*
                    _ => return Ok(false),
                }
                Ok(true)
            }

            /// Checks the bounds every setting of its type has.
            fn check(&self) -> Result<(), ConfigError> {
                $(<$ty as FromSetting>::check(&self.$name, stringify!($name))?;)*
                Ok(())
            }
        }

        impl ConfigBuilder {
            $($(#[doc = $doc])* pub fn $name(mut self, value: $ty) -> Self {
                self.io.table.$name = value;
                self
            })*
        }

        impl Config {
            $($(#[doc = $doc])* pub fn $name(&self) -> $ty {
                self.io.table.$name
            })*
        }

        /// The settings of the supervisor's own I/O that [`ConfigBuilder::set`] reads from
        /// text, in the form of the core's [`SETTINGS`] (credentials and certificates have
        /// typed setters only).
        pub const IO_SETTINGS: &[SettingInfo] = &[
            $(setting::row::<$ty>(
                stringify!($name),
                $default,
                $bounds,
                concat!($($doc, "\n"),*),
            ),)*
        ];
    };
}

io_settings!(io_table);

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

    /// The CA certificates (PEM) TLS connections trust instead of the system's.
    pub fn tls_root_cert(&self) -> Option<&[u8]> {
        self.io.tls_root_cert.as_deref()
    }

    /// The client certificate TLS connections present.
    pub fn tls_client_cert(&self) -> Option<&ClientCert> {
        self.io.tls_client_cert.as_ref()
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

/// Setters that hand the value to the core's builder, made from the core's list of its
/// settings ([`dramatiq_sentinel_core::core_settings!`]), with the same documentation.
macro_rules! forward_core_settings {
    ($($(#[doc = $doc:literal])* $name:ident: $ty:ty = $default:literal, $bounds:literal;)*) => {
        impl ConfigBuilder {
            $($(#[doc = $doc])* pub fn $name(mut self, value: $ty) -> Self {
                self.core = self.core.$name(value);
                self
            })*
        }
    };
}

dramatiq_sentinel_core::core_settings!(forward_core_settings);

impl ConfigBuilder {
    /// Every setting [`set`](Self::set) accepts: the core's [`SETTINGS`], then
    /// [`IO_SETTINGS`].
    pub fn settings() -> impl Iterator<Item = &'static SettingInfo> {
        SETTINGS.iter().chain(IO_SETTINGS)
    }

    /// The setting named `name`, if [`set`](Self::set) accepts it.
    pub fn setting(name: &str) -> Option<&'static SettingInfo> {
        Self::settings().find(|s| s.name() == name)
    }

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

    /// Sets one field from text, as a command line or environment would give it: durations in
    /// seconds (`0.5`), `off`/`none` for optional durations, booleans `true`/`false`, lists
    /// comma-separated (`sentinels`), NAT as `announced=reachable,...`, `on_pause_timeout` as
    /// `exit:<code>` or `fail`, `jitter_seed` as a number or `off`, `db` as a number. Every
    /// setting of the builder that is not a credential or a certificate can be set this way.
    pub fn set(mut self, field: &str, value: &str) -> Result<Self, ConfigError> {
        if !self.io.table.set(field, value.trim())? {
            self.core = self.core.set(field, value)?;
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
        io.table.check()?;
        let pem = |field: &str, bytes: &[u8], label: &str| {
            let text = String::from_utf8_lossy(bytes);
            if !text.contains("-----BEGIN ") || !text.contains(label) {
                return Err(ConfigError::new(
                    field,
                    format!("not PEM: no `-----BEGIN ...{label}` block"),
                ));
            }
            if !io.table.tls {
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
    use dramatiq_sentinel_core::{PauseTimeoutPolicy, SettingKind};

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

    /// Each I/O setting's default as text (its row of `IO_SETTINGS`) is its default value.
    #[test]
    fn the_defaults_of_the_io_table_are_the_builders() {
        let default = Config::builder().build().expect("defaults");
        for info in IO_SETTINGS {
            let set = Config::builder()
                .tls(true)
                .db(9)
                .command_timeout(None)
                .hold_timeout(Duration::from_secs(1))
                .set(info.name(), info.default())
                .and_then(ConfigBuilder::build)
                .unwrap_or_else(|e| panic!("{}: {e}", info.name()));
            let value = |c: &Config| match info.name() {
                "tls" => format!("{}", c.tls()),
                "db" => format!("{}", c.db()),
                "command_timeout" => format!("{:?}", c.command_timeout()),
                "hold_timeout" => format!("{:?}", c.hold_timeout()),
                other => panic!("a row without a case here: {other}"),
            };
            assert_eq!(value(&set), value(&default), "{}", info.name());
        }
    }

    #[test]
    fn set_accepts_the_rows_of_both_tables_and_nothing_else() {
        let default = format!("{:?}", Config::builder());
        let names: Vec<_> = ConfigBuilder::settings().map(SettingInfo::name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            names.len(),
            "a name in both tables: {names:?}"
        );
        for info in ConfigBuilder::settings() {
            let b = Config::builder()
                .set(info.name(), info.default())
                .unwrap_or_else(|e| panic!("default of {}: {e}", info.name()));
            assert_eq!(format!("{b:?}"), default, "default of {}", info.name());
            assert!(!info.doc().is_empty(), "{}", info.name());
        }
        for info in IO_SETTINGS {
            let value = match info.kind() {
                SettingKind::Bool => "true",
                SettingKind::OptionalDuration => "off",
                _ => "7",
            };
            let b = Config::builder().set(info.name(), value).expect("valid");
            assert_ne!(format!("{b:?}"), default, "{} = {value}", info.name());
        }
        for wrong in [
            "sentinel_auth",
            "tls_root_cert",
            "tls_client_cert",
            "dbx",
            "",
        ] {
            let e = Config::builder().set(wrong, "1").err();
            assert!(
                e.as_ref().is_some_and(ConfigError::is_unknown_setting),
                "{wrong}: {e:?}"
            );
        }
    }

    #[test]
    fn the_forwarding_setters_are_the_cores_rows() {
        // Each typed setter of the core is forwarded: setting it here and setting its row by
        // text give the same configuration.
        let typed = Config::builder()
            .query_timeout(Duration::from_millis(250))
            .jitter_seed(Some(5))
            .on_pause_timeout(PauseTimeoutPolicy::Fail)
            .deposed_pause(None)
            .max_sentinels(9)
            .build()
            .expect("valid");
        let text = Config::builder()
            .set("query_timeout", "0.25")
            .and_then(|b| b.set("jitter_seed", "5"))
            .and_then(|b| b.set("on_pause_timeout", "fail"))
            .and_then(|b| b.set("deposed_pause", "off"))
            .and_then(|b| b.set("max_sentinels", "9"))
            .and_then(ConfigBuilder::build)
            .expect("valid");
        assert_eq!(format!("{typed:?}"), format!("{text:?}"));
    }

    /// The README's configuration table, made from the settings table: one row per setting
    /// `set()` reads, with its default as `set()` reads it, its bounds and the first sentence
    /// of its documentation.
    fn readme_table() -> String {
        let mut table =
            String::from("| setting | default | accepted | meaning |\n|---|---|---|---|\n");
        for info in ConfigBuilder::settings() {
            let default = match info.default() {
                "" => "empty".to_owned(),
                text => format!("`{text}`"),
            };
            table.push_str(&format!(
                "| `{}` | {default} | {} | {} |\n",
                info.name(),
                info.bounds(),
                info.summary()
            ));
        }
        table
    }

    #[test]
    fn the_readme_table_is_the_settings_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
        // The README is beside the workspace, not in the packaged crate.
        let Ok(readme) = std::fs::read_to_string(path) else {
            return;
        };
        let table = readme_table();
        assert!(
            readme.contains(&table),
            "README.md's configuration table is not the settings table; it should read:\n{table}"
        );
    }
}
