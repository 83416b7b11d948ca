//! What the core reports: every decision, with the facts that led to it.

use crate::addr::Addr;
use std::fmt;
use std::time::Duration;

/// Which path detected a master change (or a failover in progress).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum DetectionPath {
    /// The first discovery at startup.
    Startup,
    /// A `+switch-master` event.
    Event,
    /// An early failover signal (`+odown`, `+try-failover`, `+selected-slave`, ...), and the
    /// candidate's `ROLE` turning master.
    EarlySignal,
    /// The periodic master check.
    Poll,
    /// The re-check after a listener (re)subscribed: events may have been missed.
    ListenerReconnect,
    /// An error the application saw on the master connection (`READONLY`, I/O, timeout).
    AppError,
    /// A watched replica of the master in use closed its connections, as Sentinel does when it
    /// promotes it, and its `ROLE` then said master: no sentinel's event was needed.
    ReplicaWatch,
}

impl fmt::Display for DetectionPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DetectionPath::Startup => "startup",
            DetectionPath::Event => "event",
            DetectionPath::EarlySignal => "early-signal",
            DetectionPath::Poll => "poll",
            DetectionPath::ListenerReconnect => "listener-reconnect",
            DetectionPath::AppError => "app-error",
            DetectionPath::ReplicaWatch => "replica-watch",
        })
    }
}

/// The kind of error the application saw on the master connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppErrorKind {
    /// `READONLY`: the node is a replica now. The core fences at once and re-discovers.
    ReadOnly,
    /// The connection broke or could not be opened.
    Io,
    /// A command timed out.
    Timeout,
}

/// Why the sentinels could not name a usable master.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// No sentinel answered (each one's failure is listed).
    #[error("no sentinel reachable: {}", Addr::join_failures(.failures))]
    SentinelsUnreachable {
        /// Each sentinel asked, with why it failed (refused, timed out, wrong password, ...).
        failures: Vec<(Addr, String)>,
    },
    /// The sentinels that answered do not monitor a master of that name.
    #[error("sentinels {} do not know a master named `{service}`", Addr::join(.sentinels))]
    MasterNameUnknown {
        /// The configured service name.
        service: String,
        /// The sentinels that said so.
        sentinels: Vec<Addr>,
    },
    /// The sentinels name a master but flag it as down.
    #[error("sentinels report master {master} as down (flags {flags})")]
    MasterDown {
        /// The master they name.
        master: Addr,
        /// Its flags.
        flags: String,
    },
    /// The sentinels still name a master that was replaced: a configuration older than the one
    /// in use (its `config-epoch`), or, without epochs, one a `+switch-master` replaced.
    #[error("sentinels still name {master}, which a newer configuration replaced")]
    StaleAnswer {
        /// The replaced master.
        master: Addr,
    },
    /// The named master failed verification (its `ROLE` is not master, or it is unreachable).
    #[error("master {node} failed verification: {reason}")]
    VerificationFailed {
        /// The node.
        node: Addr,
        /// Why.
        reason: String,
    },
}

/// Why the supervisor stopped for good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FatalError {
    /// Workers did not pause within `pause_timeout`.
    #[error("workers did not pause within {waited:?}")]
    PauseTimedOut {
        /// How long the core waited.
        waited: Duration,
    },
    /// At startup, before any verified master, every sentinel answered with an error retrying
    /// will not fix (a wrong password, not a sentinel, a service none of them monitors), or the
    /// master they named refused our credentials (`startup_fail_fast`).
    #[error("startup failed: {error}")]
    StartupRefused {
        /// How long startup ran.
        waited: Duration,
        /// What every sentinel (or the master) answered.
        error: DiscoveryError,
    },
    /// No verified master was found within `startup_timeout`.
    #[error("no verified master within {waited:?}: {}", last.as_ref().map_or_else(|| "no answer yet".to_owned(), ToString::to_string))]
    StartupTimedOut {
        /// How long the core waited.
        waited: Duration,
        /// The last reason discovery failed, if it failed.
        last: Option<DiscoveryError>,
    },
}

