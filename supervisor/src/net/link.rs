//! Master connections the supervisor drives itself: the connection's driver (the task that
//! reads and writes its socket) races against the cancel signal of the master generation it
//! serves, so a switch closes the socket and fails every command in flight on it at once, for
//! every clone of the connection. Handles can therefore keep a clone and send on it without a
//! lock or a cancellation listener per command.

use crate::net::connect::{Endpoint, OpenError};
use crate::runtime::{Runtime, timeout};
use crate::sync::{Cancel, Guarded};
use dramatiq_sentinel_core::{Addr, IoError, Reply};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr};
use std::sync::Arc;
use std::time::Duration;

/// A multiplexed connection to a data node, for master handles.
#[derive(Clone)]
pub(crate) struct Link {
    pub(crate) conn: MultiplexedConnection,
    /// Whether the connection ends by itself when its generation is cancelled (its driver is
    /// ours). Else the `redis` crate drives it (TLS, or a runtime without
    /// [`Runtime::connect_tcp`]): it stays open while a clone exists, so commands must race
    /// the cancellation themselves and handles must not keep clones.
    pub(crate) cut_on_cancel: bool,
}

/// A connection opened for a generation that is not installed yet (`Connect`), with the cancel
/// signal its driver races against: the generation's, from `Activate` on.
pub(crate) struct Prepared {
    pub(crate) link: Link,
    pub(crate) cancel: Arc<Cancel>,
    /// The node's `INFO replication`, asked in the same round trip as the `ROLE` that verified
    /// it: the answer to the core's `QueryReplication` of this node right after `Activate`
    /// (the lost-write check), without a probe connection of its own.
    pub(crate) replication: Option<Reply>,
}

/// Opens a connection to `addr` whose commands time out after `response_timeout` (the `redis`
/// crate's per-request timer) and whose driver stops when `cancel` fires, within the connect
/// timeout.
pub(crate) async fn open(
    endpoint: &Endpoint,
    rt: &dyn Runtime,
    addr: &Addr,
    response_timeout: Option<Duration>,
    cancel: &Arc<Cancel>,
) -> Result<Link, OpenError> {
    open_with(endpoint, rt, addr, response_timeout, cancel, false)
        .await
        .map(|(link, _)| link)
}

/// [`open`], except that the database (`db` of the configuration) is not selected while the
/// connection opens: `Some(db)` tells the caller to send `SELECT db` itself, first in its own
/// first round trip, which saves one round trip. `None`: nothing to select (database 0), or the
/// `redis` crate opened the connection and selected it (TLS, or a runtime without
/// [`Runtime::connect_tcp`]). Only for a connection whose first commands the caller sends
/// before anyone else can use it.
pub(crate) async fn open_unselected(
    endpoint: &Endpoint,
    rt: &dyn Runtime,
    addr: &Addr,
    response_timeout: Option<Duration>,
    cancel: &Arc<Cancel>,
) -> Result<(Link, Option<i64>), OpenError> {
    open_with(endpoint, rt, addr, response_timeout, cancel, true).await
}

/// The error of a connection whose `SELECT db` (sent by [`open_unselected`]'s caller) the
/// server refused: classified as the `redis` crate's own opening would be (a server still
/// loading is unreachable for now, anything else a refusal).
pub(crate) fn refused_select(db: i64, e: &redis::RedisError) -> IoError {
    let mut error = OpenError::of(e);
    error.message = format!(
        "the server refused to switch to database {db}: {}",
        error.message
    );
    error.into()
}

async fn open_with(
    endpoint: &Endpoint,
    rt: &dyn Runtime,
    addr: &Addr,
    response_timeout: Option<Duration>,
    cancel: &Arc<Cancel>,
    defer_select: bool,
) -> Result<(Link, Option<i64>), OpenError> {
    let client = endpoint.client(addr).map_err(|message| OpenError {
        message,
        unreachable: false,
    })?;
    let info = client.get_connection_info();
    let connect = match info.addr() {
        ConnectionAddr::Tcp(host, port) => rt.connect_tcp(host, *port),
        _ => None,
    };
    let Some(connect) = connect else {
        let conn = endpoint.open_timed(rt, addr, response_timeout).await?;
        let link = Link {
            conn,
            cut_on_cancel: false,
        };
        return Ok((link, None));
    };
    let mut settings = info.redis_settings().clone();
    let select = Some(settings.db()).filter(|&db| defer_select && db != 0);
    if select.is_some() {
        settings = settings.set_db(0);
    }
    let config = AsyncConnectionConfig::new().set_response_timeout(response_timeout);
    let opened = timeout(rt, endpoint.connect_timeout, async {
        let stream = connect.await.map_err(redis::RedisError::from)?;
        // Boxed, as in `Endpoint::open_with`: the `redis` crate's handshake is a future of
        // about 13 KB, which would otherwise make the task of every `Connect` that large.
        Box::pin(MultiplexedConnection::new_with_config(
            &settings, stream, config,
        ))
        .await
    })
    .await;
    let (conn, driver) = match opened {
        Some(Ok(opened)) => opened,
        Some(Err(e)) => return Err(OpenError::of(&e)),
        None => return Err(OpenError::no_connection(endpoint.connect_timeout)),
    };
    let cancel = Arc::clone(cancel);
    // Once the cancel signal fired, the driver is not polled again (a command queued since is
    // never written), and dropping it closes the socket and fails every command waiting for a
    // reply. Checked at every poll of the driver for the price of an atomic load.
    rt.spawn(Box::pin(Guarded::new(cancel, driver)));
    let link = Link {
        conn,
        cut_on_cancel: true,
    };
    Ok((link, select))
}
