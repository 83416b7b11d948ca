//! Credentials and a small synchronous Redis client (the `redis` crate's blocking API).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use redis::{ConnectionAddr, FromRedisValue, IntoConnectionInfo, RedisConnectionInfo};

use super::error::{HarnessError, Result};
use super::tls::TlsFiles;

/// Credentials a client presents to the data nodes or to the sentinels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Auth {
    /// No authentication (the `default` user without a password).
    #[default]
    None,
    /// `requirepass`: `AUTH <password>` as the `default` user.
    Password(String),
    /// An ACL user: `AUTH <username> <password>`; the `default` user is disabled.
    User {
        /// The ACL user name.
        username: String,
        /// Its password.
        password: String,
    },
}

impl Auth {
    /// The ACL user name, if any.
    pub fn username(&self) -> Option<&str> {
        match self {
            Self::User { username, .. } => Some(username),
            Self::None | Self::Password(_) => None,
        }
    }

    /// The password, if any.
    pub fn password(&self) -> Option<&str> {
        match self {
            Self::Password(password) | Self::User { password, .. } => Some(password),
            Self::None => None,
        }
    }

    /// `redis` crate connection settings for `addr` with these credentials (plain TCP).
    pub fn connection_info(&self, addr: SocketAddr) -> redis::RedisResult<redis::ConnectionInfo> {
        self.connection_info_over(ConnectionAddr::Tcp(addr.ip().to_string(), addr.port()))
    }

    fn connection_info_over(
        &self,
        target: ConnectionAddr,
    ) -> redis::RedisResult<redis::ConnectionInfo> {
        let mut settings = RedisConnectionInfo::default().set_skip_set_lib_name();
        if let Some(username) = self.username() {
            settings = settings.set_username(username);
        }
        if let Some(password) = self.password() {
            settings = settings.set_password(password);
        }
        Ok(target.into_connection_info()?.set_redis_settings(settings))
    }
}

/// Opens a connection to `addr` with these credentials (and, for a deployment in TLS mode, its
/// [`TlsFiles`]), with a connect/handshake timeout and read/write timeouts of `timeout` (for
/// addresses the harness does not own, e.g. from the NAT map; for processes of a deployment
/// [`Deployment::connect`](super::Deployment::connect) is simpler).
pub fn connect(
    addr: SocketAddr,
    auth: &Auth,
    tls: Option<&TlsFiles>,
    timeout: Duration,
) -> redis::RedisResult<redis::Connection> {
    let client = match tls {
        None => redis::Client::open(auth.connection_info(addr)?)?,
        Some(tls) => redis::Client::build_with_tls(
            auth.connection_info_over(ConnectionAddr::TcpTls {
                host: addr.ip().to_string(),
                port: addr.port(),
                insecure: false,
                tls_params: None,
            })?,
            redis::TlsCertificates {
                client_tls: Some(redis::ClientTlsConfig {
                    client_cert: tls.cert.clone(),
                    client_key: tls.key.clone(),
                }),
                root_cert: Some(tls.ca.clone()),
            },
        )?,
    };
    let connection = client.get_connection_with_timeout(timeout)?;
    connection.set_read_timeout(Some(timeout))?;
    connection.set_write_timeout(Some(timeout))?;
    Ok(connection)
}

/// A process the harness sends commands to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Endpoint<'a> {
    /// Its name for error messages, e.g. `sentinel-2`.
    pub(crate) name: &'a str,
    /// Its reachable address.
    pub(crate) addr: SocketAddr,
    /// The credentials to use.
    pub(crate) auth: &'a Auth,
    /// TLS mode: the deployment's certificates.
    pub(crate) tls: Option<&'a TlsFiles>,
    /// Its log file, for error messages.
    pub(crate) log: &'a Path,
    /// Connect, read and write timeout.
    pub(crate) timeout: Duration,
}

impl Endpoint<'_> {
    /// Opens a fresh connection.
    pub(crate) fn connect(&self, command: &str) -> Result<redis::Connection> {
        connect(self.addr, self.auth, self.tls, self.timeout).map_err(|e| self.error(command, e))
    }

    /// Runs one command on a fresh connection.
    pub(crate) fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        let name = command_name(cmd);
        let mut connection = self.connect(&name)?;
        cmd.query(&mut connection).map_err(|e| self.error(&name, e))
    }

    /// Wraps a `redis` error with the target and the command.
    pub(crate) fn error(&self, command: &str, source: redis::RedisError) -> HarnessError {
        HarnessError::Command {
            target: format!("{} ({})", self.name, self.addr),
            command: command.to_owned(),
            source,
            log: self.log.to_path_buf(),
        }
    }

    /// An [`HarnessError::UnexpectedReply`] for this endpoint.
    pub(crate) fn unexpected(&self, command: &str, detail: impl Into<String>) -> HarnessError {
        HarnessError::UnexpectedReply {
            target: format!("{} ({})", self.name, self.addr),
            command: command.to_owned(),
            detail: detail.into(),
        }
    }
}

/// The first two words of a command (`SENTINEL FAILOVER`), for error messages.
pub(crate) fn command_name(cmd: &redis::Cmd) -> String {
    cmd.args_iter()
        .take(2)
        .filter_map(|arg| match arg {
            redis::Arg::Simple(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(" ")
}
