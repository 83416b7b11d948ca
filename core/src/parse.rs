//! Parsers for what sentinels and data nodes send: pub/sub messages, `SENTINEL MASTER`,
//! `SENTINEL SENTINELS` and `ROLE` replies. Every parser is total: bad input is an `Err`
//! describing the problem, never a panic.

use crate::addr::{Addr, NatMap};
use crate::entry::{SentinelEntry, flags_healthy};
use crate::reply::Reply;
use std::fmt;

impl SentinelMessage {
    /// The service (master name) the message is about; `None` for epoch messages, which
    /// concern every service of the sentinel, and for unused ones.
    pub(crate) fn service(&self) -> Option<&str> {
        match self {
            SentinelMessage::SwitchMaster { service, .. }
            | SentinelMessage::Failover { service, .. }
            | SentinelMessage::Replicas { service, .. } => Some(service),
            SentinelMessage::Epoch { .. } | SentinelMessage::Unused => None,
        }
    }

    /// Applies the NAT map to every address in the message.
    pub(crate) fn nat(self, nat: &NatMap) -> Self {
        match self {
            SentinelMessage::SwitchMaster { service, old, new } => SentinelMessage::SwitchMaster {
                service,
                old: nat.map(&old),
                new: nat.map(&new),
            },
            SentinelMessage::Failover {
                signal,
                channel,
                service,
                master,
                replica,
            } => SentinelMessage::Failover {
                signal,
                channel,
                service,
                master: nat.map(&master),
                replica: replica.map(|r| nat.map(&r)),
            },
            SentinelMessage::Replicas {
                channel,
                service,
                master,
                replica,
            } => SentinelMessage::Replicas {
                channel,
                service,
                master: nat.map(&master),
                replica: nat.map(&replica),
            },
            other @ (SentinelMessage::Epoch { .. } | SentinelMessage::Unused) => other,
        }
    }
}

/// Why a message or reply could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) String);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn malformed(what: impl Into<String>) -> Malformed {
    Malformed(what.into())
}

fn classify(channel: &str) -> Option<FailoverSignal> {
    match channel {
        "+selected-slave"
        | "+failover-state-send-slaveof-noone"
        | "+failover-state-wait-promotion"
        | "+promoted-slave" => Some(FailoverSignal::Candidate),
        "+odown" | "+try-failover" | "+elected-leader" => Some(FailoverSignal::Failover),
        c if c.starts_with("+failover-state-") => Some(FailoverSignal::Failover),
        "-odown" | "+failover-end-for-timeout" => Some(FailoverSignal::Abort),
        c if c.starts_with("-failover-abort") => Some(FailoverSignal::Abort),
        _ => None,
    }
}

/// The channels that announce a change of a master's replicas.
fn replicas_changed(channel: &str) -> bool {
    matches!(
        channel,
        "+slave" | "+convert-to-slave" | "+fix-slave-config" | "+slave-reconf-done"
    )
}

/// Parses a sentinel pub/sub message. `Ok(None)` for channels the failover logic does not use
/// (`+sdown`, hello messages, ...).
pub(crate) fn parse_message(
    channel: &[u8],
    payload: &[u8],
) -> Result<Option<SentinelMessage>, Malformed> {
    let channel = std::str::from_utf8(channel).map_err(|_| malformed("channel is not UTF-8"))?;
    let epoch_channel = matches!(channel, "+new-epoch" | "+vote-for-leader");
    let replicas = replicas_changed(channel);
    if channel != "+switch-master" && !epoch_channel && !replicas && classify(channel).is_none() {
        return Ok(None);
    }
    let payload = std::str::from_utf8(payload).map_err(|_| malformed("payload is not UTF-8"))?;
    let tokens: Vec<&str> = payload.split(' ').filter(|t| !t.is_empty()).collect();
    if epoch_channel {
        // `+new-epoch <epoch>`, `+vote-for-leader <leader-runid> <epoch>`.
        return match tokens.last().map(|t| t.parse::<u64>()) {
            Some(Ok(epoch)) => Ok(Some(SentinelMessage::Epoch { epoch })),
            _ => Err(malformed(format!("{channel} payload has no epoch"))),
        };
    }
    if channel == "+switch-master" {
        return parse_switch_master(&tokens).map(Some);
    }
    let (service, master, replica) = parse_instance_payload(channel, &tokens)?;
    if replicas {
        let replica = replica.ok_or_else(|| malformed(format!("{channel} names no replica")))?;
        return Ok(Some(SentinelMessage::Replicas {
            channel: channel.to_owned(),
            service,
            master,
            replica,
        }));
    }
    let signal = classify(channel).ok_or_else(|| malformed("unreachable channel"))?;
    Ok(Some(SentinelMessage::Failover {
        signal,
        channel: channel.to_owned(),
        service,
        master,
        replica,
    }))
}

