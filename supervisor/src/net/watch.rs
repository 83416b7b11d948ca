//! Watch connections ([`Action::Watch`]) on every replica of the master in use and on failover
//! candidates: one connection per node
//! that answers `ROLE` once, then stays open and silent. Sentinel closes every client
//! connection of the replica it promotes, so the closing reaches the core the moment the
//! candidate becomes master, with one connection per process instead of a `ROLE` poll every
//! few milliseconds. `ROLE` polls of a watched node go on its watch connection.
//!
//! [`Action::Watch`]: dramatiq_sentinel_core::Action::Watch

use crate::drive::shared::{Input, Shared};
use crate::runtime::timeout;
use crate::sync::lock;
use async_channel::Sender;
use dramatiq_sentinel_core::{Addr, Input as CoreInput, IoError, OpId, Reply};
use futures_lite::future::or;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use std::sync::{Arc, Mutex};

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
            let (mut conn, closed) = shared.probes.endpoint().open_watched(rt, &node).await?;
            let role = conn
                .req_packed_command(&redis::cmd("ROLE"))
                .await
                .map_err(|e| crate::net::convert::io_error(&e))?;
            Ok::<_, IoError>((crate::net::convert::to_reply(role), conn, closed))
        })
        .await
        .unwrap_or_else(|| {
            Err(IoError::unreachable(format!(
                "no ROLE answer within {limit:?}"
            )))
        });
        let (reply, conn, closed) = match watched {
            Ok(w) => w,
            Err(e) => {
                let reply = Err(e);
                let _ = shared.inbox.send(node_reply(op, reply)).await;
                return;
            }
        };
        *lock(&conn_slot) = Some(conn.clone());
        if shared.inbox.send(node_reply(op, Ok(reply))).await.is_err() {
            return;
        }
        // Closed by the server (or broken), or no longer wanted (the handle was dropped).
        let server_closed = or(async { closed.recv().await.is_err() }, async {
            let _ = unwatched.recv().await;
            false
        })
        .await;
        lock(&conn_slot).take();
        drop(conn);
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
