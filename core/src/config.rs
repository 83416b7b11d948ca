//! The validated configuration: the original middleware's settings and defaults plus what the core adds.
//!
//! Build it with [`Config::builder`]; [`ConfigBuilder::build`] rejects every invalid value with a
//! [`ConfigError`] naming the field. Nothing is clamped silently.

use crate::addr::{Addr, NatMap};
use crate::config_error::ConfigError;
use crate::pause_policy::PauseTimeoutPolicy;
use crate::setting::FromSetting;
use crate::setting_info::{SettingInfo, SettingKind};
use std::time::Duration;

/// The validated configuration of the core: what it decides with (the sentinels, the service,
/// timings of its own operations, the failover policy). The runtimes add the settings of their
/// I/O (credentials, TLS, database, command and hold timeouts) in their own configuration,
/// built with one builder. Every field has a getter of the same name; see [`ConfigBuilder`]
/// for the meaning and default of each.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) sentinels: Vec<Addr>,
    pub(crate) service_name: String,
    pub(crate) query_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) min_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) backoff_factor: f64,
    pub(crate) retry_delay: Duration,
    pub(crate) max_retry_delay: Duration,
    pub(crate) periodic_check: Option<Duration>,
    pub(crate) drain: bool,
    pub(crate) pause_timeout: Duration,
    pub(crate) stop_grace: Duration,
    pub(crate) on_pause_timeout: PauseTimeoutPolicy,
    pub(crate) nat: NatMap,
    pub(crate) early_fencing: bool,
    pub(crate) fence_timeout: Duration,
    pub(crate) role_poll_interval: Duration,
    pub(crate) health_check_interval: Duration,
    pub(crate) startup_timeout: Option<Duration>,
    pub(crate) startup_fail_fast: bool,
    pub(crate) refresh_sentinels: bool,
    pub(crate) max_sentinels: usize,
    pub(crate) forget_sentinel_after: Duration,
    pub(crate) jitter_seed: Option<u64>,
    pub(crate) watch_replicas: bool,
    pub(crate) deposed_pause: Option<Duration>,
}

impl Config {
    /// A builder holding the original middleware's defaults.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// The configured sentinels, in order.
    pub fn sentinels(&self) -> &[Addr] {
        &self.sentinels
    }

    /// The NAT map applied to every address a sentinel reports.
    pub fn nat(&self) -> &NatMap {
        &self.nat
    }

    /// Name of the master the sentinels monitor.
    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// The same configuration with `drain` on: runtimes use it when the worker pool asks for
    /// a drain.
    pub fn with_drain(mut self) -> Self {
        self.drain = true;
        self
    }

    /// The same configuration with `jitter_seed` set: runtimes use it to give each process
    /// a seed of its own when the user set none.
    pub fn with_jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
        self
    }
}

/// Builds a [`Config`]. Defaults are the original middleware's where it had the setting.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    sentinels: Vec<String>,
    nat: Vec<(String, String)>,
    cfg: Config,
}

impl Default for ConfigBuilder {
    fn default() -> Self {
        Self {
            sentinels: vec!["localhost:26379".to_owned()],
            nat: Vec::new(),
            cfg: Config {
                sentinels: Vec::new(),
                service_name: "redis".to_owned(),
                query_timeout: Duration::from_millis(500),
                connect_timeout: Duration::from_secs(1),
                min_backoff: Duration::from_secs(3),
                max_backoff: Duration::from_secs(60),
                backoff_factor: 2.0,
                retry_delay: Duration::from_millis(100),
                max_retry_delay: Duration::from_secs(5),
                periodic_check: None,
                drain: false,
                pause_timeout: Duration::from_secs(600),
                stop_grace: Duration::from_secs(10),
                on_pause_timeout: PauseTimeoutPolicy::Exit { code: 69 },
                nat: NatMap::new(),
                early_fencing: true,
                fence_timeout: Duration::from_secs(15),
                role_poll_interval: Duration::from_millis(100),
                health_check_interval: Duration::from_secs(2),
                startup_timeout: Some(Duration::from_secs(60)),
                startup_fail_fast: true,
                refresh_sentinels: true,
                max_sentinels: 32,
                forget_sentinel_after: Duration::from_secs(300),
                jitter_seed: None,
                watch_replicas: true,
                deposed_pause: Some(Duration::from_secs(2)),
            },
        }
    }
}