/// Whether a sentinel pub/sub message may matter to a core that watches `service`: `false` for
/// channels the core never acts on (`+sdown`, hello messages, ...) and for messages about
/// another service; `true` for the rest, malformed ones included (the core reports them).
///
/// A runtime may drop the messages this rejects before they reach its queue to the core (a
/// sentinel busy with many services publishes a lot): the core's decisions are the same,
/// only the [`crate::Event::MessageIgnored`] events for other services are not emitted, and
/// listener health checks `PING` after `health_check_interval` of relevant silence.
pub fn message_concerns(service: &str, channel: &[u8], payload: &[u8]) -> bool {
    match parse_message(channel, payload) {
        Ok(Some(message)) => message.service().is_none_or(|s| s == service),
        Ok(None) => false,
        Err(_) => true,
    }
}

/// What a sentinel pub/sub message says, as the core reads it ([`decode_message`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SentinelMessage {
    /// `+switch-master <name> <old-ip> <old-port> <new-ip> <new-port>`: the sentinels replaced
    /// the master of `service`.
    SwitchMaster {
        /// The master name.
        service: String,
        /// The master before.
        old: Addr,
        /// The master after.
        new: Addr,
    },
    /// `+new-epoch <epoch>` or `+vote-for-leader <runid> <epoch>`: the sentinel's current
    /// epoch, shared by every service it monitors.
    Epoch {
        /// The epoch.
        epoch: u64,
    },
    /// A failover-related event about a master or one of its replicas: `+odown`,
    /// `+try-failover`, `+elected-leader`, `+failover-state-*`, `+selected-slave`,
    /// `+promoted-slave`, `-odown`, `-failover-abort-*`, `+failover-end-for-timeout`.
    Failover {
        /// What the event means for the failover logic.
        signal: FailoverSignal,
        /// The channel, e.g. `+try-failover`.
        channel: String,
        /// The master name.
        service: String,
        /// The master the event is about.
        master: Addr,
        /// The replica the event names, for replica-type payloads.
        replica: Option<Addr>,
    },
    /// The replicas of a master changed (`+slave`, `+convert-to-slave`, `+fix-slave-config`,
    /// `+slave-reconf-done`): the core asks the sentinels for the replicas again, to watch
    /// them.
    Replicas {
        /// The channel, e.g. `+slave`.
        channel: String,
        /// The master name.
        service: String,
        /// The master whose replicas changed.
        master: Addr,
        /// The replica the event names.
        replica: Addr,
    },
    /// A channel the core does not act on (`+sdown`, `+reboot`, `+tilt`, ...).
    Unused,
}

/// What a failover-related sentinel event means for the core ([`SentinelMessage::Failover`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailoverSignal {
    /// A failover of the master is under way: with `early_fencing` the core fences at once.
    Failover,
    /// A failover is under way and the event names the replica being promoted: the core
    /// watches it and switches once its `ROLE` says master.
    Candidate,
    /// The failover stopped without a promotion, or the master is back: the core lifts its
    /// fence if the master did not change.
    Abort,
}

/// Decodes a sentinel pub/sub message (its channel and payload) with the parser the core
/// uses, for tools that show sentinel events (the addresses are as the sentinel announced
/// them, before any NAT map). `Err` describes why a message of a channel the core acts on
/// could not be read (the core reports such a message as ignored).
pub fn decode_message(channel: &[u8], payload: &[u8]) -> Result<SentinelMessage, String> {
    let message = parse_message(channel, payload).map_err(|e| e.0)?;
    Ok(message.unwrap_or(SentinelMessage::Unused))
}

