//! [`Deployment`]: starting, describing and tearing down a test deployment.

use crate::sync::lock;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use tempfile::TempDir;

use super::binary::RedisBinary;
use super::client::{Auth, Endpoint};
use super::error::{HarnessError, Result};
use super::ids::{NodeId, ProcessId, SentinelId};
use super::nat::NatProxy;
use super::options::DeploymentOptions;
use super::process::RedisProcess;
use super::tls::TlsFiles;

/// Set this environment variable (to anything) to keep the logs of every deployment, not only
/// of failed tests.
pub const KEEP_LOGS_ENV: &str = "DRAMATIQ_SENTINEL_KEEP_LOGS";

/// Prefix of every deployment directory (under `$TMPDIR`).
pub const DIR_PREFIX: &str = "dramatiq-sentinel-";

/// A running Redis Sentinel deployment: data nodes (a master with replicas per service) and
/// sentinels, each a real `redis-server` process on a free 127.0.0.1 port with its own
/// directory (`redis.conf` or `sentinel.conf`, `redis.log`).
///
/// Every method takes `&self`, so a deployment can be shared (`Arc<Deployment>`) between the
/// test and the threads or tasks that drive a client. Dropping it kills every process by pid;
/// when the drop happens during a panic (a failed test) the directory with all logs is kept and
/// its path printed to stderr, otherwise it is removed.
///
/// Methods taking a [`NodeId`], [`SentinelId`] or [`ProcessId`] panic if the id belongs to
/// another, larger deployment.
#[derive(Debug)]
pub struct Deployment {
    pub(crate) options: DeploymentOptions,
    pub(crate) binary: RedisBinary,
    pub(crate) dir: PathBuf,
    temp: Option<TempDir>,
    pub(crate) keep: bool,
    pub(crate) nodes: Vec<Member>,
    pub(crate) sentinels: Vec<Member>,
    pub(crate) services: Vec<Service>,
    /// TLS mode: the certificates every process and client uses.
    pub(crate) tls: Option<TlsFiles>,
}

/// One monitored service: its name and its data nodes (the first is the initial master).
#[derive(Debug)]
pub(crate) struct Service {
    pub(crate) name: String,
    pub(crate) nodes: Vec<NodeId>,
}

/// One process with its addresses.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) name: String,
    pub(crate) service: Option<String>,
    pub(crate) addr: SocketAddr,
    pub(crate) announced: SocketAddr,
    pub(crate) auth: Auth,
    pub(crate) log: PathBuf,
    pub(crate) conf: PathBuf,
    pub(crate) process: Mutex<RedisProcess>,
    /// Keeps the NAT proxy of the announced address alive.
    pub(crate) _proxy: Option<NatProxy>,
}

impl Member {
    pub(crate) fn process(&self) -> MutexGuard<'_, RedisProcess> {
        lock(&self.process)
    }
}

impl Deployment {
    /// Starts a deployment and returns once it is healthy: the master of every service has all
    /// its replicas linked, every sentinel names the same master and sees every replica, and the
    /// sentinels know each other.
    ///
    /// Fails with [`HarnessError::RedisServerNotFound`] when Redis is not installed. On any
    /// failure the processes are killed and the logs are kept (the error names them).
    pub fn start(options: DeploymentOptions) -> Result<Self> {
        options.validate()?;
        let binary = RedisBinary::locate()?;
        let temp = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .map_err(|e| HarnessError::io("creating the deployment directory", e))?;
        let mut deployment = Self {
            options,
            binary,
            dir: temp.path().to_path_buf(),
            temp: Some(temp),
            keep: false,
            nodes: Vec::new(),
            sentinels: Vec::new(),
            services: Vec::new(),
            tls: None,
        };
        if let Err(error) = deployment.launch_all() {
            deployment.keep = true;
            return Err(error);
        }
        Ok(deployment)
    }

    /// The process behind an id; panics for an id of another, larger deployment.
    pub(crate) fn member(&self, id: impl Into<ProcessId>) -> &Member {
        let id = id.into();
        let member = match id {
            ProcessId::Node(NodeId(i)) => self.nodes.get(i),
            ProcessId::Sentinel(SentinelId(i)) => self.sentinels.get(i),
        };
        member.unwrap_or_else(|| panic!("{id} does not belong to this deployment"))
    }

    pub(crate) fn endpoint(&self, id: impl Into<ProcessId>) -> Endpoint<'_> {
        let member = self.member(id);
        Endpoint {
            name: &member.name,
            addr: member.addr,
            auth: &member.auth,
            tls: self.tls.as_ref(),
            log: &member.log,
            timeout: self.options.command_timeout,
        }
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for member in self.sentinels.iter().chain(&self.nodes) {
            member.process().kill();
        }
        let keep =
            self.keep || std::thread::panicking() || std::env::var_os(KEEP_LOGS_ENV).is_some();
        if let Some(temp) = self.temp.take()
            && keep
        {
            let dir = temp.keep();
            eprintln!(
                "dramatiq-sentinel-harness: kept the logs of this deployment in {}",
                dir.display()
            );
            for member in self.nodes.iter().chain(&self.sentinels) {
                eprintln!("  {:<12} {}", member.name, member.log.display());
            }
        }
    }
}
