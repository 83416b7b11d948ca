//! Looking at a deployment: roles, what the sentinels report, and waiting for conditions.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::error::{HarnessError, Result};
use super::handle::Deployment;
use super::ids::{NodeId, ProcessId, SentinelId};
use super::role::Role;
use crate::wait::poll;

/// The key written (and deleted) at start-up to see every replica acknowledge a write.
const SYNC_MARKER: &str = "dramatiq-sentinel-harness:synced";

/// A `SENTINEL MASTER/REPLICAS/SENTINELS` entry.
type Fields = HashMap<String, String>;

impl Deployment {
    /// The `ROLE` of a data node or sentinel.
    pub fn role(&self, id: impl Into<ProcessId>) -> Result<Role> {
        let id = id.into();
        self.check_answering(id)?;
        let endpoint = self.endpoint(id);
        let value: redis::Value = endpoint.query(&redis::cmd("ROLE"))?;
        Role::parse(&value).map_err(|detail| endpoint.unexpected("ROLE", detail))
    }

    /// The `ROLE` of every data node of the first service (an error for stopped or frozen ones).
    pub fn roles(&self) -> Vec<(NodeId, Result<Role>)> {
        self.nodes()
            .into_iter()
            .map(|node| (node, self.role(node)))
            .collect()
    }

    /// The master one sentinel reports for `service` (`SENTINEL GET-MASTER-ADDR-BY-NAME`), as
    /// announced (see [`Deployment::node_at`]); `None` if it does not know the service.
    pub fn reported_master(
        &self,
        sentinel: SentinelId,
        service: &str,
    ) -> Result<Option<SocketAddr>> {
        self.check_answering(sentinel.into())?;
        let endpoint = self.endpoint(sentinel);
        let reply: Option<(String, u16)> = endpoint.query(
            redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(service),
        )?;
        reply
            .map(|(ip, port)| {
                ip.parse()
                    .map(|ip| SocketAddr::new(ip, port))
                    .map_err(|_| endpoint.unexpected("SENTINEL GET-MASTER-ADDR-BY-NAME", ip))
            })
            .transpose()
    }

    /// The master each sentinel reports for `service` (stopped and frozen sentinels give an
    /// error without being asked).
    pub fn reported_masters(&self, service: &str) -> Vec<(SentinelId, Result<Option<SocketAddr>>)> {
        self.sentinels()
            .into_iter()
            .map(|sentinel| (sentinel, self.reported_master(sentinel, service)))
            .collect()
    }

    /// The master of the first service all running sentinels agree on.
    pub fn master(&self) -> Result<NodeId> {
        self.master_of(self.service_name())
    }

    /// The master of `service` all running (not frozen) sentinels agree on.
    pub fn master_of(&self, service: &str) -> Result<NodeId> {
        let addr = self
            .agreement(service)
            .map_err(|detail| HarnessError::NoAgreement {
                service: service.to_owned(),
                detail,
            })?;
        self.node_at(addr)
            .ok_or_else(|| HarnessError::UnknownAddress(addr.to_string()))
    }

    /// Waits until all running sentinels agree on a master of `service` that says `ROLE` master.
    pub fn wait_for_master(&self, service: &str, timeout: Duration) -> Result<NodeId> {
        self.wait_master_where(service, timeout, |_| true, "an agreed master")
    }

    /// Waits until all running sentinels agree on a master other than `old` (of `old`'s service)
    /// that says `ROLE` master: the end of a failover as a client sees it. A second failover in
    /// between (see [`DeploymentOptions::down_after`](super::DeploymentOptions::down_after)) is
    /// fine; the result is whichever node is master at the end.
    pub fn wait_for_new_master(&self, old: NodeId, timeout: Duration) -> Result<NodeId> {
        let service = self.node_service(old).to_owned();
        self.wait_master_where(
            &service,
            timeout,
            |node| node != old,
            &format!("a master other than {old}"),
        )
    }