fn addr(host: &str, port: &str) -> Result<Addr, Malformed> {
    Addr::from_tokens(host, port).map_err(|e| malformed(e.to_string()))
}

fn parse_switch_master(tokens: &[&str]) -> Result<SentinelMessage, Malformed> {
    if tokens.len() < 5 {
        return Err(malformed(format!(
            "+switch-master needs `<name> <old-ip> <old-port> <new-ip> <new-port>`, got {} tokens",
            tokens.len()
        )));
    }
    let n = tokens.len();
    Ok(SentinelMessage::SwitchMaster {
        service: tokens[..n - 4].join(" "),
        old: addr(tokens[n - 4], tokens[n - 3])?,
        new: addr(tokens[n - 2], tokens[n - 1])?,
    })
}

/// Parses Sentinel's `%@` instance format into the service, its master and the replica it
/// names: `master <name> <ip> <port> [extra..]` or
/// `<type> <name> <ip> <port> @ <master-name> <master-ip> <master-port>`.
fn parse_instance_payload(
    channel: &str,
    tokens: &[&str],
) -> Result<(String, Addr, Option<Addr>), Malformed> {
    let kind = tokens.first().copied().unwrap_or_default();
    match kind {
        "master" if tokens.len() >= 4 => {
            Ok((tokens[1].to_owned(), addr(tokens[2], tokens[3])?, None))
        }
        "slave" | "replica" if tokens.len() >= 8 && tokens[4] == "@" => Ok((
            tokens[5].to_owned(),
            addr(tokens[6], tokens[7])?,
            Some(addr(tokens[2], tokens[3])?),
        )),
        "sentinel" => Err(malformed(format!("{channel} about a sentinel"))),
        _ => Err(malformed(format!(
            "{channel} payload is not `master <name> <ip> <port>` nor `slave <name> <ip> <port> @ <master> <ip> <port>`"
        ))),
    }
}

/// A master as `SENTINEL MASTER <name>` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MasterInfo {
    pub(crate) addr: Addr,
    pub(crate) flags: Vec<String>,
    /// The configuration epoch of this master (`config-epoch`), if the reply has one.
    pub(crate) config_epoch: Option<u64>,
}

impl MasterInfo {
    /// The sentinel considers the master up: flags say `master` and neither `s_down` nor `o_down`.
    pub(crate) fn is_up(&self) -> bool {
        self.flags.iter().any(|f| f == "master") && flags_healthy(&self.flags)
    }
}

/// How a sentinel answered a master query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MasterAnswer {
    /// It knows the master.
    Known(MasterInfo),
    /// It does not monitor a master of that name.
    UnknownName,
    /// It answered with an error (for example `NOAUTH`).
    Error(String),
}

/// Parses the reply to `SENTINEL MASTER <name>`.
pub(crate) fn parse_master_reply(reply: &Reply) -> Result<MasterAnswer, Malformed> {
    match reply {
        Reply::Nil => Ok(MasterAnswer::UnknownName),
        Reply::Error(e) if e.contains("No such master") => Ok(MasterAnswer::UnknownName),
        Reply::Error(e) => Ok(MasterAnswer::Error(e.clone())),
        Reply::Array(_) | Reply::Map(_) => {
            let entry = SentinelEntry::parse(reply)
                .map_err(|e| malformed(format!("SENTINEL MASTER reply: {e}")))?;
            if !entry.fields.contains_key("flags") {
                return Err(malformed("SENTINEL MASTER reply: no `flags` field"));
            }
            let config_epoch = entry
                .fields
                .get("config-epoch")
                .and_then(|t| t.parse().ok());
            Ok(MasterAnswer::Known(MasterInfo {
                addr: entry.announced,
                flags: entry.flags,
                config_epoch,
            }))
        }
        other => Err(malformed(format!(
            "SENTINEL MASTER replied {}",
            describe(other)
        ))),
    }
}