/// Why a sentinel message was not acted upon.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IgnoreReason {
    /// It is about another service monitored by the same sentinels.
    OtherService(String),
    /// It could not be parsed.
    Malformed(String),
    /// It is about a master this process does not use (a late message of an earlier failover).
    NotOurMaster(Addr),
    /// It repeats what is already being handled (N sentinels publish the same event).
    Duplicate,
    /// It names a new master or a candidate that its epoch does not show newer than what the
    /// core knows: sent at an epoch not above the configuration in use (a late copy), naming a
    /// master a newer configuration replaced or whose own failover is under way, or on a
    /// connection whose epoch is not known yet. The core does not follow it; it fences and
    /// asks the sentinels, whose answers carry configuration epochs.
    Unproven(Addr),
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IgnoreReason::OtherService(s) => write!(f, "other service `{s}`"),
            IgnoreReason::Malformed(m) => write!(f, "malformed: {m}"),
            IgnoreReason::NotOurMaster(a) => write!(f, "about {a}, not the master in use"),
            IgnoreReason::Duplicate => f.write_str("duplicate"),
            IgnoreReason::Unproven(a) => write!(
                f,
                "names {a}, not shown newer than the configuration in use; asking the sentinels"
            ),
        }
    }
}

/// One command of a lost write, as the old master's replication stream carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostCommand {
    /// The database it ran in, when the stream read back selected one before it (unknown for
    /// the commands before the first `SELECT`: the one the application writes to).
    pub db: Option<u32>,
    /// The command and its arguments, e.g. `RPUSH`, `queue`, `id`.
    pub args: Vec<Vec<u8>>,
}