    fn wait_master_where(
        &self,
        service: &str,
        timeout: Duration,
        accept: impl Fn(NodeId) -> bool,
        what: &str,
    ) -> Result<NodeId> {
        let start = Instant::now();
        poll(timeout, || {
            let addr = self.agreement(service)?;
            let node = self
                .node_at(addr)
                .ok_or_else(|| format!("sentinels agree on unknown address {addr}"))?;
            if !accept(node) {
                return Err(format!("sentinels still agree on {node} ({addr})"));
            }
            match self.role(node) {
                Ok(role) if role.is_master() => Ok(node),
                Ok(role) => Err(format!("sentinels agree on {node}, whose ROLE is {role:?}")),
                Err(e) => Err(format!("sentinels agree on {node}, ROLE failed: {e}")),
            }
        })
        .map_err(|detail| self.timeout(&format!("{what} of {service}"), start, detail, service))
    }

    /// Waits until the deployment is healthy again: for every service, all running sentinels
    /// agree on a master that says `ROLE` master, every other running data node is a replica
    /// linked to it, every sentinel lists those replicas as replicas and the master as master
    /// without `s_down` or `disconnected` flags, and
    /// every sentinel knows the other running sentinels and does not consider them down (a link
    /// to a sentinel that started a moment ago may still be reconnecting, which Sentinel retries
    /// every second). Frozen processes are left out.
    pub fn wait_healthy(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        for service in &self.services {
            poll(timeout.saturating_sub(start.elapsed()), || {
                self.check_healthy(&service.name)
            })
            .map_err(|detail| self.timeout("a healthy deployment", start, detail, &service.name))?;
        }
        Ok(())
    }

    /// Waits until every replica is linked to its service's initial master (start-up).
    pub(crate) fn wait_replication(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        for service in &self.services {
            let master = self.announced_addr(service.nodes[0]);
            poll(timeout.saturating_sub(start.elapsed()), || {
                for &node in &service.nodes[1..] {
                    match self.role(node) {
                        Ok(role) if role.is_linked_replica_of(master) => {}
                        Ok(role) => return Err(format!("{node} has ROLE {role:?}")),
                        Err(e) => return Err(e.to_string()),
                    }
                }
                Ok(())
            })
            .map_err(|detail| self.timeout("replicas to link", start, detail, &service.name))?;
            // Linked is not yet streaming: after a diskless sync the master sends its write
            // stream to a replica only after that replica's first acknowledgement, up to a
            // second later, and Sentinel may promote a replica that has nothing yet. Wait until
            // every replica acknowledged a write (the marker key is deleted again after).
            let replicas = service.nodes.len() - 1;
            if replicas > 0 {
                let master = service.nodes[0];
                poll(timeout.saturating_sub(start.elapsed()), || {
                    let err = |e: HarnessError| e.to_string();
                    let () = self
                        .query(master, redis::cmd("SET").arg(SYNC_MARKER).arg(1))
                        .map_err(err)?;
                    let acked: usize = self
                        .query(master, redis::cmd("WAIT").arg(replicas).arg(200))
                        .map_err(err)?;
                    if acked < replicas {
                        return Err(format!(
                            "{acked} of {replicas} replicas acknowledged a write"
                        ));
                    }
                    let _: i64 = self
                        .query(master, redis::cmd("DEL").arg(SYNC_MARKER))
                        .map_err(err)?;
                    Ok(())
                })
                .map_err(|detail| {
                    self.timeout("replicas to stream", start, detail, &service.name)
                })?;
                // `WAIT` answering is not enough: a replica was seen still at offset 0 when
                // Sentinel promoted it right after start-up (none of these writes on the new
                // master). Ask each replica how far it got.
                let left = timeout.saturating_sub(start.elapsed());
                self.wait_caught_up(master, &service.nodes[1..], left)
                    .map_err(|e| self.timeout("replicas to catch up", start, e, &service.name))?;
            }
        }
        Ok(())
    }