/// Parses the reply to `SENTINEL SENTINELS <name>`: the other sentinels' addresses. Entries
/// that cannot be understood are skipped; a reply that is not a list is an error.
pub(crate) fn parse_sentinels_reply(reply: &Reply) -> Result<Vec<Addr>, Malformed> {
    match reply {
        Reply::Array(entries) => Ok(entries
            .iter()
            .filter_map(|e| SentinelEntry::parse(e).ok().map(|e| e.announced))
            .collect()),
        Reply::Error(e) => Err(malformed(format!("SENTINEL SENTINELS failed: {e}"))),
        other => Err(malformed(format!(
            "SENTINEL SENTINELS replied {}",
            describe(other)
        ))),
    }
}

/// A replica as `SENTINEL REPLICAS <name>` lists it (announced, before any NAT map).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplicaInfo {
    pub(crate) addr: Addr,
    /// Flagged down (`s_down` or `o_down`). A replica the sentinel lists as `disconnected` is
    /// not: right after a `+switch-master` every replica is, until the sentinel's links come
    /// up.
    pub(crate) down: bool,
}

/// Parses the reply to `SENTINEL REPLICAS <name>`. Entries that cannot be understood are
/// skipped; a reply that is not a list is an error.
pub(crate) fn parse_replicas_reply(reply: &Reply) -> Result<Vec<ReplicaInfo>, Malformed> {
    match reply {
        Reply::Array(entries) => Ok(entries
            .iter()
            .filter_map(|e| SentinelEntry::parse(e).ok())
            .map(|e| ReplicaInfo {
                down: e.flags.iter().any(|f| f == "s_down" || f == "o_down"),
                addr: e.announced,
            })
            .collect()),
        Reply::Error(e) => Err(malformed(format!("SENTINEL REPLICAS failed: {e}"))),
        other => Err(malformed(format!(
            "SENTINEL REPLICAS replied {}",
            describe(other)
        ))),
    }
}

/// The role of a data node, from its `ROLE` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// The node is a master and accepts writes.
    Master,
    /// The node is a replica of `master` (as it reports it).
    Replica {
        /// The master it replicates from, as the node reports it (not NAT-mapped).
        master: Option<Addr>,
    },
    /// The node is a sentinel, not a data node.
    Sentinel,
    /// The node answered with an error (for example `LOADING` or `NOAUTH`).
    Error(String),
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Master => f.write_str("master"),
            Role::Replica { master: Some(m) } => write!(f, "replica of {m}"),
            Role::Replica { master: None } => f.write_str("replica"),
            Role::Sentinel => f.write_str("sentinel"),
            Role::Error(e) => write!(f, "error: {e}"),
        }
    }
}

/// Parses a `ROLE` reply.
pub(crate) fn parse_role(reply: &Reply) -> Result<Role, Malformed> {
    match reply {
        Reply::Error(e) => Ok(Role::Error(e.clone())),
        Reply::Array(items) => match items.first().and_then(Reply::text).as_deref() {
            Some("master") => Ok(Role::Master),
            Some("slave") | Some("replica") => {
                let master = match (items.get(1).and_then(Reply::text), items.get(2)) {
                    (Some(h), Some(p)) => p.text().and_then(|p| Addr::from_tokens(&h, &p).ok()),
                    _ => None,
                };
                Ok(Role::Replica { master })
            }
            Some("sentinel") => Ok(Role::Sentinel),
            Some(other) => Err(malformed(format!("ROLE replied unknown role `{other}`"))),
            None => Err(malformed("ROLE replied an empty or non-text array")),
        },
        other => Err(malformed(format!("ROLE replied {}", describe(other)))),
    }
}

/// What `INFO replication` says of a node's replication history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replication {
    /// `master_replid2`: the history the node followed before its own (all zeros: none).
    pub(crate) replid2: String,
    /// `second_repl_offset`: the first byte of that history the node does not have (`-1`:
    /// none).
    pub(crate) second_offset: i64,
}