/// The core's settings that have a typed setter and getter of their own, in the order of
/// [`SETTINGS`](crate::SETTINGS) after `sentinels`, `service_name` and `nat`: each one's
/// documentation, name, type, default and bounds as text. The one list of them: it calls
/// `$callback! { entries }`, which makes this crate's setters, getters and settings table and
/// the runtimes' forwarding setters (`$(#[doc = ...])* name: Type = "default", "bounds";`).
#[doc(hidden)]
#[macro_export]
macro_rules! core_settings {
    ($callback:ident) => {
        $callback! {
            /// Timeout of one sentinel command, the original middleware's `socket_timeout`. Default 0.5 s.
            query_timeout: ::std::time::Duration = "0.5", "above zero, at most 365 days";
            /// Timeout to open a connection to a sentinel or data node and get its first answer
            /// (subscription, `ROLE`). Default 1 s.
            connect_timeout: ::std::time::Duration = "1", "above zero, at most 365 days";
            /// First delay before a failed listener reconnects, reset after a successful subscribe.
            /// Default 3 s.
            min_backoff: ::std::time::Duration = "3", "above zero, at most 365 days and at most `max_backoff`";
            /// Longest listener reconnect delay. Default 60 s.
            max_backoff: ::std::time::Duration = "60", "above zero, at most 365 days";
            /// Multiplier of the listener reconnect delay after each failure, at least 1. Default 2.0.
            backoff_factor: f64 = "2.0", "a finite number, at least 1";
            /// First delay before re-asking the sentinels after a failed discovery or a node that failed
            /// verification; grows by `backoff_factor` up to `max_retry_delay`. Default 0.1 s.
            retry_delay: ::std::time::Duration = "0.1", "above zero, at most 365 days and at most `max_retry_delay`";
            /// Longest delay before re-asking the sentinels. Default 5 s.
            max_retry_delay: ::std::time::Duration = "5", "above zero, at most 365 days";
            /// Re-discover the master on this interval, in case every event was missed. Default off.
            periodic_check: Option<::std::time::Duration> = "off", "`off`, or above zero and at most 365 days";
            /// Drain the workers at each switch: after the fence, wait until the jobs in flight are
            /// done (and the pool's own `pause` completed) before resuming on the new master, within
            /// `pause_timeout`. Off by default: jobs in flight keep running, their commands held by
            /// the fence and sent to the verified new master once it is active, and new jobs start as
            /// soon as it is; only pools that need a moment with no job running need a drain.
            drain: bool = "false", "a boolean";
            /// How long a drain may take (the original middleware's `worker_pausing_timeout_before_exit`); after it,
            /// `on_pause_timeout`. Only applies with `drain`. Default 600 s.
            pause_timeout: ::std::time::Duration = "600", "above zero, at most 365 days";
            /// Grace period for workers stopped after a pause timeout. Default 10 s.
            stop_grace: ::std::time::Duration = "10", "above zero, at most 365 days";
            /// What happens after a pause timeout. Default exit with code 69.
            on_pause_timeout: $crate::PauseTimeoutPolicy = "exit:69", "`fail`, or `exit:<code>` with a code 1..=255";
            /// Fence the master as soon as sentinels announce its failover (`+odown`, `+try-failover`,
            /// `+selected-slave`, ...) and switch as soon as the candidate's `ROLE` says master, without
            /// waiting for `+switch-master`. Default true.
            early_fencing: bool = "true", "a boolean";
            /// How long an early fence waits for a promotion before it re-verifies the old master and
            /// lifts itself. Default 15 s.
            fence_timeout: ::std::time::Duration = "15", "above zero, at most 365 days";
            /// Interval of the fallback `ROLE` polls of a failover candidate (each drawn from
            /// `[interval / 2, interval]`). The switch does not wait for them: a watch connection on
            /// the candidate notices its promotion at once (Sentinel closes every client connection of
            /// the replica it promotes). Default 100 ms.
            role_poll_interval: ::std::time::Duration = "0.1", "above zero, at most 365 days";
            /// Silence on a listener after which it is pinged; no answer within `query_timeout` marks it
            /// failed. Default 2 s.
            health_check_interval: ::std::time::Duration = "2", "above zero, at most 365 days";
            /// Deadline for finding a verified master at startup; `None` waits forever. Default 60 s.
            startup_timeout: Option<::std::time::Duration> = "60", "`off`, or above zero and at most 365 days";
            /// Stop startup with the error as soon as every sentinel answered with one that retrying
            /// will not fix (a wrong password or user, an address that is not a sentinel, a service
            /// none of them monitors), or the master they name refuses our credentials, instead of
            /// retrying until `startup_timeout`. Turn it off where the service or the credentials may
            /// appear later (a deployment being set up). Default true.
            startup_fail_fast: bool = "true", "a boolean";
            /// Learn other sentinels from `SENTINEL SENTINELS` and listen to them too. Default true.
            refresh_sentinels: bool = "true", "a boolean";
            /// Most sentinels tracked, configured plus learned. Default 32.
            max_sentinels: usize = "32", "at least the number of configured sentinels";
            /// A learned sentinel (not a configured one) whose listener has failed for this long
            /// without a successful subscription is forgotten (its listener stops); it is learned
            /// again if a sentinel still lists it. Default 300 s.
            forget_sentinel_after: ::std::time::Duration = "300", "above zero, at most 365 days";
            /// Keep one idle connection to every replica of the master in use (the sentinels'
            /// `SENTINEL REPLICAS` list, asked again 0.5 to 1 s after each switch and when the
            /// sentinels announce a change). Sentinel closes a replica's client connections when it promotes it, so a
            /// promotion fences within one round trip of it even when no sentinel's event is heard
            /// (its leader restarted, partitioned from this process, or its listener reconnecting).
            /// A closing that was not a promotion (a replica restarted, re-pointed, or a server
            /// `timeout` on idle clients) fences for one `ROLE` round trip. Costs one connection per
            /// replica and no command at rest. Default true.
            watch_replicas: bool = "true", "a boolean";
            /// When a switch moves to a promoted replica while the master it leaves still answers,
            /// pause writes on that deposed master for this long (`CLIENT PAUSE <ms> WRITE`, Redis 6.2
            /// or later, sent once, best effort): every client still writing to it (other processes
            /// of the fleet whose fence comes later, this process's own commands in flight) waits
            /// instead of being acknowledged by a master whose writes the new one never gets, and a
            /// process that fences meanwhile closes its connections, so its waiting writes never run.
            /// Keep it well below the sentinels' `down-after-milliseconds` (their link to the deposed
            /// master waits too: its `PUBLISH` of hellos is a write). The data-node user needs
            /// `CLIENT PAUSE` in its ACL (else a warning, and nothing is paused). `None` (`off`)
            /// never pauses. Default 2 s.
            deposed_pause: Option<::std::time::Duration> = "2", "`off`, or 1 ms to 365 days";
            /// Seed of the jitter drawn for every backoff and retry delay (each delay is drawn
            /// uniformly from `[base / 2, base]`). `None`: the runtime shims pick a random seed per
            /// process, so a fleet never retries in lockstep (the core itself, which never draws
            /// randomness, uses 0). Set it to replay a run exactly. Default `None`.
            jitter_seed: Option<u64> = "off", "`off`, or 0..2^64";
        }
    };
}