/// A structured report of a decision or an observation. Runtimes log each one with `tracing`
/// and hand them to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Startup found and verified the master; work may begin.
    Ready {
        /// The verified master.
        master: Addr,
        /// Time since the core was created.
        elapsed: Duration,
    },
    /// Writes the old master acknowledged are not on the new master: the old master's
    /// replication stream went `bytes` bytes past the point where the new master left it
    /// (Redis replicates asynchronously; a replica promoted behind, or a fence that reached
    /// this process after the promotion). When the old master still held that stream, its
    /// `commands` are read back from its replication backlog (`PSYNC`), exactly the ones the
    /// new master lacks, for the application to re-apply what is safe to re-apply; the core
    /// never re-applies them. Never reported when it cannot be proven.
    WritesLost {
        /// The master the switch left.
        old: Addr,
        /// The master it moved to.
        new: Addr,
        /// How far the old master's replication stream went (its `master_repl_offset`).
        old_offset: u64,
        /// Where the new master left it: its offset when it was promoted (its
        /// `second_repl_offset` - 1).
        new_offset: u64,
        /// `old_offset - new_offset`: bytes of replication stream lost.
        bytes: u64,
        /// The commands of those bytes, in order (`PING`, `REPLCONF`, `SELECT` and Sentinel's
        /// `PUBLISH __sentinel__:hello` left out; `MULTI` / `EXEC` kept), when they could be
        /// read back (never empty: a stream of only those is [`Event::NothingLost`]).
        commands: Option<Vec<LostCommand>>,
        /// Why they could not (the old master down or already reconfigured, its backlog no
        /// longer holding them, ...).
        unread: Option<String>,
    },
    /// The check after a switch found no write lost: the old master's stream did not go past
    /// where the new master left it, or went past it only with its own traffic (replication
    /// pings, Sentinel's hello messages: read back, no command of anyone's), or the two cannot
    /// be compared (an offset unknown: the old master down before it reported one, or the new
    /// master not promoted from its history).
    NothingLost {
        /// The master the switch left.
        old: Addr,
        /// The master it moved to.
        new: Addr,
        /// How far the old master's stream went, if known.
        old_offset: Option<u64>,
        /// Where the new master left it, if it was promoted from it.
        new_offset: Option<u64>,
        /// Whether the old master answered the check as a master (its `ROLE`, after the
        /// switch): then `old_offset` is where its stream stood at that answer, and nothing
        /// it ran before that answer is missing. `false` when it did not (down, frozen,
        /// reconfigured): `old_offset` is then the last one it reported, if any, and writes
        /// it ran after that are unknown.
        old_answered: bool,
    },
    /// A failover of the master in use was announced: new work stopped, writes held.
    Fenced {
        /// The master in use.
        master: Addr,
        /// The path that fenced.
        path: DetectionPath,
        /// The sentinel that reported it, if a sentinel did.
        sentinel: Option<Addr>,
        /// What was seen (a channel name such as `+try-failover`, or the error kind).
        signal: String,
    },
    /// A sentinel named the replica it is promoting; its `ROLE` is now polled.
    CandidateNamed {
        /// The replica (NAT-mapped).
        candidate: Addr,
        /// The sentinel that named it.
        sentinel: Option<Addr>,
    },
    /// A master change was detected (the original middleware's `redis_master_switch_detected` hook).
    SwitchDetected {
        /// The master in use, if any.
        old: Option<Addr>,
        /// The new master (NAT-mapped), about to be verified.
        new: Addr,
        /// The sentinel that reported it, if a sentinel did.
        sentinel: Option<Addr>,
        /// Which path detected it.
        path: DetectionPath,
    },
    /// The master connection is about to move (the original middleware's `before_redis_connection_reset`).
    BeforeReset {
        /// The master in use, if any.
        old: Option<Addr>,
        /// The verified new master.
        new: Addr,
    },
    /// The master connection moved and every connection to the old one is closed (the original middleware's
    /// `after_redis_connection_reset`).
    AfterReset {
        /// The previous master, if any.
        old: Option<Addr>,
        /// The new master.
        new: Addr,
    },
    /// A switch finished: workers resumed on the new master.
    SwitchCompleted {
        /// The previous master.
        old: Option<Addr>,
        /// The new master.
        new: Addr,
        /// Which path detected it.
        path: DetectionPath,
        /// Trigger to workers paused (`None` when no pause was needed, as at startup).
        to_paused: Option<Duration>,
        /// Trigger to the new master connected, verified and in use.
        to_connected: Duration,
        /// Trigger to workers resumed.
        total: Duration,
    },
    /// A fence was lifted without a switch: the old master was re-verified after a failover
    /// abort, a `-odown`, or the fence timeout.
    FenceLifted {
        /// The master, still in use.
        master: Addr,
        /// Why the fence was lifted.
        reason: String,
        /// How long the fence held.
        held: Duration,
    },
    /// An early fence saw no promotion within `fence_timeout`: the failing master is re-verified
    /// and used again if it still says master. Writes it accepts are lost if a promotion did
    /// happen unseen; a longer `fence_timeout` narrows that risk.
    FenceExpired {
        /// The master whose failover was announced.
        master: Addr,
        /// How long the fence waited.
        waited: std::time::Duration,
    },
    /// A re-check (poll, listener reconnect, application error) confirmed the master in use.
    MasterConfirmed {
        /// The master.
        master: Addr,
        /// What asked for the re-check.
        path: DetectionPath,
    },
    /// A listener subscribed to a sentinel.
    ListenerUp {
        /// The sentinel.
        sentinel: Addr,
    },
    /// A listener failed; it reconnects after `retry_in`.
    ListenerDown {
        /// The sentinel.
        sentinel: Addr,
        /// Why.
        reason: String,
        /// The backoff delay before the next attempt.
        retry_in: Duration,
    },
    /// A sentinel message was not acted upon.
    MessageIgnored {
        /// The sentinel that sent it.
        sentinel: Addr,
        /// Its channel (lossy UTF-8).
        channel: String,
        /// Why.
        reason: IgnoreReason,
    },
    /// The sentinels could not name a usable master; retry after `retry_in`.
    DiscoveryFailed {
        /// Why.
        error: DiscoveryError,
        /// The delay before asking again.
        retry_in: Duration,
    },
    /// A node named as master is not (its `ROLE` says otherwise) or cannot be reached; it is
    /// not used.
    VerificationFailed {
        /// The node.
        node: Addr,
        /// Why.
        reason: String,
    },
    /// A sentinel learned from `SENTINEL SENTINELS` joined the listeners.
    SentinelAdded {
        /// Its address (NAT-mapped).
        sentinel: Addr,
    },
    /// A learned sentinel was forgotten: it stayed unreachable for `forget_sentinel_after`, a
    /// sentinel no longer lists it, or a newly listed one took its place at `max_sentinels`.
    /// Its listener stopped. Configured sentinels are never forgotten.
    SentinelForgotten {
        /// Its address (NAT-mapped).
        sentinel: Addr,
        /// Why.
        reason: String,
    },
    /// Workers did not pause in time; escalation follows.
    PauseTimedOut {
        /// How long the core waited.
        waited: Duration,
    },
    /// The core stopped for good.
    Stopped {
        /// Why.
        error: FatalError,
    },
    /// An application pub/sub handle (the supervisor's `MasterConnection::pubsub`) subscribed
    /// again after it lost its subscriptions: the master moved (`old` is the previous master)
    /// or its connection broke (`old` is the same master). Messages published during `gap`
    /// were not received by it. Emitted by the supervisor's pub/sub task, not by the core.
    PubSubResubscribed {
        /// The master the subscriptions were on, if they were active before.
        old: Option<Addr>,
        /// The master they are on now.
        new: Addr,
        /// Channels subscribed.
        channels: usize,
        /// Patterns subscribed.
        patterns: usize,
        /// From the loss of the old subscriptions to the new ones being active.
        gap: Duration,
    },
}
