//! The status query: master, replicas and sentinels with their flags, and the quorum, as the
//! first sentinel that answers sees them, NAT-mapped. [`read_status`] and
//! [`subscribe_sentinel`] give operator tools the same view without a supervisor.

use crate::config::Config;
use crate::drive::shared::{Input, Shared};
use crate::net::cache::ConnCache;
use crate::net::connect::Endpoint;
use crate::runtime::Runtime;
use dramatiq_sentinel_core::{Addr, LISTENER_PATTERN, NatMap, Reply, SentinelEntry, flags_healthy};
use std::collections::BTreeMap;

/// A data node or a sentinel as a sentinel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStatus {
    /// Where this process reaches it (the announced address after the NAT map).
    pub addr: Addr,
    /// The address the sentinel reported.
    pub announced: Addr,
    /// Its flags (`master`, `slave`, `sentinel`, `s_down`, `o_down`, `disconnected`, ...).
    pub flags: Vec<String>,
    /// Every field of the sentinel's reply (`role-reported`, `master-link-status`,
    /// `last-ok-ping-reply`, ...), as text.
    pub fields: BTreeMap<String, String>,
}

impl NodeStatus {
    /// No `s_down`, `o_down` or `disconnected` flag.
    pub fn is_healthy(&self) -> bool {
        flags_healthy(&self.flags)
    }
}

/// The answer to `SENTINEL CKQUORUM`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Quorum {
    /// Whether enough sentinels are reachable to authorise a failover.
    pub reachable: bool,
    /// The sentinel's message (`OK 3 usable Sentinels...` or `NOQUORUM ...`).
    pub message: String,
}

/// A snapshot of the deployment, from one sentinel, and of the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// The service name.
    pub service: String,
    /// The master the application's connection uses.
    pub in_use: Option<Addr>,
    /// Whether work is fenced (a failover is in progress).
    pub fenced: bool,
    /// The sentinel that answered.
    pub source: Addr,
    /// The master (`SENTINEL MASTER`).
    pub master: NodeStatus,
    /// The replicas (`SENTINEL REPLICAS`).
    pub replicas: Vec<NodeStatus>,
    /// The other sentinels (`SENTINEL SENTINELS`).
    pub sentinels: Vec<NodeStatus>,
    /// The quorum (`SENTINEL CKQUORUM`).
    pub quorum: Quorum,
    /// Sentinels asked before `source` that did not answer, with why.
    pub unreachable: Vec<(Addr, String)>,
}

/// Why the status could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// The supervisor has stopped.
    #[error("the supervisor has stopped")]
    Stopped,
    /// No sentinel answered every status query (each failure is listed).
    #[error("no sentinel answered the status queries: {}", Addr::join_failures(.failures))]
    NoSentinel {
        /// Each sentinel asked, with why it failed.
        failures: Vec<(Addr, String)>,
    },
}

/// One entry, read by the core's parser and NAT-mapped.
fn node(r: &Reply, nat: &NatMap) -> Result<NodeStatus, String> {
    let SentinelEntry {
        announced,
        flags,
        fields,
        ..
    } = SentinelEntry::parse(r)?;
    Ok(NodeStatus {
        addr: nat.map(&announced),
        announced,
        flags,
        fields,
    })
}

fn nodes(r: &Reply, nat: &NatMap) -> Result<Vec<NodeStatus>, String> {
    match r {
        Reply::Array(items) => items.iter().map(|i| node(i, nat)).collect(),
        Reply::Error(e) => Err(e.clone()),
        other => Err(format!("unexpected reply {other:?}")),
    }
}

/// Asks one sentinel every status query, through `sentinels` (connections to sentinels).
async fn ask(
    rt: &dyn Runtime,
    sentinels: &ConnCache,
    cfg: &Config,
    sentinel: &Addr,
) -> Result<Status, String> {
    let service = cfg.service_name().to_owned();
    let nat = cfg.nat();
    let limit = cfg.query_timeout();
    let query = |sub: &'static str| {
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg(sub).arg(&service);
        async move {
            sentinels
                .query(rt, sentinel, &cmd, limit)
                .await
                .map_err(|e| format!("SENTINEL {sub}: {e}"))
        }
    };
    let master = query("MASTER").await?;
    if let Reply::Error(e) = &master {
        return Err(format!("SENTINEL MASTER: {e}"));
    }
    let master = node(&master, nat).map_err(|e| format!("SENTINEL MASTER: {e}"))?;
    let replicas =
        nodes(&query("REPLICAS").await?, nat).map_err(|e| format!("SENTINEL REPLICAS: {e}"))?;
    let sentinels =
        nodes(&query("SENTINELS").await?, nat).map_err(|e| format!("SENTINEL SENTINELS: {e}"))?;
    let quorum = match query("CKQUORUM").await? {
        Reply::Error(message) => Quorum {
            reachable: false,
            message,
        },
        other => Quorum {
            reachable: true,
            message: other.text().map(|t| t.into_owned()).unwrap_or_default(),
        },
    };
    Ok(Status {
        service,
        in_use: None,
        fenced: false,
        source: sentinel.clone(),
        master,
        replicas,
        sentinels,
        quorum,
        unreachable: Vec::new(),
    })
}

