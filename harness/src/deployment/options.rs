//! [`DeploymentOptions`]: the shape of a test deployment.

use std::time::Duration;

use super::client::Auth;
use super::error::{HarnessError, Result};

/// What to start. Build it with [`DeploymentOptions::default`] and the builder methods.
///
/// ```no_run
/// use std::time::Duration;
/// use dramatiq_sentinel_harness::{Deployment, DeploymentOptions};
///
/// let deployment = Deployment::start(
///     DeploymentOptions::default()
///         .replicas(1)
///         .down_after(Duration::from_millis(1000))
///         .data_password("s3cret")
///         .nat(true),
/// )?;
/// # Ok::<(), dramatiq_sentinel_harness::HarnessError>(())
/// ```
#[derive(Clone, Debug)]
pub struct DeploymentOptions {
    pub(crate) service_name: String,
    pub(crate) replicas: usize,
    pub(crate) sentinels: usize,
    pub(crate) quorum: Option<usize>,
    pub(crate) down_after: Duration,
    pub(crate) failover_timeout: Duration,
    pub(crate) sentinel_auth: Auth,
    pub(crate) data_auth: Auth,
    pub(crate) nat: bool,
    pub(crate) tls: bool,
    pub(crate) own_process_groups: bool,
    pub(crate) second_service: Option<String>,
    pub(crate) start_timeout: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) tcp_backlog: Option<u32>,
}

impl Default for DeploymentOptions {
    /// One master with two replicas, three sentinels with quorum two, service `mymaster`,
    /// down-after 2000 ms, failover-timeout 6000 ms, no passwords, no NAT, no TLS, no second service.
    fn default() -> Self {
        Self {
            service_name: "mymaster".to_owned(),
            replicas: 2,
            sentinels: 3,
            quorum: None,
            down_after: Duration::from_millis(2000),
            failover_timeout: Duration::from_millis(6000),
            sentinel_auth: Auth::None,
            data_auth: Auth::None,
            nat: false,
            tls: false,
            own_process_groups: false,
            second_service: None,
            start_timeout: Duration::from_secs(60),
            command_timeout: Duration::from_secs(2),
            tcp_backlog: None,
        }
    }
}

