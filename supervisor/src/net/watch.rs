//! Watch connections ([`Action::Watch`]) on every replica of the master in use and on failover
//! candidates: one connection per node
//! that answers `ROLE` once, then stays open and silent. Sentinel closes every client
//! connection of the replica it promotes, so the closing reaches the core the moment the
//! candidate becomes master, with one connection per process instead of a `ROLE` poll every
//! few milliseconds. `ROLE` polls of a watched node go on its watch connection.
//!
//! Supervisors given the same [`crate::SharedConnections`] share one watch connection per node
//! ([`WatchHub`]): each still asks its own `ROLE` on it and hears its closing, but a promotion
//! closes one connection of the process instead of one per supervisor.
//!
//! [`Action::Watch`]: dramatiq_sentinel_core::Action::Watch

use crate::drive::shared::{Input, Shared};
use crate::net::connect::Endpoint;
use crate::net::flight::{self, Slot, Slots};
use crate::runtime::{Runtime, timeout};
use crate::sync::lock;
use async_channel::{Receiver, Sender};
use dramatiq_sentinel_core::{Addr, Input as CoreInput, IoError, OpId, Reply};
use futures_lite::future::or;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use std::sync::{Arc, Mutex};
use tracing::debug;

/// The watch connections of the supervisors that share them ([`crate::SharedConnections`]),
/// or of one supervisor: one per node, open while some supervisor watches the node.
pub(crate) struct WatchHub {
    endpoint: Endpoint,
    nodes: Slots<Arc<Watched>>,
}

/// One node's watch connection.
struct Watched {
    conn: MultiplexedConnection,
    /// Fails once the connection closed.
    closed: Receiver<()>,
}

impl WatchHub {
    /// The watch connections reaching data nodes through `endpoint`.
    pub(crate) fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            nodes: Slots::default(),
        }
    }

    /// A lease on the open watch connection to `node`, or on a new one (one opening in flight
    /// per node).
    async fn lease(self: &Arc<Self>, rt: &dyn Runtime, node: &Addr) -> Result<Lease, IoError> {
        let (watched, _) = flight::get_or_open(
            &self.nodes,
            node,
            |w| !w.closed.is_closed(),
            || async {
                let (conn, closed) = self.endpoint.open_watched(rt, node).await?;
                Ok(Arc::new(Watched { conn, closed }))
            },
        )
        .await?;
        Ok(Lease {
            hub: Arc::clone(self),
            node: node.clone(),
            watched,
        })
    }
}

/// One supervisor's use of a watch connection; the last lease of a connection closes it.
struct Lease {
    hub: Arc<WatchHub>,
    node: Addr,
    watched: Arc<Watched>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Leases are taken under the same lock, so the count is exact: the hub's and this one.
        let mut nodes = lock(&self.hub.nodes);
        if matches!(nodes.get(&self.node),
            Some(Slot::Ready(w)) if Arc::ptr_eq(w, &self.watched) && Arc::strong_count(w) == 2)
        {
            nodes.remove(&self.node);
            debug!(node = %self.node, "watch connection closed: no supervisor watches the node");
        }
    }
}

/// Owned by the supervisor's task; dropping it closes the watch connection.
pub(crate) struct WatchHandle {
    _open: Sender<()>,
    node: Addr,
    /// The connection once its `ROLE` answered, until it closes: `ROLE` polls of the node go
    /// on it instead of a probe connection of their own (Sentinel closes both at a
    /// promotion, and a fleet of processes polling a candidate would open one more connection
    /// each to the node they all reach at that moment).
    conn: Arc<Mutex<Option<MultiplexedConnection>>>,
}

impl WatchHandle {
    /// The open connection of this watch, if it watches `node` and answered.
    pub(crate) fn conn_to(&self, node: &Addr) -> Option<MultiplexedConnection> {
        if self.node != *node {
            return None;
        }
        lock(&self.conn).clone()
    }
}

/// Opens the watch on its own task and returns its handle.
pub(crate) fn start(shared: &Arc<Shared>, op: OpId, node: Addr) -> WatchHandle {
    let (open, unwatched) = async_channel::bounded::<()>(1);
    let shared2 = Arc::clone(shared);
    let conn_slot = Arc::new(Mutex::new(None));
    let handle = WatchHandle {
        _open: open,
        node: node.clone(),
        conn: Arc::clone(&conn_slot),
    };
    shared.rt.spawn(Box::pin(async move {
        let shared = shared2;
        let rt = &*shared.rt;
        let limit = shared.cfg.connect_timeout();
        let watched = timeout(rt, limit, async {
            let lease = shared.watches.lease(rt, &node).await?;
            let mut conn = lease.watched.conn.clone();
            let role = conn
                .req_packed_command(&redis::cmd("ROLE"))
                .await
                .map_err(|e| crate::net::convert::io_error(&e))?;
            Ok::<_, IoError>((crate::net::convert::to_reply(role), conn, lease))
        })
        .await
        .unwrap_or_else(|| {
            Err(IoError::unreachable(format!(
                "no ROLE answer within {limit:?}"
            )))
        });
        let (reply, conn, lease) = match watched {
            Ok(w) => w,
            Err(e) => {
                let reply = Err(e);
                let _ = shared.inbox.send(node_reply(op, reply)).await;
                return;
            }
        };
        *lock(&conn_slot) = Some(conn);
        if shared.inbox.send(node_reply(op, Ok(reply))).await.is_err() {
            return;
        }
        // Closed by the server (or broken), or no longer wanted (the handle was dropped).
        let closed = lease.watched.closed.clone();
        let server_closed = or(async { closed.recv().await.is_err() }, async {
            let _ = unwatched.recv().await;
            false
        })
        .await;
        lock(&conn_slot).take();
        drop(lease);
        if server_closed {
            let closed = Input::Core(CoreInput::WatchClosed { op });
            let _ = shared.inbox.send(closed).await;
        }
    }));
    handle
}

fn node_reply(op: OpId, reply: Result<Reply, IoError>) -> Input {
    Input::Core(CoreInput::NodeReply { op, reply })
}
