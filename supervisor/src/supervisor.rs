//! [`Builder`] and [`Supervisor`]: starting, using and stopping a supervisor.

use crate::config::Config;
use crate::drive::driver::{Driver, Startup};
use crate::drive::shared::Shared;
use crate::error::{StartError, SupervisorError};
use crate::handles::gate::{WorkerGate, Workers};
use crate::handles::master::MasterConnection;
use crate::net::connect::{Endpoint, tls_supported};
use crate::net::share::SharedConnections;
use crate::net::status::{self, Status, StatusError};
use crate::observe::events::{Broadcast, EventStream, Hooks};
use crate::runtime::Runtime;
use dramatiq_sentinel_core::{Addr, Core, Event};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Instant;
use tracing::debug;

/// Configures and starts a [`Supervisor`]: the worker pool, hooks and event subscriptions that
/// must exist before startup.
pub struct Builder<R> {
    runtime: R,
    config: Config,
    workers: Option<Arc<dyn Workers>>,
    hooks: Hooks,
    events: Broadcast,
    connections: Option<SharedConnections>,
}

impl<R> std::fmt::Debug for Builder<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> Builder<R> {
    /// A builder for a supervisor on `runtime` with `config`.
    pub fn new(runtime: R, config: Config) -> Self {
        Self {
            runtime,
            config,
            workers: None,
            hooks: Hooks::default(),
            events: Broadcast::default(),
            connections: None,
        }
    }

    /// A worker pool the supervisor pauses, resumes and stops itself, in addition to the
    /// [`WorkerGate`].
    pub fn workers(mut self, workers: impl Workers) -> Self {
        self.workers = Some(Arc::new(workers));
        self
    }

    /// Shares this supervisor's connections for sentinel queries, data-node probes and replica
    /// watches with every other supervisor of the process given the same `connections` (one
    /// connection per server among them instead of one per supervisor); see
    /// [`SharedConnections`]. Without it, the supervisor keeps its own.
    pub fn shared_connections(mut self, connections: &SharedConnections) -> Self {
        self.connections = Some(connections.clone());
        self
    }

    /// Calls `hook` for every event, on the supervisor's task, in order. Keep it short.
    pub fn on_event(mut self, hook: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.hooks.on_event.push(Box::new(hook));
        self
    }

    /// The original middleware's `redis_master_switch_detected(old, new, sentinel)` hook.
    pub fn on_switch_detected(
        self,
        hook: impl Fn(Option<&Addr>, &Addr, Option<&Addr>) + Send + Sync + 'static,
    ) -> Self {
        self.on_event(move |e| {
            if let Event::SwitchDetected {
                old, new, sentinel, ..
            } = e
            {
                hook(old.as_ref(), new, sentinel.as_ref());
            }
        })
    }

    /// The original middleware's `before_redis_connection_reset(old, new)` hook: runs before the master
    /// connection moves to the verified new master.
    pub fn before_reset(self, hook: impl Fn(Option<&Addr>, &Addr) + Send + Sync + 'static) -> Self {
        self.on_event(move |e| {
            if let Event::BeforeReset { old, new } = e {
                hook(old.as_ref(), new);
            }
        })
    }

    /// The original middleware's `after_redis_connection_reset(old, new)` hook: runs once the master
    /// connection moved and every connection to the old master is closed.
    pub fn after_reset(self, hook: impl Fn(Option<&Addr>, &Addr) + Send + Sync + 'static) -> Self {
        self.on_event(move |e| {
            if let Event::AfterReset { old, new } = e {
                hook(old.as_ref(), new);
            }
        })
    }

    /// Runs `hook` with the exit code right before the process exits after a pause timeout
    /// (to flush logs or metrics).
    pub fn before_exit(mut self, hook: impl Fn(u8) + Send + Sync + 'static) -> Self {
        self.hooks.before_exit.push(Box::new(hook));
        self
    }

    /// A stream of every event from startup on.
    pub fn subscribe(&self) -> EventStream {
        self.events.subscribe()
    }

