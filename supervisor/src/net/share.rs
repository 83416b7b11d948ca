//! [`SharedConnections`]: the connections supervisors of one process may share.

use crate::net::cache::ConnCache;
use crate::net::connect::Endpoint;
use crate::net::watch::WatchHub;
use crate::sync::lock;
use std::sync::{Arc, Mutex, Weak};

/// Connections that the supervisors of one process share when each is built with
/// [`crate::Builder::shared_connections`] and the same `SharedConnections`: the cached
/// connections for sentinel queries and for `ROLE`/`INFO` probes of data nodes (one per
/// server), and the watch connections on replicas (one per replica).
///
/// For a process that hosts many supervisors of the same deployment (one per tenant or
/// service): without it, each supervisor holds its own, so a switch closes and opens as many
/// connections as there are supervisors, at the moment every one of them reaches the same
/// node. Shared, Sentinel's promotion closes one watch connection of the process, and the
/// deposed master's pause and offset travel on one probe connection. Each supervisor still
/// sends its own commands and decides on its own; only the sockets are shared. The
/// application's connections ([`crate::MasterConnection`]) and the sentinel listeners stay
/// each supervisor's own.
///
/// Only supervisors with the same TLS settings, connect timeout and credentials (for the
/// sentinels, for the data nodes) share a connection. They must run on the same runtime: a
/// shared connection runs on the runtime of the supervisor that opened it. A connection
/// closes when no supervisor uses it any more.
///
/// ```no_run
/// # async fn run<R: dramatiq_sentinel_supervisor::Runtime + Default>(
/// #     configs: Vec<dramatiq_sentinel_supervisor::Config>,
/// # ) -> Result<(), dramatiq_sentinel_supervisor::StartError> {
/// use dramatiq_sentinel_supervisor::{SharedConnections, Supervisor};
///
/// let shared = SharedConnections::new();
/// let mut supervisors = Vec::new();
/// for config in configs {
///     let builder = Supervisor::<R>::builder(config).shared_connections(&shared);
///     supervisors.push(builder.start().await?);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct SharedConnections {
    registry: Arc<Mutex<Registry>>,
}

/// What is shared, by how it reaches its servers. A handful of entries: one per distinct
/// set of connection settings among the supervisors.
#[derive(Default)]
struct Registry {
    caches: Vec<(Endpoint, Weak<ConnCache>)>,
    watches: Vec<(Endpoint, Weak<WatchHub>)>,
}

impl std::fmt::Debug for SharedConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn live<T>(entries: &[(Endpoint, Weak<T>)]) -> usize {
            entries.iter().filter(|(_, w)| w.strong_count() > 0).count()
        }
        let registry = lock(&self.registry);
        f.debug_struct("SharedConnections")
            .field("caches", &live(&registry.caches))
            .field("watch_hubs", &live(&registry.watches))
            .finish()
    }
}

impl SharedConnections {
    /// Connections for supervisors to share; none is open until a supervisor needs one.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cache for servers reached through `endpoint`, joined (see [`ConnCache::leave`]).
    pub(crate) fn cache(&self, endpoint: Endpoint) -> Arc<ConnCache> {
        let mut registry = lock(&self.registry);
        if let Some(cache) = find(&mut registry.caches, &endpoint) {
            cache.join();
            return cache;
        }
        let cache = Arc::new(ConnCache::new(endpoint.clone()));
        registry.caches.push((endpoint, Arc::downgrade(&cache)));
        cache
    }

    /// The watch connections to data nodes reached through `endpoint`.
    pub(crate) fn watches(&self, endpoint: Endpoint) -> Arc<WatchHub> {
        let mut registry = lock(&self.registry);
        if let Some(hub) = find(&mut registry.watches, &endpoint) {
            return hub;
        }
        let hub = Arc::new(WatchHub::new(endpoint.clone()));
        registry.watches.push((endpoint, Arc::downgrade(&hub)));
        hub
    }
}

/// The live entry for `endpoint`, after dropping the dead ones.
fn find<T>(entries: &mut Vec<(Endpoint, Weak<T>)>, endpoint: &Endpoint) -> Option<Arc<T>> {
    entries.retain(|(_, w)| w.strong_count() > 0);
    entries
        .iter()
        .find(|(e, _)| e == endpoint)
        .and_then(|(_, w)| w.upgrade())
}

#[cfg(test)]
mod tests {
    use super::SharedConnections;
    use crate::config::{Config, Credentials};
    use crate::net::connect::Endpoint;
    use std::sync::Arc;

    fn endpoint(password: Option<&str>) -> Endpoint {
        let auth = password.map(|p| Credentials {
            username: None,
            password: p.to_owned(),
        });
        Endpoint::of(&Config::builder().build().expect("valid"), auth.as_ref(), 0)
    }

    /// Supervisors with the same settings get the same cache and watch hub; other
    /// credentials get their own; once nobody holds them, the next supervisor starts afresh.
    #[test]
    fn only_equal_settings_share() {
        let shared = SharedConnections::new();
        let (a, b) = (shared.cache(endpoint(None)), shared.cache(endpoint(None)));
        assert!(Arc::ptr_eq(&a, &b), "same settings, same cache");
        let other = shared.cache(endpoint(Some("secret")));
        assert!(!Arc::ptr_eq(&a, &other), "other credentials, other cache");
        let (w1, w2) = (
            shared.watches(endpoint(None)),
            shared.watches(endpoint(None)),
        );
        assert!(Arc::ptr_eq(&w1, &w2), "same settings, same watch hub");
        assert!(!Arc::ptr_eq(&w1, &shared.watches(endpoint(Some("secret")))));
        let weak = Arc::downgrade(&a);
        drop((a, b));
        assert!(
            weak.upgrade().is_none(),
            "the registry holds no cache alive"
        );
        let fresh = shared.cache(endpoint(None));
        assert!(fresh.endpoint() == &endpoint(None));
        assert_eq!(
            format!("{shared:?}"),
            "SharedConnections { caches: 2, watch_hubs: 1 }"
        );
    }
}