impl Replication {
    /// The history this node left when it was promoted, and the first byte of it the node
    /// lacks; `None` if it was not promoted from one.
    pub(crate) fn previous(&self) -> Option<(&str, u64)> {
        let from = u64::try_from(self.second_offset).ok().filter(|&o| o > 0)?;
        let known = !self.replid2.is_empty() && self.replid2.bytes().any(|b| b != b'0');
        known.then_some((self.replid2.as_str(), from))
    }
}

/// Parses an `INFO replication` reply (`key:value` lines); `None` if it has neither field.
pub(crate) fn parse_replication(reply: &Reply) -> Option<Replication> {
    let text = reply.text()?;
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.trim_end().strip_prefix(key)?.strip_prefix(':'))
    };
    Some(Replication {
        replid2: field("master_replid2")?.to_owned(),
        second_offset: field("second_repl_offset")?.parse().ok()?,
    })
}

/// Whether a server's error reply refuses us for good: authentication (`NOAUTH`,
/// `WRONGPASS`), permissions (`NOPERM`), or a command the server does not have (a data node
/// asked `SENTINEL ...`, a sentinel asked a data node's command).
pub(crate) fn is_rejection(error: &str) -> bool {
    let code = error.split_whitespace().next().unwrap_or_default();
    matches!(code, "NOAUTH" | "WRONGPASS" | "NOPERM")
        || error.starts_with("ERR unknown command")
        || error.starts_with("ERR unknown subcommand")
}

/// The replication offset in a master's `ROLE` reply (`master_repl_offset`); `None` for
/// other roles or when the reply has none.
pub(crate) fn master_offset(reply: &Reply) -> Option<u64> {
    let Reply::Array(items) = reply else {
        return None;
    };
    if items.first().and_then(Reply::text).as_deref() != Some("master") {
        return None;
    }
    match items.get(1)? {
        Reply::Int(n) => u64::try_from(*n).ok(),
        other => other.text()?.parse().ok(),
    }
}

