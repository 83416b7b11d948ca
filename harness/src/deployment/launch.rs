//! Launching the processes of a new deployment: data nodes, then sentinels.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;

use super::client::Auth;
use super::config::{
    Listen, MonitoredService, NodeConfig, Peer, SentinelConfig, node_config, sentinel_config,
};
use super::error::{HarnessError, Result};
use super::handle::{Deployment, Member, Service};
use super::ids::{NodeId, ProcessId, SentinelId};
use super::nat::NatProxy;
use super::ports::{LOOPBACK, free_port};
use super::process::{RedisProcess, StartError};
use super::tls::TlsFiles;

/// How many ports are tried before giving up on a process.
const PORT_ATTEMPTS: usize = 5;

/// A process that is prepared (directory, NAT proxy) but not yet a [`Member`].
struct Pending {
    name: String,
    service: Option<String>,
    auth: Auth,
    proxy: Option<NatProxy>,
    process: RedisProcess,
}

impl Pending {
    /// The announced address if the process listens on `port`.
    fn announced(&self, port: u16) -> SocketAddr {
        self.proxy
            .as_ref()
            .map_or(SocketAddr::from((LOOPBACK, port)), NatProxy::announced)
    }

    fn into_member(self, port: u16) -> Member {
        let addr = SocketAddr::from((LOOPBACK, port));
        if let Some(proxy) = &self.proxy {
            proxy.set_target(port);
        }
        Member {
            announced: self.announced(port),
            name: self.name,
            service: self.service,
            addr,
            auth: self.auth,
            log: self.process.log().to_path_buf(),
            conf: self.process.conf().to_path_buf(),
            process: Mutex::new(self.process),
            _proxy: self.proxy,
        }
    }
}

impl Deployment {
    /// Starts every data node, waits for replication, starts the sentinels, waits for health.
    pub(crate) fn launch_all(&mut self) -> Result<()> {
        if self.options.tls {
            self.tls = Some(TlsFiles::generate(&self.dir.join("tls"))?);
        }
        let mut services = vec![(self.options.service_name.clone(), self.options.replicas)];
        if let Some(second) = &self.options.second_service {
            services.push((second.clone(), 1));
        }
        for (name, replicas) in services {
            let master = self.launch_node(&name, None)?;
            let master_addr = self.announced_addr(master);
            let mut nodes = vec![master];
            for _ in 0..replicas {
                nodes.push(self.launch_node(&name, Some(master_addr))?);
            }
            self.services.push(Service { name, nodes });
        }
        // Sentinels learn the replicas from the master's INFO: link them first.
        self.wait_replication(self.options.start_timeout)?;
        self.sentinels = self.launch_sentinels()?;
        self.wait_healthy(self.options.start_timeout)
    }

