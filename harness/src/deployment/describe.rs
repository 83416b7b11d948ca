//! Describing a deployment to a client and to a test: names, addresses, credentials, the NAT
//! map, logs, process state, and commands on any process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::binary::RedisBinary;
use super::client::Auth;
use super::error::Result;
use super::handle::Deployment;
use super::ids::{NodeId, ProcessId, SentinelId};
use super::options::DeploymentOptions;
use super::tls::TlsFiles;

impl Deployment {
    /// The name of the (first) service, e.g. `mymaster`.
    pub fn service_name(&self) -> &str {
        &self.options.service_name
    }

    /// The name of the second service, if one was requested.
    pub fn second_service_name(&self) -> Option<&str> {
        self.options.second_service.as_deref()
    }

    /// The options the deployment was started with.
    pub fn options(&self) -> &DeploymentOptions {
        &self.options
    }

    /// The sentinels' `down-after-milliseconds`.
    pub fn down_after(&self) -> Duration {
        self.options.down_after
    }

    /// The sentinels' `failover-timeout`.
    pub fn failover_timeout(&self) -> Duration {
        self.options.failover_timeout
    }

    /// The server version in use, e.g. `7.0.15` (see [`Deployment::server`] for which server).
    pub fn redis_version(&self) -> &str {
        self.binary.version()
    }

    /// The server in use with its version, e.g. `Redis 7.0.15` or `Valkey 8.1.8`.
    pub fn server(&self) -> String {
        self.binary.describe()
    }

    /// The server binary every process of this deployment runs.
    pub fn server_binary(&self) -> &RedisBinary {
        &self.binary
    }

    /// The data nodes of the first service; the first one is the initial master.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.service_nodes(self.service_name())
    }

    /// The data nodes of `service` (empty for an unknown name); the first is the initial master.
    pub fn service_nodes(&self, service: &str) -> Vec<NodeId> {
        self.services
            .iter()
            .find(|s| s.name == service)
            .map(|s| s.nodes.clone())
            .unwrap_or_default()
    }

    /// Every sentinel.
    pub fn sentinels(&self) -> Vec<SentinelId> {
        (0..self.sentinels.len()).map(SentinelId).collect()
    }

    /// The service a data node belongs to.
    pub fn node_service(&self, node: NodeId) -> &str {
        self.member(node).service.as_deref().unwrap_or_default()
    }

    /// The address a client connects to (127.0.0.1 and the real port).
    ///
    /// Panics if `id` comes from another, larger deployment (as for every accessor).
    pub fn addr(&self, id: impl Into<ProcessId>) -> SocketAddr {
        self.member(id).addr
    }

    /// The address the process announces, which sentinels report: in NAT mode an address that
    /// resets client connections, otherwise the same as [`Deployment::addr`].
    pub fn announced_addr(&self, id: impl Into<ProcessId>) -> SocketAddr {
        self.member(id).announced
    }

    /// The reachable addresses of all sentinels, in order: what a client is configured with.
    pub fn sentinel_addrs(&self) -> Vec<SocketAddr> {
        self.sentinels.iter().map(|m| m.addr).collect()
    }

    /// The data node with this address (announced or real), if any.
    pub fn node_at(&self, addr: SocketAddr) -> Option<NodeId> {
        self.nodes
            .iter()
            .position(|m| m.addr == addr || m.announced == addr)
            .map(NodeId)
    }

    /// NAT mode: announced `host:port` → reachable `host:port`, for every data node and
    /// sentinel. Empty when NAT mode is off.
    pub fn nat_map(&self) -> BTreeMap<String, String> {
        if !self.options.nat {
            return BTreeMap::new();
        }
        self.nodes
            .iter()
            .chain(&self.sentinels)
            .map(|m| (m.announced.to_string(), m.addr.to_string()))
            .collect()
    }

    /// TLS mode: the CA, and the certificate every process serves and clients must present.
    /// `None` when TLS mode is off.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// The credentials the data nodes require.
    pub fn data_auth(&self) -> &Auth {
        &self.options.data_auth
    }

    /// The credentials the sentinels require.
    pub fn sentinel_auth(&self) -> &Auth {
        &self.options.sentinel_auth
    }

    /// The process's log file (stdout and stderr of `redis-server`).
    pub fn log_path(&self, id: impl Into<ProcessId>) -> &Path {
        &self.member(id).log
    }

    /// The process's config file (Redis rewrites it, e.g. on failover).
    pub fn config_path(&self, id: impl Into<ProcessId>) -> &Path {
        &self.member(id).conf
    }

    /// Every log file of the deployment.
    pub fn log_paths(&self) -> Vec<PathBuf> {
        self.nodes
            .iter()
            .chain(&self.sentinels)
            .map(|m| m.log.clone())
            .collect()
    }

    /// The deployment directory (one subdirectory per process).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Keeps the deployment directory after drop even if the test passes.
    pub fn keep_logs(&mut self) {
        self.keep = true;
    }

    /// The pid while the process runs (frozen counts as running).
    pub fn pid(&self, id: impl Into<ProcessId>) -> Option<u32> {
        self.member(id).process().pid()
    }

    /// True while the process runs (frozen counts as running).
    pub fn is_running(&self, id: impl Into<ProcessId>) -> bool {
        self.member(id).process().is_running()
    }

    /// True while the process is frozen (SIGSTOP).
    pub fn is_frozen(&self, id: impl Into<ProcessId>) -> bool {
        self.member(id).process().is_frozen()
    }

    /// A new connection to the process (reachable address, the right credentials, connect/read/
    /// write timeouts of [`DeploymentOptions::command_timeout`]).
    pub fn connect(&self, id: impl Into<ProcessId>) -> Result<redis::Connection> {
        self.endpoint(id).connect("connect")
    }

    /// Runs one command on the process (on a fresh connection) and converts the reply.
    ///
    /// ```no_run
    /// # use dramatiq_sentinel_harness::*;
    /// # let deployment = Deployment::start(DeploymentOptions::default())?;
    /// let master = deployment.master()?;
    /// deployment.query::<()>(master, redis::cmd("SET").arg("key").arg("value"))?;
    /// # Ok::<(), HarnessError>(())
    /// ```
    pub fn query<T: redis::FromRedisValue>(
        &self,
        id: impl Into<ProcessId>,
        cmd: &redis::Cmd,
    ) -> Result<T> {
        self.endpoint(id).query(cmd)
    }
}