    /// Starts the supervisor and returns once startup verified a master ([`Event::Ready`]),
    /// or with the reason it could not. Workers may start jobs from then on.
    pub async fn start(self) -> Result<Supervisor<R>, StartError> {
        let Builder {
            runtime,
            config,
            workers,
            hooks,
            events,
            connections,
        } = self;
        // Without a seed of the user's, every process draws its own: a fleet started together
        // must not retry in lockstep.
        let seed = config
            .jitter_seed()
            .unwrap_or_else(|| fastrand::Rng::new().u64(..));
        let mut config = config.with_jitter_seed(seed);
        if workers.as_ref().is_some_and(|w| w.needs_drain()) {
            config = config.with_drain();
        }
        if config.tls() && !tls_supported() {
            return Err(StartError::InvalidConfig {
                field: "tls".to_owned(),
                problem: "the `redis` crate was built without TLS: enable the shim's \
                          TLS feature"
                    .to_owned(),
            });
        }
        #[cfg(feature = "tls-rustls")]
        if config.tls() && rustls::crypto::CryptoProvider::get_default().is_none() {
            // Without a process-wide provider, rustls cannot pick one when several are built
            // in; ring is ours. An error means another thread installed one meanwhile.
            // rustls 0.23.48 deprecates ring's provider (no post-quantum key exchange) in
            // favour of aws-lc-rs, which needs a C toolchain and cmake to build; ring stays
            // ours until the `redis` crate moves.
            #[allow(deprecated)]
            let provider = rustls::crypto::ring::default_provider();
            let _ = provider.install_default();
        }
        if let Err((field, problem)) = Endpoint::of(&config, None, 0).check_certs() {
            return Err(StartError::InvalidConfig {
                field: field.to_owned(),
                problem,
            });
        }
        let rt: Arc<dyn Runtime> = Arc::new(runtime);
        let (shared, inbox_rx) = Shared::new(
            Arc::clone(&rt),
            config.clone(),
            workers,
            events,
            hooks,
            connections.as_ref(),
        );
        let (started, verdict) = async_channel::bounded(1);
        let driver = Driver::new(
            Core::new(config.core().clone(), Instant::now()),
            Arc::clone(&shared),
            inbox_rx,
            started,
        );
        rt.spawn(Box::pin(driver.run()));
        rt.spawn(Box::pin(crate::drive::workers::run(Arc::clone(&shared))));
        let guard = StopOnDrop(Arc::clone(&shared));
        match verdict.recv().await {
            Ok(Startup::Ready) => {
                // Its connections are open: room for the ones a switch opens before closing
                // these, so that no switch waits for the descriptor table to grow.
                crate::net::fd_table::make_room();
                Ok(Supervisor {
                    shared,
                    _alive: Arc::new(guard),
                    _runtime: PhantomData,
                })
            }
            Ok(Startup::Failed(e)) => Err(e.into()),
            Err(_) => Err(StartError::Ended),
        }
    }
}

/// Stops the supervisor when dropped: the `start` future dropped before it returns, then the
/// last [`Supervisor`] clone (they share it).
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if self.0.done.get().is_none() {
            debug!("the last Supervisor handle was dropped: stopping");
        }
        self.0.stop_requested.cancel();
    }
}

/// A running supervisor: it watches the sentinels, moves the [`MasterConnection`] to each new
/// master, and pauses and resumes the workers around each switch.
///
/// Cheap to clone. Dropping the last clone stops it as [`Supervisor::shutdown`] does, without
/// waiting: the [`MasterConnection`]s and [`WorkerGate`]s it gave do not keep it running (they
/// fail with [`Failure::Stopped`](crate::Failure::Stopped) once it stopped), so keep a clone
/// for as long as they should follow failovers, and call [`Supervisor::shutdown`] to wait for
/// the end.
pub struct Supervisor<R> {
    shared: Arc<Shared>,
    /// Shared by the clones: the last one dropped stops the supervisor.
    _alive: Arc<StopOnDrop>,
    _runtime: PhantomData<fn() -> R>,
}

impl<R> Clone for Supervisor<R> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            _alive: Arc::clone(&self._alive),
            _runtime: PhantomData,
        }
    }
}

impl<R> std::fmt::Debug for Supervisor<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("service", &self.shared.cfg.service_name())
            .field("master", &self.current_master())
            .finish_non_exhaustive()
    }
}

impl<R: Runtime + Default> Supervisor<R> {
    /// A [`Builder`] on the default runtime of `R`.
    pub fn builder(config: Config) -> Builder<R> {
        Builder::new(R::default(), config)
    }

    /// Starts a supervisor with no worker pool, hooks or early subscriptions; see
    /// [`Builder::start`].
    pub async fn start(config: Config) -> Result<Self, StartError> {
        Self::builder(config).start().await
    }
}

impl<R> Supervisor<R> {
    /// A handle to the current master, for application commands.
    pub fn master(&self) -> MasterConnection {
        MasterConnection::new(Arc::clone(&self.shared))
    }

    /// The worker gate: take a permit per job.
    pub fn gate(&self) -> WorkerGate {
        self.shared.gate.clone()
    }

    /// A stream of the events from now on.
    pub fn events(&self) -> EventStream {
        self.shared.events.subscribe()
    }

    /// The master in use.
    pub fn current_master(&self) -> Option<Addr> {
        self.shared.slot.current().map(|a| a.node.clone())
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.shared.cfg
    }

    /// Master, replicas, sentinels and quorum as the first answering sentinel sees them.
    pub async fn status(&self) -> Result<Status, StatusError> {
        // Boxed: its future (sentinel queries on `redis` connections) is deep, and the
        // application's futures that await this one must not reach the compiler's query depth
        // limit ("queries overflow the depth limit!").
        Box::pin(status::query(&self.shared)).await
    }

    /// Whether the supervisor has stopped (shut down, or a fatal error).
    pub fn is_stopped(&self) -> bool {
        self.shared.done.get().is_some()
    }

    /// Completes when the supervisor stops: `Ok` after [`Supervisor::shutdown`], or why it
    /// stopped (a pause timeout with the `Fail` policy).
    pub async fn wait(&self) -> Result<(), SupervisorError> {
        self.shared.done.wait().await
    }

    /// Stops the supervisor: no new jobs start, jobs in flight get `stop_grace` (and the pool
    /// is stopped), then every task ends and every connection closes. Returns how it ended
    /// (the fatal error if it had already failed).
    pub async fn shutdown(&self) -> Result<(), SupervisorError> {
        self.shared.stop_requested.cancel();
        self.wait().await
    }
}
