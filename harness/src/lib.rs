//! Real Redis Sentinel deployments on this machine, and a reference job pool, for testing and
//! drilling [dramatiq-sentinel](https://docs.rs/dramatiq-sentinel-supervisor).
//!
//! - [`Deployment`]: real `redis-server` data nodes and sentinels on loopback ports, with
//!   controls (failover, kill, freeze, restart) and observation; the `redis-deployment` binary
//!   of this crate drives one from another language (JSON lines on stdin/stdout).
//! - [`pool`]: a worker pool on a reliable Redis queue under a supervisor, and the ledger that
//!   checks every job ran exactly once (the scenario suite and `dramatiq-sentinel drill` use
//!   it).
//! - [`runtime`]: the executors the pool runs on ([`runtime::TestRuntime`]: tokio and smol).
//! - [`config_for`]: a supervisor configuration for a deployment.
//!
//! # Deployments
//!
//! [`Deployment::start`] runs real `redis-server` data nodes (by default one master with two
//! replicas, service `mymaster`) and real sentinels (`redis-server <conf> --sentinel`, by default
//! three with quorum two, down-after 2000 ms) on free 127.0.0.1 ports, each process in its own
//! directory under `$TMPDIR`, and returns once the deployment is healthy. Nothing but loopback
//! traffic is involved.
//!
//! ```no_run
//! use std::time::Duration;
//! use dramatiq_sentinel_harness::{Deployment, DeploymentOptions};
//!
//! let deployment = Deployment::start(DeploymentOptions::default())?;
//! let sentinels = deployment.sentinel_addrs(); // configure the client under test with these
//! let (old, new) = deployment.failover_and_wait(Duration::from_secs(30))?;
//! assert_ne!(old, new);
//! let killed = deployment.kill_master()?;
//! let replacement = deployment.wait_for_new_master(killed, Duration::from_secs(30))?;
//! deployment.revive(killed)?; // comes back as a replica of `replacement`
//! # Ok::<(), dramatiq_sentinel_harness::HarnessError>(())
//! ```
//!
//! # What it offers
//! - Options ([`DeploymentOptions`]): number of replicas and sentinels, quorum, down-after and
//!   failover-timeout, a password or an ACL user on the sentinels and/or on the data nodes, NAT
//!   mode, and a second service monitored by the same sentinels.
//! - Controls: graceful failover, kill (SIGKILL), freeze and thaw (SIGSTOP/SIGCONT), revive or
//!   restart a process on the same port with the same config, stop and start a sentinel.
//! - Observation: the master each sentinel reports, the master they agree on, the `ROLE` of each
//!   process, waiting for a new master or for a healthy deployment (with errors that list what
//!   every sentinel and node says), any command on any process ([`Deployment::query`]).
//! - Description for a client: sentinel addresses, service names, credentials, the NAT map, and
//!   log file paths.
//!
//! Processes are identified by [`NodeId`] and [`SentinelId`] (both convert into [`ProcessId`]).
//! Addresses reported by Redis are *announced* addresses; map them to processes with
//! [`Deployment::node_at`].
//!
//! # Robustness
//! - Ports are drawn at random below the ephemeral range, never twice per test process, and a
//!   start that fails with "Address already in use" is retried on another port, so tests run in
//!   parallel. Readiness is checked by asking the process for its own pid.
//! - Every process is killed by pid (SIGKILL) and reaped when the [`Deployment`] is dropped,
//!   also when a test panics. During a panic (or with [`KEEP_LOGS_ENV`] set) the directory with
//!   all logs is kept and its path printed to stderr; otherwise it is removed.
//! - If the test process itself is killed (SIGKILL, or `cargo test` interrupted), no drop runs
//!   and the Redis processes survive; `scripts/test.sh` finds such leftovers of its run (their
//!   process title contains their config path under the run's `TMPDIR`), kills them and fails.
//! - All waiting is polling against a deadline; no fixed sleeps are used for synchronisation.
//!   The API is blocking: from async tests call it on a blocking thread (e.g. tokio's
//!   `spawn_blocking`), sharing the deployment through an `Arc`.
//! - A missing `redis-server` is an error that says how to install it
//!   ([`HarnessError::RedisServerNotFound`]), never a skipped test. Set [`REDIS_SERVER_ENV`] to
//!   use a specific binary: a `redis-server` (7.0 or newer) or a `valkey-server`; data nodes and
//!   sentinels are both started from it (`valkey-server <conf> --sentinel` runs a sentinel).
//!
//! # Timing
//! With down-after 1000 ms a sentinel sometimes marks the freshly promoted master down and fails
//! over a second time (redis/redis#8607); at the default 2000 ms this was not seen. 1000 ms
//! remains available for deliberate flapping scenarios; assertions should stay true when a
//! second failover happens ([`Deployment::wait_for_new_master`] does).
//!
//! # NAT mode
//! In NAT mode every data node and sentinel announces `127.0.0.1:<announced port>` (through
//! `replica-announce-ip/-port`, `sentinel announce-ip/-port` and the address in
//! `sentinel monitor`), while it really listens on `127.0.0.1:<real port>`. On each announced
//! port the harness runs a small TCP forwarder (a thread in the test process) that relays a connection to the
//! real port **only if it comes from 127.0.0.2**. Every Redis process of the deployment is
//! started with `bind-source-addr 127.0.0.2`, so replication links and sentinel links (which
//! always use announced addresses) pass. Any other client, such as the test process connecting
//! from 127.0.0.1, has its connection reset immediately, before a single byte of Redis protocol:
//! to a client the announced address is dead, and only the mapped address
//! ([`Deployment::nat_map`]: announced → real) works. The harness's own commands use the real
//! addresses.
//!
//! Why not the alternatives:
//! - `HOSTALIASES` (announce single-label host names that only the Redis processes can resolve):
//!   glibc applies the alias inside its DNS backend and then sends a DNS query for the alias
//!   target (even for `localhost`) to the configured name server. That is network traffic, and
//!   on this machine the query fails, so the sentinels cannot resolve the names at all.
//! - Announcing a port where nothing listens: the sentinels and replicas connect to announced
//!   addresses too, so something must listen there for them; the forwarder above is that
//!   something, and the source-address check keeps it closed to clients.
//! - Network namespaces, `/etc/hosts` entries or iptables rules need root or change the machine.
//!
//! A true "connection refused" would need a packet filter; a reset right after the TCP handshake
//! is the closest a user-space process can do: a client that ignores the map gets "connection
//! reset" on its first read (for clients that authenticate, during connect). The relay adds a
//! little latency for the sentinels and turns a killed node's reset into an orderly close on the
//! sentinel's side; a frozen node stays frozen behind the relay.

mod deployment;
pub mod pool;
pub mod runtime;
mod supervisor;
pub mod sync;
mod wait;

pub use deployment::*;
pub use redis;
pub use supervisor::config_for;
pub use wait::{WAIT, wait_for};