fn describe(reply: &Reply) -> &'static str {
    match reply {
        Reply::Nil => "nil",
        Reply::Int(_) => "an integer",
        Reply::Data(_) => "a string",
        Reply::Status(_) => "a status",
        Reply::Error(_) => "an error",
        Reply::Array(_) => "an array",
        Reply::Map(_) => "a map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn data(s: &str) -> Reply {
        Reply::Data(s.as_bytes().to_vec())
    }

    #[test]
    fn decoded_messages_are_public() {
        assert_eq!(
            decode_message(b"+switch-master", b"svc 10.0.0.1 6379 10.0.0.2 6380"),
            Ok(SentinelMessage::SwitchMaster {
                service: "svc".into(),
                old: Addr::new("10.0.0.1", 6379),
                new: Addr::new("10.0.0.2", 6380),
            })
        );
        assert_eq!(
            decode_message(b"+new-epoch", b"7"),
            Ok(SentinelMessage::Epoch { epoch: 7 })
        );
        assert!(matches!(
            decode_message(b"+selected-slave", b"slave x 10.0.0.2 6380 @ svc 10.0.0.1 6379"),
            Ok(SentinelMessage::Failover { signal: FailoverSignal::Candidate, replica: Some(r), .. })
                if r == Addr::new("10.0.0.2", 6380)
        ));
        assert_eq!(
            decode_message(b"+sdown", b"master svc 10.0.0.1 6379"),
            Ok(SentinelMessage::Unused)
        );
        assert!(decode_message(b"+odown", b"nonsense").is_err());
    }

    #[test]
    fn switch_master() {
        let m = parse_message(b"+switch-master", b"svc 10.0.0.1 6379 10.0.0.2 6380")
            .expect("parses")
            .expect("relevant");
        assert_eq!(
            m,
            SentinelMessage::SwitchMaster {
                service: "svc".into(),
                old: Addr::new("10.0.0.1", 6379),
                new: Addr::new("10.0.0.2", 6380),
            }
        );
        assert!(parse_message(b"+switch-master", b"svc 1.1.1.1 6379 x").is_err());
        assert!(parse_message(b"+switch-master", b"svc 1.1.1.1 6379 2.2.2.2 0").is_err());
    }

    #[test]
    fn early_signals() {
        let m = parse_message(b"+odown", b"master svc 127.0.0.1 7000 #quorum 2/2")
            .expect("parses")
            .expect("relevant");
        assert!(
            matches!(m, SentinelMessage::Failover { signal: FailoverSignal::Failover, ref master, replica: None, .. } if *master == Addr::new("127.0.0.1", 7000))
        );
        let m = parse_message(
            b"+selected-slave",
            b"slave 127.0.0.1:7001 127.0.0.1 7001 @ svc 127.0.0.1 7000",
        )
        .expect("parses")
        .expect("relevant");
        assert!(
            matches!(m, SentinelMessage::Failover { signal: FailoverSignal::Candidate, replica: Some(ref r), .. } if *r == Addr::new("127.0.0.1", 7001))
        );
        let m = parse_message(b"-failover-abort-not-elected", b"master svc 127.0.0.1 7000")
            .expect("parses")
            .expect("relevant");
        assert!(matches!(
            m,
            SentinelMessage::Failover {
                signal: FailoverSignal::Abort,
                ..
            }
        ));
        assert_eq!(parse_message(b"+sdown", b"whatever"), Ok(None));
    }

    #[test]
    fn epochs_and_offsets() {
        assert_eq!(
            parse_message(b"+new-epoch", b"12"),
            Ok(Some(SentinelMessage::Epoch { epoch: 12 }))
        );
        assert_eq!(
            parse_message(
                b"+vote-for-leader",
                b"b7bb026a8126c42880dd824a2129289affb5e5b9 7"
            ),
            Ok(Some(SentinelMessage::Epoch { epoch: 7 }))
        );
        assert!(parse_message(b"+new-epoch", b"x").is_err());
        // Epochs are the sentinel's, for every service.
        assert!(message_concerns("svc", b"+new-epoch", b"3"));
        let reply = Reply::Array(vec![
            data("name"),
            data("svc"),
            data("ip"),
            data("10.0.0.1"),
            data("port"),
            data("6379"),
            data("flags"),
            data("master"),
            data("config-epoch"),
            data("4"),
        ]);
        let Ok(MasterAnswer::Known(info)) = parse_master_reply(&reply) else {
            panic!("a known master");
        };
        assert_eq!(info.config_epoch, Some(4));
        let master = Reply::Array(vec![data("master"), Reply::Int(3120), Reply::Array(vec![])]);
        assert_eq!(master_offset(&master), Some(3120));
        let replica = Reply::Array(vec![
            data("slave"),
            data("10.0.0.1"),
            Reply::Int(6379),
            data("connected"),
            Reply::Int(3000),
        ]);
        assert_eq!(
            master_offset(&replica),
            None,
            "a replica's offset is not a master's"
        );
        assert_eq!(master_offset(&data("sentinel")), None);
        let text = Reply::Array(vec![data("master"), data("77"), Reply::Array(vec![])]);
        assert_eq!(master_offset(&text), Some(77));
    }

    #[test]
    fn master_reply_resp2_and_resp3() {
        let flat = Reply::Array(vec![
            data("name"),
            data("svc"),
            data("ip"),
            data("127.0.0.1"),
            data("port"),
            data("7000"),
            data("flags"),
            data("master"),
        ]);
        let map = Reply::Map(vec![
            (data("ip"), data("127.0.0.1")),
            (data("port"), Reply::Int(7000)),
            (data("flags"), data("master,o_down")),
        ]);
        let MasterAnswer::Known(a) = parse_master_reply(&flat).expect("parses") else {
            panic!("known expected")
        };
        assert!(a.is_up());
        let MasterAnswer::Known(b) = parse_master_reply(&map).expect("parses") else {
            panic!("known expected")
        };
        assert!(!b.is_up());
        assert_eq!(a.addr, b.addr);
        assert_eq!(
            parse_master_reply(&Reply::Error("ERR No such master with that name".into())),
            Ok(MasterAnswer::UnknownName)
        );
    }

    #[test]
    fn only_messages_about_the_service_concern_it() {
        let concerns = |c: &str, p: &str| message_concerns("svc", c.as_bytes(), p.as_bytes());
        assert!(concerns(
            "+switch-master",
            "svc 10.0.0.1 6379 10.0.0.2 6379"
        ));
        assert!(!concerns(
            "+switch-master",
            "other 10.0.0.1 6379 10.0.0.2 6379"
        ));
        assert!(concerns("+try-failover", "master svc 10.0.0.1 6379"));
        assert!(!concerns(
            "+selected-slave",
            "slave 10.0.0.2:6379 10.0.0.2 6379 @ other 10.0.0.1 6379"
        ));
        assert!(!concerns("+sdown", "master svc 10.0.0.1 6379"));
        assert!(!concerns(
            "__sentinel__:hello",
            "10.0.0.9,26379,abc,1,svc,10.0.0.1,6379,1"
        ));
        assert!(
            concerns("+odown", "garbage"),
            "malformed messages reach the core"
        );
    }

    #[test]
    fn replication_histories() {
        let info = |text: &str| Reply::Data(text.as_bytes().to_vec());
        let promoted = info(
            "# Replication\r\nrole:master\r\nmaster_replid:b2\r\n\
             master_replid2:a1\r\nmaster_repl_offset:900\r\nsecond_repl_offset:801\r\n",
        );
        let r = parse_replication(&promoted).expect("fields");
        assert_eq!(r.previous(), Some(("a1", 801)));
        let never = info(
            "master_replid2:0000000000000000000000000000000000000000\r\nsecond_repl_offset:-1\r\n",
        );
        assert_eq!(parse_replication(&never).expect("fields").previous(), None);
        assert_eq!(parse_replication(&info("role:master\r\n")), None);
        assert_eq!(parse_replication(&Reply::Int(1)), None);
    }

    #[test]
    fn role_reply() {
        let master = Reply::Array(vec![data("master"), Reply::Int(10), Reply::Array(vec![])]);
        assert_eq!(parse_role(&master), Ok(Role::Master));
        let replica = Reply::Array(vec![
            data("slave"),
            data("127.0.0.1"),
            Reply::Int(7000),
            data("connected"),
            Reply::Int(10),
        ]);
        assert_eq!(
            parse_role(&replica),
            Ok(Role::Replica {
                master: Some(Addr::new("127.0.0.1", 7000))
            })
        );
        assert!(parse_role(&Reply::Nil).is_err());
    }

    fn arb_reply() -> impl Strategy<Value = Reply> {
        let leaf = prop_oneof![
            Just(Reply::Nil),
            any::<i64>().prop_map(Reply::Int),
            proptest::collection::vec(any::<u8>(), 0..16).prop_map(Reply::Data),
            prop_oneof![
                Just("ip"),
                Just("port"),
                Just("flags"),
                Just("master"),
                Just("slave"),
                Just("127.0.0.1"),
                Just("6379"),
                Just("s_down,master")
            ]
            .prop_map(data),
            ".{0,8}".prop_map(Reply::Status),
            ".{0,8}".prop_map(Reply::Error),
        ];
        leaf.prop_recursive(3, 32, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Reply::Array),
                proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Reply::Map),
            ]
        })
    }

    proptest! {
        #[test]
        fn messages_never_panic(channel in proptest::collection::vec(any::<u8>(), 0..24),
                                payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_message(&channel, &payload);
            let _ = message_concerns("svc", &channel, &payload);
        }

        #[test]
        fn structured_messages_never_panic(
            channel in prop_oneof![Just("+switch-master"), Just("+odown"), Just("+selected-slave"), Just("-odown")],
            tokens in proptest::collection::vec(prop_oneof![Just("master"), Just("slave"), Just("@"), Just("svc"), Just("127.0.0.1"), Just("6379"), Just("0"), Just("99999"), Just(""), Just("::1")], 0..10)) {
            let _ = parse_message(channel.as_bytes(), tokens.join(" ").as_bytes());
        }

        #[test]
        fn replies_never_panic(reply in arb_reply()) {
            let _ = parse_master_reply(&reply);
            let _ = parse_role(&reply);
            let _ = parse_sentinels_reply(&reply);
        }
    }
}