impl DeploymentOptions {
    /// The name of the monitored service (default `mymaster`).
    #[must_use]
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = name.into();
        self
    }

    /// Number of replicas of the service's master (default 2).
    #[must_use]
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }

    /// Number of sentinels (default 3).
    #[must_use]
    pub fn sentinels(mut self, sentinels: usize) -> Self {
        self.sentinels = sentinels;
        self
    }

    /// The quorum (default: a majority of the sentinels, 2 of 3).
    #[must_use]
    pub fn quorum(mut self, quorum: usize) -> Self {
        self.quorum = Some(quorum);
        self
    }

    /// `down-after-milliseconds` (default 2000 ms). 1000 ms is allowed but makes sentinels
    /// occasionally fail over a second time right after a failover (redis/redis#8607); use it
    /// only for deliberate flapping scenarios.
    #[must_use]
    pub fn down_after(mut self, down_after: Duration) -> Self {
        self.down_after = down_after;
        self
    }

    /// `failover-timeout` (default 6000 ms). A sentinel waits twice this long before it retries
    /// a failover of the same master.
    #[must_use]
    pub fn failover_timeout(mut self, failover_timeout: Duration) -> Self {
        self.failover_timeout = failover_timeout;
        self
    }

    /// Sentinels require this password (`requirepass` in `sentinel.conf`).
    #[must_use]
    pub fn sentinel_password(mut self, password: impl Into<String>) -> Self {
        self.sentinel_auth = Auth::Password(password.into());
        self
    }

    /// Sentinels accept only this ACL user (the `default` user is disabled); they use it
    /// among themselves too (`sentinel sentinel-user/-pass`).
    #[must_use]
    pub fn sentinel_acl_user(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.sentinel_auth = Auth::User {
            username: username.into(),
            password: password.into(),
        };
        self
    }

    /// Data nodes require this password (`requirepass` + `masterauth`; the sentinels get
    /// `sentinel auth-pass`).
    #[must_use]
    pub fn data_password(mut self, password: impl Into<String>) -> Self {
        self.data_auth = Auth::Password(password.into());
        self
    }

    /// Data nodes accept only this ACL user (the `default` user is disabled); replicas use it
    /// (`masteruser`/`masterauth`) and so do the sentinels (`sentinel auth-user/-pass`).
    #[must_use]
    pub fn data_acl_user(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.data_auth = Auth::User {
            username: username.into(),
            password: password.into(),
        };
        self
    }

    /// NAT mode: every process announces an address that refuses clients; see
    /// [`Deployment::nat_map`](super::Deployment::nat_map) and the [crate] docs.
    #[must_use]
    pub fn nat(mut self, nat: bool) -> Self {
        self.nat = nat;
        self
    }

    /// TLS mode: every process listens with TLS only (`port 0`, `tls-port`), replicates and
    /// talks to the other processes over TLS, and requires clients to present a certificate of
    /// the deployment's CA; see [`Deployment::tls`](super::Deployment::tls). Needs `openssl`.
    #[must_use]
    pub fn tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// Start every Redis process in a process group of its own, so that a terminal's Ctrl-C
    /// (SIGINT to the foreground process group) reaches only this program, which then stops
    /// them by dropping the deployment. Off by default: when a test run is interrupted, no drop
    /// runs, and Ctrl-C taking the Redis processes down with it is the cleanup.
    #[must_use]
    pub fn own_process_groups(mut self, own: bool) -> Self {
        self.own_process_groups = own;
        self
    }

    /// A second service (its own master and one replica) monitored by the same sentinels.
    #[must_use]
    pub fn second_service(mut self, name: impl Into<String>) -> Self {
        self.second_service = Some(name.into());
        self
    }

    /// How long [`Deployment::start`](super::Deployment::start) may take (default 60 s; a
    /// healthy start takes about a second, the slack is for loaded CI machines).
    #[must_use]
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Connect/read/write timeout of the harness's own commands (default 2 s).
    #[must_use]
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// `tcp-backlog` of the data nodes (default: Redis's own, 511; the kernel caps it at
    /// `net.core.somaxconn`). Hundreds of clients reconnecting at once to a new master
    /// overflow a short accept queue: connections then stall for a TCP retransmission.
    #[must_use]
    pub fn tcp_backlog(mut self, backlog: u32) -> Self {
        self.tcp_backlog = Some(backlog);
        self
    }

    /// The effective quorum.
    pub(crate) fn effective_quorum(&self) -> usize {
        self.quorum.unwrap_or(self.sentinels / 2 + 1)
    }

    /// Rejects combinations Redis or the harness cannot run.
    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |message: &str| Err(HarnessError::InvalidOptions(message.to_owned()));
        let plain = |name: &str| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if self.sentinels == 0 {
            return invalid("at least one sentinel is needed");
        }
        let quorum = self.effective_quorum();
        if quorum == 0 || quorum > self.sentinels {
            return invalid("the quorum must be between 1 and the number of sentinels");
        }
        if !plain(&self.service_name) {
            return invalid("service names may only use letters, digits, '-', '_' and '.'");
        }
        if let Some(second) = &self.second_service
            && (!plain(second) || *second == self.service_name)
        {
            return invalid("the second service needs a different plain name");
        }
        for auth in [&self.sentinel_auth, &self.data_auth] {
            if auth.password().is_some_and(str::is_empty) {
                return invalid("passwords must not be empty");
            }
            if auth.username().is_some_and(|u| !plain(u) || u == "default") {
                return invalid("ACL user names must be plain and not `default`");
            }
        }
        if self.down_after < std::time::Duration::from_millis(100) {
            return invalid("down-after must be at least 100 ms");
        }
        Ok(())
    }
}
