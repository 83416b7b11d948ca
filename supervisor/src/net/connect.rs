//! Opening connections to sentinels and data nodes.

use crate::config::{ClientCert, Config, Credentials};
use crate::net::convert::{describe, io_error};
use crate::runtime::{Runtime, timeout};
use dramatiq_sentinel_core::{Addr, IoError};
use redis::aio::{MultiplexedConnection, PubSub};
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo};
use std::time::Duration;

/// How to reach one kind of server: credentials, TLS, and the connect timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) auth: Option<Credentials>,
    pub(crate) tls: bool,
    /// With `tls`: CA certificates to trust instead of the system's (PEM).
    pub(crate) root_cert: Option<Vec<u8>>,
    /// With `tls`: the certificate to present.
    pub(crate) client_cert: Option<ClientCert>,
    pub(crate) connect_timeout: Duration,
    /// The database selected on connect (data nodes; 0 for sentinels).
    pub(crate) db: i64,
}

/// Why a connection could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpenError {
    /// What went wrong, for error messages and logs.
    pub(crate) message: String,
    /// The server could not be reached (refused, reset, closed, timed out) or is still loading
    /// its data, as opposed to refusing us (authentication, a bad database, a certificate, a
    /// malformed address): worth waiting and retrying.
    pub(crate) unreachable: bool,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl OpenError {
    /// Why opening failed, from the `redis` crate's error: unreachable if the server could not
    /// be reached (timeout, connection refused, reset or closed) or is still loading its data.
    pub(crate) fn of(e: &redis::RedisError) -> Self {
        OpenError {
            message: describe(e),
            unreachable: e.is_timeout()
                || e.is_connection_dropped()
                || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading),
        }
    }

    /// No connection within the connect timeout `limit`.
    pub(crate) fn no_connection(limit: Duration) -> Self {
        OpenError {
            message: format!("no connection within {limit:?}"),
            unreachable: true,
        }
    }
}

impl From<OpenError> for String {
    fn from(e: OpenError) -> Self {
        e.message
    }
}

impl From<OpenError> for IoError {
    fn from(e: OpenError) -> Self {
        if e.unreachable {
            IoError::unreachable(e.message)
        } else {
            IoError::rejected(e.message)
        }
    }
}

/// Whether the `redis` crate was built with a TLS feature.
pub(crate) fn tls_supported() -> bool {
    ConnectionAddr::TcpTls {
        host: String::new(),
        port: 1,
        insecure: false,
        tls_params: None,
    }
    .is_supported()
}

impl Endpoint {
    /// How to reach servers with `auth`, selecting `db`, with the TLS and timeout settings of
    /// `config`.
    pub(crate) fn of(config: &Config, auth: Option<&Credentials>, db: u32) -> Self {
        Endpoint {
            auth: auth.cloned(),
            tls: config.tls(),
            root_cert: config.tls_root_cert().map(<[u8]>::to_vec),
            client_cert: config.tls_client_cert().cloned(),
            connect_timeout: config.connect_timeout(),
            db: i64::from(db),
        }
    }

    pub(crate) fn client(&self, addr: &Addr) -> Result<Client, String> {
        self.client_with(addr, redis::ProtocolVersion::RESP2)
    }

