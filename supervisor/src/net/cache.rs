//! The small per-address caches used for sentinel queries and `ROLE` probes (never for the
//! application's master connection): one connection per address, opened once however many
//! callers want it at the same moment, and shared by every supervisor given the same
//! [`crate::SharedConnections`].

use crate::net::connect::Endpoint;
use crate::net::convert::{io_error, to_reply};
use crate::net::flight::{self, Slot, Slots};
use crate::runtime::{Runtime, timeout};
use crate::sync::lock;
use dramatiq_sentinel_core::{Addr, IoError, Reply};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// A cached connection and its number.
#[derive(Clone)]
struct Cached {
    id: u64,
    conn: MultiplexedConnection,
}

/// One cached connection per address, for short commands (sentinel queries, `ROLE` probes).
/// A connection that fails or times out is forgotten, so the next use reconnects.
pub(crate) struct ConnCache {
    endpoint: Endpoint,
    conns: Slots<Cached>,
    /// Numbers the connections opened, so that a caller forgets only the one that failed it.
    opened: AtomicU64,
    /// The supervisors using this cache; the last to [`ConnCache::leave`] closes its
    /// connections.
    users: AtomicUsize,
}

impl ConnCache {
    /// A cache for one user.
    pub(crate) fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            conns: Slots::default(),
            opened: AtomicU64::new(0),
            users: AtomicUsize::new(1),
        }
    }

    /// One more supervisor uses this cache.
    pub(crate) fn join(&self) {
        self.users.fetch_add(1, Ordering::SeqCst);
    }

    /// A supervisor stopped using this cache: the last one drops every cached connection.
    pub(crate) fn leave(&self) {
        if self.users.fetch_sub(1, Ordering::SeqCst) == 1 {
            lock(&self.conns).clear();
        }
    }

    /// The cached connection to `addr` (and `true`), or a new one (the one a concurrent caller
    /// is opening, if any).
    async fn get(&self, rt: &dyn Runtime, addr: &Addr) -> Result<(Cached, bool), IoError> {
        // Boxed: the futures of the callers (a status query inside an application's own async
        // code) nest deep enough otherwise to overflow the compiler's query depth limit.
        Box::pin(flight::get_or_open(
            &self.conns,
            addr,
            |_| true,
            || async {
                let conn = self.endpoint.open(rt, addr).await?;
                let id = self.opened.fetch_add(1, Ordering::Relaxed);
                Ok(Cached { id, conn })
            },
        ))
        .await
    }

    /// How this cache reaches its servers.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Drops the cached connection `id` to `addr`, if it is still the one cached (its socket
    /// closes once unused).
    fn forget(&self, addr: &Addr, id: u64) {
        let mut conns = lock(&self.conns);
        if matches!(conns.get(addr), Some(Slot::Ready(c)) if c.id == id) {
            conns.remove(addr);
        }
    }

    /// Runs one command on `addr` (connecting if needed) within `limit`, and converts the raw
    /// reply, server errors included. A cached connection the server closed meanwhile (its
    /// idle clients killed when Sentinel promotes or reconfigures it, a server `timeout`) is
    /// replaced once, within the same limit.
    pub(crate) async fn query(
        &self,
        rt: &dyn Runtime,
        addr: &Addr,
        cmd: &redis::Cmd,
        limit: Duration,
    ) -> Result<Reply, IoError> {
        self.query_on(rt, addr, None, cmd, limit).await
    }

    /// [`ConnCache::query`], on `given` (another open connection to `addr`) if there is one.
    /// A given connection the server closed is not replaced: its closing is news to the
    /// caller (Sentinel closes a replica's connections when it promotes it), and the
    /// cached connection is left as it is.
    pub(crate) async fn query_on(
        &self,
        rt: &dyn Runtime,
        addr: &Addr,
        given: Option<MultiplexedConnection>,
        cmd: &redis::Cmd,
        limit: Duration,
    ) -> Result<Reply, IoError> {
        // The cached connection that failed, to forget.
        let mut used = None;
        let result = timeout(rt, limit, async {
            if let Some(mut conn) = given {
                return conn.req_packed_command(cmd).await.map_err(|e| io_error(&e));
            }
            let (mut cached, kept) = self.get(rt, addr).await?;
            used = Some(cached.id);
            match cached.conn.req_packed_command(cmd).await {
                Err(e) if kept && e.is_connection_dropped() => {
                    self.forget(addr, cached.id);
                    let (mut fresh, _) = self.get(rt, addr).await?;
                    used = Some(fresh.id);
                    fresh
                        .conn
                        .req_packed_command(cmd)
                        .await
                        .map_err(|e| io_error(&e))
                }
                other => other.map_err(|e| io_error(&e)),
            }
        })
        .await;
        let failed = match result {
            Some(Ok(value)) => return Ok(to_reply(value)),
            Some(Err(e)) => e,
            None => IoError::unreachable(format!("no answer within {limit:?}")),
        };
        if let Some(id) = used {
            self.forget(addr, id);
        }
        Err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::ConnCache;
    use crate::config::Config;
    use crate::fake_redis::FakeRedis;
    use crate::net::connect::Endpoint;
    use crate::runtime::Runtime;
    use crate::testing::TokioRuntime;
    use dramatiq_sentinel_core::Reply;
    use std::sync::Arc;
    use std::time::Duration;

    /// Twenty probes at once through a cache two supervisors share open one connection; it
    /// stays while one of them uses the cache, and closes when the last leaves.
    #[test]
    fn probes_at_once_share_one_connection_until_the_last_user_leaves() {
        let server = FakeRedis::start(true);
        let runtime = crate::testing::two_thread_tokio();
        let rt: Arc<dyn Runtime> = Arc::new(TokioRuntime(runtime.handle().clone()));
        let config = Config::builder().build().expect("valid");
        let cache = Arc::new(ConnCache::new(Endpoint::of(&config, None, 0)));
        cache.join();
        let probes: Vec<_> = (0..20)
            .map(|_| {
                let (cache, rt, node) = (Arc::clone(&cache), Arc::clone(&rt), server.addr.clone());
                runtime.spawn(async move {
                    let limit = Duration::from_secs(30);
                    cache.query(&*rt, &node, &redis::cmd("ROLE"), limit).await
                })
            })
            .collect();
        for probe in probes {
            let reply = runtime.block_on(probe).expect("task");
            assert_eq!(reply, Ok(Reply::Int(1)));
        }
        assert_eq!(server.accepted(), 1, "one connection for twenty probes");
        cache.leave();
        let limit = Duration::from_secs(30);
        let reply = runtime.block_on(cache.query(&*rt, &server.addr, &redis::cmd("ROLE"), limit));
        assert_eq!(reply, Ok(Reply::Int(1)));
        assert_eq!(server.accepted(), 1, "kept for the other user");
        cache.leave();
        server.wait("the connection to close", |s| s.open() == 0);
    }
}
