//! The validated configuration: the original middleware's settings and defaults plus what the core adds.
//!
//! Build it with [`Config::builder`]; [`ConfigBuilder::build`] rejects every invalid value with a
//! [`ConfigError`] naming the field. Nothing is clamped silently.

use crate::addr::{Addr, NatMap};
use crate::config_error::ConfigError;
use crate::setting;
use std::time::Duration;

/// What happens when workers do not pause within [`Config::pause_timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseTimeoutPolicy {
    /// Stop the workers with [`Config::stop_grace`], then exit the process with `code`
    /// (the original middleware's behaviour, code 69 = `EX_UNAVAILABLE`).
    Exit {
        /// The process exit code, 1 to 255.
        code: u8,
    },
    /// Stop the workers with [`Config::stop_grace`], then stop the supervisor with an error
    /// the application can handle.
    Fail,
}

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

/// One list of settings makes both the builder's setter and the config's getter, with the
/// same documentation.
macro_rules! settings {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        impl ConfigBuilder {
            $($(#[$doc])* pub fn $name(mut self, value: $ty) -> Self { self.cfg.$name = value; self })*
        }
        impl Config {
            $($(#[$doc])* pub fn $name(&self) -> $ty { self.$name.clone() })*
        }
    };
}

settings! {
    /// Timeout of one sentinel command, the original middleware's `socket_timeout`. Default 0.5 s.
    query_timeout: Duration,
    /// Timeout to open a connection to a sentinel or data node and get its first answer
    /// (subscription, `ROLE`). Default 1 s.
    connect_timeout: Duration,
    /// First delay before a failed listener reconnects, reset after a successful subscribe.
    /// Default 3 s.
    min_backoff: Duration,
    /// Longest listener reconnect delay. Default 60 s.
    max_backoff: Duration,
    /// Multiplier of the listener reconnect delay after each failure, at least 1. Default 2.0.
    backoff_factor: f64,
    /// First delay before re-asking the sentinels after a failed discovery or a node that failed
    /// verification; grows by `backoff_factor` up to `max_retry_delay`. Default 0.1 s.
    retry_delay: Duration,
    /// Longest delay before re-asking the sentinels. Default 5 s.
    max_retry_delay: Duration,
    /// Re-discover the master on this interval, in case every event was missed. Default off.
    periodic_check: Option<Duration>,
    /// Drain the workers at each switch: after the fence, wait until the jobs in flight are
    /// done (and the pool's own `pause` completed) before resuming on the new master, within
    /// `pause_timeout`. Off by default: jobs in flight keep running, their commands held by
    /// the fence and sent to the verified new master once it is active, and new jobs start as
    /// soon as it is; only pools that need a moment with no job running need a drain.
    drain: bool,
    /// How long a drain may take (the original middleware's `worker_pausing_timeout_before_exit`); after it,
    /// `on_pause_timeout`. Only applies with `drain`. Default 600 s.
    pause_timeout: Duration,
    /// Grace period for workers stopped after a pause timeout. Default 10 s.
    stop_grace: Duration,
    /// What happens after a pause timeout. Default exit with code 69.
    on_pause_timeout: PauseTimeoutPolicy,
    /// Fence the master as soon as sentinels announce its failover (`+odown`, `+try-failover`,
    /// `+selected-slave`, ...) and switch as soon as the candidate's `ROLE` says master, without
    /// waiting for `+switch-master`. Default true.
    early_fencing: bool,
    /// How long an early fence waits for a promotion before it re-verifies the old master and
    /// lifts itself. Default 15 s.
    fence_timeout: Duration,
    /// Interval of the fallback `ROLE` polls of a failover candidate (each drawn from
    /// `[interval / 2, interval]`). The switch does not wait for them: a watch connection on
    /// the candidate notices its promotion at once (Sentinel closes every client connection of
    /// the replica it promotes). Default 100 ms.
    role_poll_interval: Duration,
    /// Silence on a listener after which it is pinged; no answer within `query_timeout` marks it
    /// failed. Default 2 s.
    health_check_interval: Duration,
    /// Deadline for finding a verified master at startup; `None` waits forever. Default 60 s.
    startup_timeout: Option<Duration>,
    /// Stop startup with the error as soon as every sentinel answered with one that retrying
    /// will not fix (a wrong password or user, an address that is not a sentinel, a service
    /// none of them monitors), or the master they name refuses our credentials, instead of
    /// retrying until `startup_timeout`. Turn it off where the service or the credentials may
    /// appear later (a deployment being set up). Default true.
    startup_fail_fast: bool,
    /// Learn other sentinels from `SENTINEL SENTINELS` and listen to them too. Default true.
    refresh_sentinels: bool,
    /// Most sentinels tracked, configured plus learned. Default 32.
    max_sentinels: usize,
    /// A learned sentinel (not a configured one) whose listener has failed for this long
    /// without a successful subscription is forgotten (its listener stops); it is learned
    /// again if a sentinel still lists it. Default 300 s.
    forget_sentinel_after: Duration,
    /// Keep one idle connection to every replica of the master in use (the sentinels'
    /// `SENTINEL REPLICAS` list, asked again after each switch and when the sentinels announce a
    /// change). Sentinel closes a replica's client connections when it promotes it, so a
    /// promotion fences within one round trip of it even when no sentinel's event is heard
    /// (its leader restarted, partitioned from this process, or its listener reconnecting).
    /// A closing that was not a promotion (a replica restarted, re-pointed, or a server
    /// `timeout` on idle clients) fences for one `ROLE` round trip. Costs one connection per
    /// replica and no command at rest. Default true.
    watch_replicas: bool,
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
    deposed_pause: Option<Duration>,
    /// Seed of the jitter drawn for every backoff and retry delay (each delay is drawn
    /// uniformly from `[base / 2, base]`). `None`: the runtime shims pick a random seed per
    /// process, so a fleet never retries in lockstep (the core itself, which never draws
    /// randomness, uses 0). Set it to replay a run exactly. Default `None`.
    jitter_seed: Option<u64>,
}

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
        let v = value.trim();
        let c = &mut self.cfg;
        match field {
            "sentinels" => {
                self.sentinels = v.split(',').map(|s| s.trim().to_owned()).collect();
            }
            "nat" => {
                for (i, rule) in v.split(',').filter(|r| !r.trim().is_empty()).enumerate() {
                    let (a, b) = rule.split_once('=').ok_or_else(|| {
                        ConfigError::new(format!("nat[{i}]"), "expected `announced=reachable`")
                    })?;
                    self.nat.push((a.trim().to_owned(), b.trim().to_owned()));
                }
            }
            "service_name" => c.service_name = v.to_owned(),
            "early_fencing" => c.early_fencing = setting::boolean(field, v)?,
            "drain" => c.drain = setting::boolean(field, v)?,
            "refresh_sentinels" => c.refresh_sentinels = setting::boolean(field, v)?,
            "startup_fail_fast" => c.startup_fail_fast = setting::boolean(field, v)?,
            "watch_replicas" => c.watch_replicas = setting::boolean(field, v)?,
            "deposed_pause" => c.deposed_pause = setting::optional_seconds(field, v)?,
            "backoff_factor" => c.backoff_factor = setting::number(field, v)?,
            "max_sentinels" => {
                c.max_sentinels = v
                    .parse()
                    .map_err(|_| ConfigError::new(field, format!("`{v}` is not a count")))?
            }
            "on_pause_timeout" => {
                c.on_pause_timeout = match v.split_once(':') {
                    _ if v == "fail" => PauseTimeoutPolicy::Fail,
                    Some(("exit", code)) => PauseTimeoutPolicy::Exit {
                        code: code.parse().map_err(|_| {
                            ConfigError::new(field, format!("exit code `{code}` is not 1..=255"))
                        })?,
                    },
                    _ => {
                        return Err(ConfigError::new(
                            field,
                            format!("`{v}` is neither `exit:<code>` nor `fail`"),
                        ));
                    }
                }
            }
            "query_timeout" => c.query_timeout = setting::seconds(field, v)?,
            "connect_timeout" => c.connect_timeout = setting::seconds(field, v)?,
            "min_backoff" => c.min_backoff = setting::seconds(field, v)?,
            "max_backoff" => c.max_backoff = setting::seconds(field, v)?,
            "retry_delay" => c.retry_delay = setting::seconds(field, v)?,
            "max_retry_delay" => c.max_retry_delay = setting::seconds(field, v)?,
            "periodic_check" => c.periodic_check = setting::optional_seconds(field, v)?,
            "pause_timeout" => c.pause_timeout = setting::seconds(field, v)?,
            "stop_grace" => c.stop_grace = setting::seconds(field, v)?,
            "fence_timeout" => c.fence_timeout = setting::seconds(field, v)?,
            "role_poll_interval" => c.role_poll_interval = setting::seconds(field, v)?,
            "health_check_interval" => c.health_check_interval = setting::seconds(field, v)?,
            "startup_timeout" => c.startup_timeout = setting::optional_seconds(field, v)?,
            "forget_sentinel_after" => c.forget_sentinel_after = setting::seconds(field, v)?,
            "jitter_seed" => {
                c.jitter_seed = match v {
                    "off" | "none" | "" => None,
                    _ => Some(v.parse().map_err(|_| {
                        ConfigError::new(field, format!("`{v}` is not a number 0..2^64"))
                    })?),
                }
            }
            _ => return Err(ConfigError::new(field, "unknown setting")),
        }
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
        let durations = [
            ("query_timeout", Some(cfg.query_timeout)),
            ("connect_timeout", Some(cfg.connect_timeout)),
            ("min_backoff", Some(cfg.min_backoff)),
            ("max_backoff", Some(cfg.max_backoff)),
            ("retry_delay", Some(cfg.retry_delay)),
            ("max_retry_delay", Some(cfg.max_retry_delay)),
            ("periodic_check", cfg.periodic_check),
            ("pause_timeout", Some(cfg.pause_timeout)),
            ("stop_grace", Some(cfg.stop_grace)),
            ("fence_timeout", Some(cfg.fence_timeout)),
            ("role_poll_interval", Some(cfg.role_poll_interval)),
            ("health_check_interval", Some(cfg.health_check_interval)),
            ("startup_timeout", cfg.startup_timeout),
            ("forget_sentinel_after", Some(cfg.forget_sentinel_after)),
            ("deposed_pause", cfg.deposed_pause),
        ];
        for (name, d) in durations {
            setting::check_duration(name, d)?;
        }
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
}