    fn client_with(&self, addr: &Addr, protocol: redis::ProtocolVersion) -> Result<Client, String> {
        let target = if self.tls {
            ConnectionAddr::TcpTls {
                host: addr.host().to_owned(),
                port: addr.port(),
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(addr.host().to_owned(), addr.port())
        };
        let mut settings = redis::RedisConnectionInfo::default()
            .set_skip_set_lib_name()
            .set_protocol(protocol)
            .set_db(self.db);
        if let Some(c) = &self.auth {
            if let Some(user) = &c.username {
                settings = settings.set_username(user);
            }
            settings = settings.set_password(&c.password);
        }
        let info: ConnectionInfo = target
            .into_connection_info()
            .map_err(|e| describe(&e))?
            .set_redis_settings(settings);
        if self.tls && (self.root_cert.is_some() || self.client_cert.is_some()) {
            return with_certs(info, self.root_cert.clone(), self.client_cert.clone());
        }
        Client::open(info).map_err(|e| describe(&e))
    }

    /// Checks the TLS certificates by building a client with each; the error names the field.
    pub(crate) fn check_certs(&self) -> Result<(), (&'static str, String)> {
        let addr = Addr::new("127.0.0.1", 1);
        let root_only = Self {
            client_cert: None,
            ..self.clone()
        };
        root_only.client(&addr).map_err(|e| ("tls_root_cert", e))?;
        self.client(&addr).map_err(|e| ("tls_client_cert", e))?;
        Ok(())
    }

    /// Opens a multiplexed connection (authenticated), within the connect timeout. Commands on
    /// it have no timeout of their own: callers bound them.
    pub(crate) async fn open(
        &self,
        rt: &dyn Runtime,
        addr: &Addr,
    ) -> Result<MultiplexedConnection, OpenError> {
        self.open_with(rt, addr, None, redis::ProtocolVersion::RESP2, |c| c)
            .await
    }

    /// Opens a multiplexed connection whose commands time out after `response_timeout` (the
    /// `redis` crate's own per-request timer), for the application's master connection.
    pub(crate) async fn open_timed(
        &self,
        rt: &dyn Runtime,
        addr: &Addr,
        response_timeout: Option<Duration>,
    ) -> Result<MultiplexedConnection, OpenError> {
        self.open_with(
            rt,
            addr,
            response_timeout,
            redis::ProtocolVersion::RESP2,
            |c| c,
        )
        .await
    }

    /// Opens a connection that reports its own closing: the returned receiver completes (with
    /// an error) when the server closes the connection or it breaks. RESP3, whose push channel
    /// carries the `redis` crate's disconnection notice.
    pub(crate) async fn open_watched(
        &self,
        rt: &dyn Runtime,
        addr: &Addr,
    ) -> Result<(MultiplexedConnection, async_channel::Receiver<()>), OpenError> {
        let (closed_tx, closed_rx) = async_channel::bounded::<()>(1);
        let notify = move |info: redis::PushInfo| {
            if info.kind == redis::PushKind::Disconnection {
                closed_tx.close();
            }
            Ok::<(), redis::aio::SendError>(())
        };
        let conn = self
            .open_with(rt, addr, None, redis::ProtocolVersion::RESP3, |c| {
                c.set_push_sender(notify)
            })
            .await?;
        Ok((conn, closed_rx))
    }

    async fn open_with(
        &self,
        rt: &dyn Runtime,
        addr: &Addr,
        response_timeout: Option<Duration>,
        protocol: redis::ProtocolVersion,
        configure: impl FnOnce(AsyncConnectionConfig) -> AsyncConnectionConfig,
    ) -> Result<MultiplexedConnection, OpenError> {
        let client = self
            .client_with(addr, protocol)
            .map_err(|message| OpenError {
                message,
                unreachable: false,
            })?;
        let config = configure(
            AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.connect_timeout))
                .set_response_timeout(response_timeout),
        );
        // Boxed: the `redis` crate's opening is a future of about 30 KB. Unboxed, it would
        // make every task that opens a connection that large, moved into the heap at its
        // spawn: at a switch, a process with many supervisors spends more time copying those
        // and faulting in fresh pages for them than opening the connections.
        let opening = Box::pin(client.get_multiplexed_async_connection_with_config(&config));
        let opened = timeout(rt, self.connect_timeout, opening).await;
        match opened {
            Some(Ok(conn)) => Ok(conn),
            Some(Err(e)) => Err(OpenError::of(&e)),
            None => Err(OpenError::no_connection(self.connect_timeout)),
        }
    }

    /// Opens a pub/sub connection (authenticated) and subscribes to `pattern`, within the
    /// connect timeout.
    pub(crate) async fn subscribe(
        &self,
        rt: &dyn Runtime,
        addr: &Addr,
        pattern: &str,
    ) -> Result<PubSub, IoError> {
        let client = self.client(addr).map_err(IoError::rejected)?;
        let subscribed = timeout(rt, self.connect_timeout, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(pattern).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        match subscribed {
            Some(Ok(pubsub)) => Ok(pubsub),
            Some(Err(e)) => Err(io_error(&e)),
            None => Err(IoError::unreachable(format!(
                "no subscription within {:?}",
                self.connect_timeout
            ))),
        }
    }
}

/// A client that trusts `root_cert` and presents `client_cert`.
#[cfg(any(feature = "tls-rustls", feature = "tls-native-tls"))]
fn with_certs(
    info: ConnectionInfo,
    root_cert: Option<Vec<u8>>,
    client_cert: Option<ClientCert>,
) -> Result<Client, String> {
    let certs = redis::TlsCertificates {
        client_tls: client_cert.map(|c| redis::ClientTlsConfig {
            client_cert: c.cert,
            client_key: c.key,
        }),
        root_cert,
    };
    Client::build_with_tls(info, certs).map_err(|e| format!("TLS certificates: {}", describe(&e)))
}

/// Without a TLS feature of this crate, certificates cannot be used.
#[cfg(not(any(feature = "tls-rustls", feature = "tls-native-tls")))]
fn with_certs(
    _: ConnectionInfo,
    _: Option<Vec<u8>>,
    _: Option<ClientCert>,
) -> Result<Client, String> {
    Err("TLS certificates need the shim's `tls-rustls` or `tls-native-tls` feature".to_owned())
}