/// How [`ConfigBuilder::set`] applies one row of [`SETTINGS`] to the builder.
type Apply = fn(&mut ConfigBuilder, &str, &str) -> Result<(), ConfigError>;

/// What [`ConfigBuilder::set`] reads `sentinels` from.
const SENTINELS: SettingInfo = SettingInfo::new(
    "sentinels",
    SettingKind::Addresses,
    "localhost:26379",
    "at least one, no duplicates, at most `max_sentinels`",
    "The sentinels (`host:port`, `[ipv6]:port`), comma-separated.",
);

/// What [`ConfigBuilder::set`] reads `service_name` from.
const SERVICE_NAME: SettingInfo = SettingInfo::new(
    "service_name",
    SettingKind::Text,
    "redis",
    "non-empty, no whitespace",
    "Name of the master the sentinels monitor.",
);

/// What [`ConfigBuilder::set`] reads `nat` from.
const NAT: SettingInfo = SettingInfo::new(
    "nat",
    SettingKind::NatRules,
    "",
    "`announced=reachable` pairs of addresses, one rule per announced address",
    "NAT rules, comma-separated: the address a sentinel announces, and where to reach it instead.",
);

fn set_sentinels(b: &mut ConfigBuilder, _: &str, v: &str) -> Result<(), ConfigError> {
    b.sentinels = v.split(',').map(|s| s.trim().to_owned()).collect();
    Ok(())
}