    fn launch_node(&mut self, service: &str, replica_of: Option<SocketAddr>) -> Result<NodeId> {
        let id = NodeId(self.nodes.len());
        let mut pending = self.prepare(id.into(), Some(service))?;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let text = node_config(&NodeConfig {
                listen: self.listen(&pending, port),
                auth: &self.options.data_auth,
                replica_of,
                tcp_backlog: self.options.tcp_backlog,
            });
            match self.try_start(&mut pending, port, &text) {
                Ok(()) => {
                    self.nodes.push(pending.into_member(port));
                    return Ok(id);
                }
                Err(StartError::PortInUse) => {}
                Err(StartError::Failed(error)) => return Err(error),
            }
        }
        Err(ports_exhausted(&pending))
    }

    /// Starts all sentinels as one batch: each config names the others (`known-sentinel`, with
    /// ids chosen here), so they do not have to discover each other through hello messages
    /// first, which takes about two seconds. If a port is taken, the batch starts over.
    fn launch_sentinels(&self) -> Result<Vec<Member>> {
        let count = self.options.sentinels;
        let mut pending = (0..count)
            .map(|i| self.prepare(SentinelId(i).into(), None))
            .collect::<Result<Vec<_>>>()?;
        let ids: Vec<String> = (0..count).map(|_| random_id()).collect();
        'attempt: for _ in 0..PORT_ATTEMPTS {
            let ports = (0..count)
                .map(|_| free_port())
                .collect::<Result<Vec<_>>>()?;
            let peers: Vec<Peer> = pending
                .iter()
                .zip(&ports)
                .zip(&ids)
                .map(|((p, &port), id)| Peer {
                    id: id.clone(),
                    announced: p.announced(port),
                })
                .collect();
            // Spawn all before waiting for any, so that no sentinel tries a peer that does not
            // listen yet (a failed link is retried only after a second).
            let mut log_starts = Vec::with_capacity(count);
            for i in 0..count {
                let text = self.sentinel_text(&pending[i], ports[i], &peers, i);
                log_starts.push(self.write_and_spawn(&mut pending[i], &text)?);
            }
            for i in 0..count {
                let addr = SocketAddr::from((LOOPBACK, ports[i]));
                let (auth, timeout) = (&self.options.sentinel_auth, self.options.start_timeout);
                match pending[i].process.wait_ready(
                    addr,
                    auth,
                    self.tls.as_ref(),
                    timeout,
                    log_starts[i],
                ) {
                    Ok(()) => {}
                    Err(StartError::PortInUse) => {
                        pending.iter_mut().for_each(|p| p.process.kill());
                        continue 'attempt;
                    }
                    Err(StartError::Failed(error)) => return Err(error),
                }
            }
            return Ok(pending
                .into_iter()
                .zip(ports)
                .map(|(p, port)| p.into_member(port))
                .collect());
        }
        Err(pending.first().map_or_else(
            || HarnessError::InvalidOptions("no sentinels".into()),
            ports_exhausted,
        ))
    }

    fn sentinel_text(&self, pending: &Pending, port: u16, peers: &[Peer], me: usize) -> String {
        let monitored: Vec<MonitoredService<'_>> = self
            .services
            .iter()
            .map(|service| MonitoredService {
                name: &service.name,
                master: self.announced_addr(service.nodes[0]),
                replicas: service.nodes.len() - 1,
            })
            .collect();
        sentinel_config(&SentinelConfig {
            listen: self.listen(pending, port),
            auth: &self.options.sentinel_auth,
            data_auth: &self.options.data_auth,
            services: &monitored,
            quorum: self.options.effective_quorum(),
            down_after: self.options.down_after,
            failover_timeout: self.options.failover_timeout,
            id: &peers[me].id,
            peers: &peers
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != me)
                .map(|(_, p)| p.clone())
                .collect::<Vec<_>>(),
        })
    }

    /// Where a prepared process listens on `port`: its directory, NAT announcement and TLS.
    fn listen(&self, pending: &Pending, port: u16) -> Listen<'_> {
        Listen {
            port,
            dir: self.dir.join(&pending.name),
            announce: pending.proxy.as_ref().map(NatProxy::announced),
            tls: self.tls.as_ref(),
        }
    }

    /// Creates the directory and, in NAT mode, the proxy of a process.
    fn prepare(&self, id: ProcessId, service: Option<&str>) -> Result<Pending> {
        let name = id.to_string();
        let dir: PathBuf = self.dir.join(&name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| HarnessError::io(format!("creating {}", dir.display()), e))?;
        let sentinel = matches!(id, ProcessId::Sentinel(_));
        let auth = if sentinel {
            self.options.sentinel_auth.clone()
        } else {
            self.options.data_auth.clone()
        };
        let proxy = if self.options.nat {
            Some(NatProxy::bind()?)
        } else {
            None
        };
        let process = RedisProcess::new(
            name.clone(),
            self.binary.path().to_path_buf(),
            &dir,
            sentinel,
            self.options.own_process_groups,
        );
        Ok(Pending {
            name,
            service: service.map(str::to_owned),
            auth,
            proxy,
            process,
        })
    }

    /// Writes the config and starts the process on `port`.
    fn try_start(&self, pending: &mut Pending, port: u16, config: &str) -> Result<(), StartError> {
        let log_start = self.write_and_spawn(pending, config)?;
        pending.process.wait_ready(
            SocketAddr::from((LOOPBACK, port)),
            &pending.auth,
            self.tls.as_ref(),
            self.options.start_timeout,
            log_start,
        )
    }

    /// Writes the config and spawns the process.
    fn write_and_spawn(&self, pending: &mut Pending, config: &str) -> Result<u64> {
        let conf = pending.process.conf().to_path_buf();
        std::fs::write(&conf, config)
            .map_err(|e| HarnessError::io(format!("writing {}", conf.display()), e))?;
        pending.process.spawn()
    }
}

fn ports_exhausted(pending: &Pending) -> HarnessError {
    HarnessError::StartFailed {
        process: pending.name.clone(),
        detail: format!("{PORT_ATTEMPTS} ports in a row were taken by other programs"),
        log: pending.process.log().to_path_buf(),
    }
}

/// A random 40-hex-digit sentinel id.
fn random_id() -> String {
    (0..40)
        .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
        .collect()
}