    /// Waits until every replica of the first service has processed `master`'s replication
    /// stream up to where it is now (each replica's own `ROLE` offset), so that whichever one
    /// Sentinel promotes has every write made so far.
    pub fn wait_replicas_caught_up(&self, master: NodeId, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let replicas: Vec<NodeId> = self
            .service_nodes(self.service_name())
            .into_iter()
            .filter(|n| *n != master)
            .collect();
        self.wait_caught_up(master, &replicas, timeout)
            .map_err(|e| self.timeout("replicas to catch up", start, e, self.service_name()))
    }

    /// Polls `replicas` until each one's offset reached `master`'s offset now.
    fn wait_caught_up(
        &self,
        master: NodeId,
        replicas: &[NodeId],
        timeout: Duration,
    ) -> Result<(), String> {
        let target = self.repl_offset(master).map_err(|e| e.to_string())?;
        poll(timeout, || {
            for &node in replicas {
                let offset = self.repl_offset(node).map_err(|e| e.to_string())?;
                if offset < target {
                    return Err(format!("{node} at offset {offset}, master at {target}"));
                }
            }
            Ok(())
        })
    }

    /// How far a data node's replication stream went: a master's offset, or the offset a
    /// replica processed (both from `ROLE`).
    fn repl_offset(&self, node: NodeId) -> Result<i64> {
        let reply: redis::Value = self.query(node, &redis::cmd("ROLE"))?;
        let redis::Value::Array(items) = &reply else {
            return Err(self.endpoint(node).unexpected("ROLE", format!("{reply:?}")));
        };
        let at = match items.first().and_then(super::role::text).as_deref() {
            Some("master") => 1,
            Some("slave") => 4,
            _ => usize::MAX,
        };
        items
            .get(at)
            .and_then(super::role::text)
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| self.endpoint(node).unexpected("ROLE", format!("{reply:?}")))
    }

    fn check_healthy(&self, service: &str) -> Result<(), String> {
        let master_addr = self.agreement(service)?;
        let master = self
            .node_at(master_addr)
            .ok_or_else(|| format!("sentinels agree on unknown address {master_addr}"))?;
        let role = self.role(master).map_err(|e| e.to_string())?;
        if !role.is_master() {
            return Err(format!("agreed master {master} has ROLE {role:?}"));
        }
        let replicas: Vec<NodeId> = self
            .service_nodes(service)
            .into_iter()
            .filter(|&n| n != master && self.answers(n.into()))
            .collect();
        for &replica in &replicas {
            let role = self.role(replica).map_err(|e| e.to_string())?;
            if !role.is_linked_replica_of(master_addr) {
                return Err(format!("{replica} has ROLE {role:?}"));
            }
        }
        let sentinels: Vec<SentinelId> = self
            .sentinels()
            .into_iter()
            .filter(|&s| self.answers(s.into()))
            .collect();
        for &sentinel in &sentinels {
            let view: Fields = self.sentinel_query(sentinel, "MASTER", service)?;
            let flags = view.get("flags").map_or("?", String::as_str);
            if flags != "master" {
                return Err(format!("{sentinel} sees {master} with flags {flags}"));
            }
            let seen: Vec<Fields> = self.sentinel_query(sentinel, "REPLICAS", service)?;
            for &replica in &replicas {
                let addr = self.announced_addr(replica);
                let entry = seen.iter().find(|e| entry_addr(e) == Some(addr));
                // Not `master-link-status`: Sentinel refreshes it from the replica's INFO only
                // every ten seconds; the replica's own ROLE (checked above) is current.
                let healthy = entry.is_some_and(|e| e.get("flags").is_some_and(|f| f == "slave"));
                if !healthy {
                    return Err(format!("{sentinel} sees replica {replica} as {entry:?}"));
                }
            }
            // Links to a sentinel that started a moment later are retried once a second; a
            // known peer that is not (subjectively) down is good enough.
            let peers: Vec<Fields> = self.sentinel_query(sentinel, "SENTINELS", service)?;
            let known = peers
                .iter()
                .filter(|e| e.get("flags").is_some_and(|f| !f.contains("_down")))
                .count();
            if known + 1 < sentinels.len() {
                return Err(format!(
                    "{sentinel} knows {known} other sentinels that are not down, {} are running",
                    sentinels.len() - 1
                ));
            }
        }
        Ok(())
    }

    fn sentinel_query<T: redis::FromRedisValue>(
        &self,
        sentinel: SentinelId,
        subcommand: &str,
        service: &str,
    ) -> Result<T, String> {
        self.query(
            sentinel,
            redis::cmd("SENTINEL").arg(subcommand).arg(service),
        )
        .map_err(|e| e.to_string())
    }

    /// The address every running, unfrozen sentinel reports, or a description of the reports.
    fn agreement(&self, service: &str) -> Result<SocketAddr, String> {
        let mut agreed: Option<SocketAddr> = None;
        let mut unanimous = true;
        let mut asked = 0;
        let mut detail = String::new();
        for (sentinel, report) in self.reported_masters(service) {
            match &report {
                Err(HarnessError::NotRunning(_) | HarnessError::Frozen(_)) => {
                    let _ = write!(detail, "{sentinel}: not running or frozen; ");
                    continue;
                }
                Ok(Some(addr)) => {
                    let node = self
                        .node_at(*addr)
                        .map_or("?".to_owned(), |n| n.to_string());
                    let _ = write!(detail, "{sentinel}: {addr} ({node}); ");
                    unanimous &= agreed.is_none_or(|a| a == *addr);
                    agreed = Some(*addr);
                }
                Ok(None) => {
                    let _ = write!(detail, "{sentinel}: does not know {service}; ");
                    unanimous = false;
                }
                Err(e) => {
                    let _ = write!(detail, "{sentinel}: {e}; ");
                    unanimous = false;
                }
            }
            asked += 1;
        }
        match agreed {
            Some(addr) if unanimous && asked > 0 => Ok(addr),
            _ if asked == 0 => Err("no sentinel is running".to_owned()),
            _ => Err(detail.trim_end_matches("; ").to_owned()),
        }
    }

    /// Everything the sentinels report and every data node's role, for error messages.
    pub(crate) fn describe(&self, service: &str) -> String {
        let mut out = String::new();
        for (sentinel, report) in self.reported_masters(service) {
            match report {
                Ok(Some(addr)) => {
                    let node = self.node_at(addr).map_or("?".to_owned(), |n| n.to_string());
                    let _ = write!(out, "{sentinel} reports {addr} ({node}); ");
                }
                Ok(None) => {
                    let _ = write!(out, "{sentinel} does not know {service}; ");
                }
                Err(e) => {
                    let _ = write!(out, "{sentinel}: {e}; ");
                }
            }
        }
        for node in self.service_nodes(service) {
            match self.role(node) {
                Ok(role) => {
                    let _ = write!(
                        out,
                        "{node} ({}) ROLE {role:?}; ",
                        self.announced_addr(node)
                    );
                }
                Err(e) => {
                    let _ = write!(out, "{node}: {e}; ");
                }
            }
        }
        out.trim_end_matches("; ").to_owned()
    }

    fn timeout(&self, what: &str, start: Instant, detail: String, service: &str) -> HarnessError {
        HarnessError::Timeout {
            what: what.to_owned(),
            waited: start.elapsed(),
            detail: format!("{detail}. Now: {}", self.describe(service)),
            logs: self.dir.clone(),
        }
    }

    /// Fails fast for stopped or frozen processes instead of waiting for a timeout.
    pub(crate) fn check_answering(&self, id: ProcessId) -> Result<()> {
        let member = self.member(id);
        let mut process = member.process();
        if !process.is_running() {
            return Err(HarnessError::NotRunning(member.name.clone()));
        }
        if process.is_frozen() {
            return Err(HarnessError::Frozen(member.name.clone()));
        }
        Ok(())
    }

    fn answers(&self, id: ProcessId) -> bool {
        self.check_answering(id).is_ok()
    }
}

/// The `ip`/`port` of a `SENTINEL REPLICAS` entry.
fn entry_addr(entry: &Fields) -> Option<SocketAddr> {
    let ip = entry.get("ip")?.parse().ok()?;
    let port = entry.get("port")?.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}