fn set_service_name(b: &mut ConfigBuilder, _: &str, v: &str) -> Result<(), ConfigError> {
    b.cfg.service_name = v.to_owned();
    Ok(())
}

fn set_nat(b: &mut ConfigBuilder, _: &str, v: &str) -> Result<(), ConfigError> {
    for (i, rule) in v.split(',').filter(|r| !r.trim().is_empty()).enumerate() {
        let (a, r) = rule.split_once('=').ok_or_else(|| {
            ConfigError::new(format!("nat[{i}]"), "expected `announced=reachable`")
        })?;
        b.nat.push((a.trim().to_owned(), r.trim().to_owned()));
    }
    Ok(())
}

/// Makes, from [`core_settings!`], the typed setters and getters (with the same
/// documentation), the settings table and the text setter of each row.
macro_rules! core_table {
    ($($(#[doc = $doc:literal])* $name:ident: $ty:ty = $default:literal, $bounds:literal;)*) => {
        impl ConfigBuilder {
            $($(#[doc = $doc])* pub fn $name(mut self, value: $ty) -> Self {
                self.cfg.$name = value;
                self
            })*
        }
        impl Config {
            $($(#[doc = $doc])* pub fn $name(&self) -> $ty { self.$name.clone() })*
        }
        /// Every setting of [`ConfigBuilder`], the one list of them: its name, kind, default
        /// and bounds as text, and documentation. [`ConfigBuilder::set`] accepts exactly these
        /// names; the runtimes' builders, the Python package and the command line are built
        /// from this table.
        pub const SETTINGS: &[SettingInfo] = &[
            SENTINELS,
            SERVICE_NAME,
            NAT,
            $(crate::setting::row::<$ty>(
                stringify!($name),
                $default,
                $bounds,
                concat!($($doc, "\n"),*),
            ),)*
        ];
        /// Checks the bounds every setting of its type has, in the order of the table.
        fn check_each(cfg: &Config) -> Result<(), ConfigError> {
            $(<$ty as FromSetting>::check(&cfg.$name, stringify!($name))?;)*
            Ok(())
        }
        /// The text setter of each row of [`SETTINGS`], in the same order.
        const APPLY: &[Apply] = &[
            set_sentinels,
            set_service_name,
            set_nat,
            $(|b, field, v| {
                b.cfg.$name = <$ty as FromSetting>::parse(field, v)?;
                Ok(())
            },)*
        ];
    };
}

crate::core_settings!(core_table);

impl ConfigBuilder {
    /// Replaces the sentinel list (`host:port`, `[ipv6]:port`). Default `localhost:26379`.
    pub fn sentinels<I, S>(mut self, sentinels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.sentinels = sentinels.into_iter().map(Into::into).collect();
        self
    }

    /// Name of the master the sentinels monitor. Default `"redis"`.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.cfg.service_name = name.into();
        self
    }

    /// Adds a NAT rule: the address a sentinel announces, and where to reach it instead.
    pub fn nat(mut self, announced: impl Into<String>, reachable: impl Into<String>) -> Self {
        self.nat.push((announced.into(), reachable.into()));
        self
    }

    /// Sets one field from text, as a command line or environment would give it: durations in
    /// seconds (`0.5`), `off`/`none` for optional durations, booleans `true`/`false`, lists
    /// comma-separated (`sentinels`), NAT as `announced=reachable,...`, `on_pause_timeout` as
    /// `exit:<code>` or `fail`, `jitter_seed` as a number or `off`.
    pub fn set(mut self, field: &str, value: &str) -> Result<Self, ConfigError> {
        let apply = SETTINGS
            .iter()
            .position(|s| s.name() == field)
            .and_then(|i| APPLY.get(i))
            .ok_or_else(|| ConfigError::unknown_setting(field))?;
        apply(&mut self, field, value.trim())?;
        Ok(self)
    }

    /// Validates every value and returns the configuration, or the first invalid field.
    pub fn build(self) -> Result<Config, ConfigError> {
        let mut cfg = self.cfg;
        if self.sentinels.is_empty() {
            return Err(ConfigError::new(
                "sentinels",
                "at least one sentinel is needed",
            ));
        }
        for (i, text) in self.sentinels.iter().enumerate() {
            let field = format!("sentinels[{i}]");
            let addr: Addr = text
                .parse()
                .map_err(|e| ConfigError::new(&field, format!("{e}")))?;
            if cfg.sentinels.contains(&addr) {
                return Err(ConfigError::new(
                    field,
                    format!("duplicate sentinel {addr}"),
                ));
            }
            cfg.sentinels.push(addr);
        }
        for (announced, reachable) in &self.nat {
            let field = format!("nat[{announced}]");
            let a: Addr = announced
                .parse()
                .map_err(|e| ConfigError::new(&field, format!("announced address: {e}")))?;
            let r: Addr = reachable
                .parse()
                .map_err(|e| ConfigError::new(&field, format!("reachable address: {e}")))?;
            if cfg.nat.insert(a, r).is_some() {
                return Err(ConfigError::new(field, "duplicate rule"));
            }
        }
        if cfg.service_name.is_empty() || cfg.service_name.chars().any(char::is_whitespace) {
            return Err(ConfigError::new(
                "service_name",
                "must be non-empty and contain no whitespace",
            ));
        }
        check_each(&cfg)?;
        if cfg
            .deposed_pause
            .is_some_and(|d| d < Duration::from_millis(1))
        {
            return Err(ConfigError::new(
                "deposed_pause",
                "below 1 ms (Redis pauses in milliseconds): use `off` for no pause",
            ));
        }
        if cfg.min_backoff > cfg.max_backoff {
            return Err(ConfigError::new(
                "min_backoff",
                format!(
                    "{:?} is above max_backoff {:?}",
                    cfg.min_backoff, cfg.max_backoff
                ),
            ));
        }
        if cfg.retry_delay > cfg.max_retry_delay {
            return Err(ConfigError::new(
                "retry_delay",
                format!(
                    "{:?} is above max_retry_delay {:?}",
                    cfg.retry_delay, cfg.max_retry_delay
                ),
            ));
        }
        if !cfg.backoff_factor.is_finite() || cfg.backoff_factor < 1.0 {
            return Err(ConfigError::new(
                "backoff_factor",
                format!("{} must be a finite number >= 1", cfg.backoff_factor),
            ));
        }
        if let PauseTimeoutPolicy::Exit { code: 0 } = cfg.on_pause_timeout {
            return Err(ConfigError::new(
                "on_pause_timeout",
                "exit code 0 would report success",
            ));
        }
        if cfg.max_sentinels < cfg.sentinels.len() {
            return Err(ConfigError::new(
                "max_sentinels",
                format!(
                    "{} is below the {} configured sentinels",
                    cfg.max_sentinels,
                    cfg.sentinels.len()
                ),
            ));
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(b: Result<ConfigBuilder, ConfigError>) -> String {
        match b.and_then(ConfigBuilder::build) {
            Ok(_) => "accepted".into(),
            Err(e) => e.field().to_owned(),
        }
    }

    #[test]
    fn defaults_are_the_original_middlewares() {
        let c = Config::builder().build().expect("defaults are valid");
        assert_eq!(c.sentinels(), &[Addr::new("localhost", 26379)]);
        assert_eq!(c.service_name(), "redis");
        assert_eq!(c.query_timeout(), Duration::from_millis(500));
        assert_eq!(c.min_backoff(), Duration::from_secs(3));
        assert_eq!(c.max_backoff(), Duration::from_secs(60));
        assert_eq!(c.backoff_factor(), 2.0);
        assert_eq!(c.periodic_check(), None);
        assert_eq!(c.pause_timeout(), Duration::from_secs(600));
        assert_eq!(c.stop_grace(), Duration::from_secs(10));
        assert_eq!(c.on_pause_timeout(), PauseTimeoutPolicy::Exit { code: 69 });
    }

    #[test]
    fn each_invalid_value_names_its_field() {
        let b = Config::builder;
        let cases: Vec<(&str, Result<ConfigBuilder, ConfigError>)> = vec![
            ("sentinels", Ok(b().sentinels(Vec::<String>::new()))),
            ("sentinels[1]", Ok(b().sentinels(["a:1", "a:1"]))),
            ("sentinels[0]", Ok(b().sentinels(["nope"]))),
            ("service_name", Ok(b().service_name(""))),
            ("service_name", Ok(b().service_name("a b"))),
            (
                "min_backoff",
                Ok(b()
                    .min_backoff(Duration::from_secs(9))
                    .max_backoff(Duration::from_secs(3))),
            ),
            ("backoff_factor", Ok(b().backoff_factor(0.5))),
            ("backoff_factor", Ok(b().backoff_factor(f64::NAN))),
            ("backoff_factor", b().set("backoff_factor", "inf")),
            ("query_timeout", Ok(b().query_timeout(Duration::ZERO))),
            ("periodic_check", b().set("periodic_check", "0")),
            ("pause_timeout", b().set("pause_timeout", "NaN")),
            ("pause_timeout", b().set("pause_timeout", "-1")),
            ("fence_timeout", Ok(b().fence_timeout(Duration::MAX))),
            ("nat[x]", Ok(b().nat("x", "127.0.0.1:1"))),
            ("nat[a:1]", Ok(b().nat("a:1", "b"))),
            ("nat[a:1]", Ok(b().nat("a:1", "b:1").nat("a:1", "c:1"))),
            ("nat[0]", b().set("nat", "a:1")),
            ("on_pause_timeout", b().set("on_pause_timeout", "exit:0")),
            ("on_pause_timeout", b().set("on_pause_timeout", "exit:300")),
            (
                "max_sentinels",
                Ok(b().sentinels(["a:1", "b:1"]).max_sentinels(1)),
            ),
            ("nonsense", b().set("nonsense", "1")),
        ];
        for (field, builder) in cases {
            assert_eq!(field_of(builder), field);
        }
    }

    #[test]
    fn text_setters_round_trip() {
        let c = Config::builder()
            .set("sentinels", "127.0.0.1:1, 127.0.0.1:2")
            .and_then(|b| b.set("periodic_check", "1.5"))
            .and_then(|b| b.set("nat", "10.0.0.1:1=127.0.0.1:1"))
            .and_then(|b| b.set("on_pause_timeout", "fail"))
            .and_then(ConfigBuilder::build)
            .expect("valid");
        assert_eq!(c.sentinels().len(), 2);
        assert_eq!(c.periodic_check(), Some(Duration::from_millis(1500)));
        assert_eq!(
            c.nat().map(&Addr::new("10.0.0.1", 1)),
            Addr::new("127.0.0.1", 1)
        );
        assert_eq!(c.on_pause_timeout(), PauseTimeoutPolicy::Fail);
    }

    /// A value other than the default, by kind, that the builder accepts.
    fn other_value(info: &SettingInfo) -> &'static str {
        match info.kind() {
            SettingKind::Duration => "7.25",
            SettingKind::OptionalDuration if info.default() == "off" => "7.25",
            SettingKind::OptionalDuration => "off",
            SettingKind::Bool if info.default() == "true" => "false",
            SettingKind::Bool => "true",
            SettingKind::Integer => "41",
            SettingKind::OptionalInteger => "41",
            SettingKind::Number => "3.5",
            SettingKind::Text => "svc",
            SettingKind::Addresses => "127.0.0.1:1",
            SettingKind::NatRules => "10.0.0.1:1=127.0.0.1:1",
            SettingKind::PausePolicy => "fail",
        }
    }

    #[test]
    fn the_table_is_the_list_set_accepts() {
        assert_eq!(SETTINGS.len(), APPLY.len());
        let default = format!("{:?}", Config::builder());
        let mut seen = std::collections::BTreeMap::new();
        for info in SETTINGS {
            assert_eq!(
                SettingInfo::find(SETTINGS, info.name()),
                Some(info),
                "{} is listed twice",
                info.name()
            );
            // Each row's default, as text, leaves the builder as it was.
            let b = Config::builder()
                .set(info.name(), info.default())
                .unwrap_or_else(|e| panic!("default of {}: {e}", info.name()));
            assert_eq!(format!("{b:?}"), default, "default of {}", info.name());
            // Another value changes the builder, differently from every other row.
            let value = other_value(info);
            let b = Config::builder()
                .set(info.name(), value)
                .unwrap_or_else(|e| panic!("{} = {value}: {e}", info.name()));
            let shown = format!("{b:?}");
            assert_ne!(shown, default, "{} = {value} changed nothing", info.name());
            if let Some(other) = seen.insert(shown, info.name()) {
                panic!("{} and {other} set the same field", info.name());
            }
            assert!(!info.doc().is_empty() && !info.bounds().is_empty());
            // Names that are near misses of a row are not settings.
            for wrong in [
                format!("{}x", info.name()),
                info.name().replace('_', "-"),
                info.name().to_uppercase(),
                format!(" {}", info.name()),
            ]
            .into_iter()
            .filter(|w| w != info.name())
            {
                let e = Config::builder().set(&wrong, value).err();
                assert!(
                    e.as_ref().is_some_and(ConfigError::is_unknown_setting),
                    "{wrong}: {e:?}"
                );
            }
        }
        for wrong in ["", "tls", "db", "hold_timeout", "sentinels[0]", "Config"] {
            let e = Config::builder().set(wrong, "1").err();
            assert!(
                e.as_ref().is_some_and(ConfigError::is_unknown_setting),
                "{wrong}: {e:?}"
            );
        }
    }

    #[test]
    fn the_defaults_of_the_table_are_the_builders() {
        let mut b = Config::builder();
        for info in SETTINGS {
            b = b
                .set(info.name(), info.default())
                .expect("default is valid");
        }
        let from_table = b.build().expect("valid");
        let default = Config::builder().build().expect("valid");
        assert_eq!(format!("{from_table:?}"), format!("{default:?}"));
    }

    #[test]
    fn the_docs_of_the_table_are_the_setters() {
        let info = SettingInfo::find(SETTINGS, "query_timeout").expect("a row");
        assert_eq!(info.kind(), SettingKind::Duration);
        assert_eq!(
            info.doc(),
            "Timeout of one sentinel command, the original middleware's `socket_timeout`. \
             Default 0.5 s."
        );
        assert_eq!(
            info.summary(),
            "Timeout of one sentinel command, the original middleware's `socket_timeout`."
        );
        let kinds: Vec<_> = ["periodic_check", "jitter_seed", "max_sentinels", "drain"]
            .iter()
            .filter_map(|n| SettingInfo::find(SETTINGS, n))
            .map(|i| i.kind().as_str())
            .collect();
        assert_eq!(
            kinds,
            ["optional_duration", "optional_integer", "integer", "bool"]
        );
    }
}