/// Reads the status from the first sentinel (in the supervisor's table order) that answers.
pub(crate) async fn query(shared: &Shared) -> Result<Status, StatusError> {
    let (tx, rx) = async_channel::bounded(1);
    shared
        .inbox
        .send(Input::Snapshot(tx))
        .await
        .map_err(|_| StatusError::Stopped)?;
    let snapshot = rx.recv().await.map_err(|_| StatusError::Stopped)?;
    let mut failures = Vec::new();
    for sentinel in &snapshot.sentinels {
        match ask(&*shared.rt, &shared.sentinels, &shared.cfg, sentinel).await {
            Ok(status) => {
                return Ok(Status {
                    in_use: snapshot.master,
                    fenced: snapshot.fenced,
                    unreachable: failures,
                    ..status
                });
            }
            Err(e) => failures.push((sentinel.clone(), e)),
        }
    }
    Err(StatusError::NoSentinel { failures })
}

/// Reads the status without starting a supervisor, for operator tools: the sentinels of
/// `config` are asked in order (with its sentinel credentials, TLS settings, `query_timeout`
/// and NAT map) and the first that answers every query gives the [`Status`]; those asked
/// before it are listed in [`Status::unreachable`]. No data node is contacted, so
/// [`Status::in_use`] is `None` and [`Status::fenced`] is `false`. The connections are closed
/// when it returns.
///
/// Errors with [`StatusError::NoSentinel`] (each sentinel and why) when none answered, a
/// sentinel that does not monitor the service included (`SENTINEL MASTER: ERR No such master
/// with that name`).
pub async fn read_status(runtime: &dyn Runtime, config: &Config) -> Result<Status, StatusError> {
    let sentinels = ConnCache::new(Endpoint::of(config, config.sentinel_auth(), 0));
    let mut failures = Vec::new();
    for sentinel in config.sentinels() {
        match ask(runtime, &sentinels, config, sentinel).await {
            Ok(status) => {
                return Ok(Status {
                    unreachable: failures,
                    ..status
                });
            }
            Err(e) => failures.push((sentinel.clone(), e)),
        }
    }
    Err(StatusError::NoSentinel { failures })
}

/// Opens a pub/sub connection to `sentinel` (with the sentinel credentials, TLS settings and
/// `connect_timeout` of `config`) subscribed to every channel (`PSUBSCRIBE *`), as the
/// supervisor's listeners are, for operator tools that show a sentinel's events without
/// starting a supervisor. Decode the messages with
/// [`decode_message`](dramatiq_sentinel_core::decode_message). Errors with
/// [`StatusError::NoSentinel`] naming the sentinel and why.
pub async fn subscribe_sentinel(
    runtime: &dyn Runtime,
    config: &Config,
    sentinel: &Addr,
) -> Result<redis::aio::PubSub, StatusError> {
    Endpoint::of(config, config.sentinel_auth(), 0)
        .subscribe(runtime, sentinel, LISTENER_PATTERN)
        .await
        .map_err(|e| StatusError::NoSentinel {
            failures: vec![(sentinel.clone(), e.into())],
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(s: &str) -> Reply {
        Reply::Data(s.as_bytes().to_vec())
    }

    #[test]
    fn parses_flat_entries_and_maps_addresses() {
        let entry = Reply::Array(
            [
                "name",
                "m",
                "ip",
                "10.0.0.1",
                "port",
                "6379",
                "flags",
                "master,s_down",
            ]
            .into_iter()
            .map(data)
            .collect(),
        );
        let mut nat = NatMap::new();
        nat.insert(Addr::new("10.0.0.1", 6379), Addr::new("127.0.0.1", 7000));
        let n = node(&entry, &nat).expect("valid");
        assert_eq!(n.addr, Addr::new("127.0.0.1", 7000));
        assert_eq!(n.announced, Addr::new("10.0.0.1", 6379));
        assert_eq!(n.flags, ["master", "s_down"]);
        assert!(!n.is_healthy());
        assert_eq!(n.fields.get("name").map(String::as_str), Some("m"));
        assert!(node(&Reply::Array(vec![data("ip")]), &nat).is_err());
    }
}
