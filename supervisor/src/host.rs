//! [`Host`]: the supervisor as a host outside Rust's async world sees it (see its docs).

use crate::gate::WorkerGate;
use crate::master::MasterConnection;
use crate::supervisor::Supervisor;
use dramatiq_sentinel_core::{Addr, AppErrorKind, Event, IgnoreReason};
use redis::aio::ConnectionLike;
use std::time::Duration;

/// The key a READONLY re-check deletes: a write that changes nothing on a master (the key is
/// never created) and fails with `READONLY` on a replica.
const PROBE_KEY: &str = "dramatiq-sentinel:readonly-probe";

/// Why [`Host::wait_master`] has no master for the host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// No verified master within `hold_timeout`, or the master stayed unreachable that long,
    /// or the supervisor stopped; the message says which (it is the master handle's error).
    #[error("{message}")]
    Unavailable {
        /// What the supervisor's master handle reported.
        message: String,
        /// The I/O error kind of that report (`TimedOut` for a failover still in progress,
        /// `ConnectionRefused` for an unreachable master, `NotConnected` once stopped).
        kind: Option<std::io::ErrorKind>,
    },
}

/// The I/O error kind inside a `redis` error, if it wraps one.
fn io_kind(e: &redis::RedisError) -> Option<std::io::ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = s.source();
    }
    None
}

/// A running supervisor as a foreign host sees it. Cheap to clone.
///
/// It gives what a host outside Rust's async world needs from a running supervisor when it
/// does its own Redis I/O (a Python extension whose client library opens its own sockets, a C
/// API): the verified master to connect to, the hold while a failover is in progress, a way to
/// tell the supervisor about errors its own connections saw, and each [`Event`] as a flat
/// record for a foreign logging system.
///
/// The host keeps no failover logic of its own. Before each command (or each new connection)
/// it asks [`Host::master_now`] (no waiting) and, when that says `None`, awaits
/// [`Host::wait_master`], which waits exactly as a command on the supervisor's own
/// [`MasterConnection`] does (the same hold, the same `hold_timeout`, the same retries on an
/// unreachable master, the same errors). Errors the host's connections see go to
/// [`Host::check_error`], which re-checks them through the supervisor's own connection, so the
/// core receives them as application errors and decides.
///
/// ```no_run
/// # async fn run(supervisor: dramatiq_sentinel_supervisor::Supervisor<impl dramatiq_sentinel_supervisor::Runtime>)
/// # -> Result<(), dramatiq_sentinel_supervisor::HostError> {
/// use dramatiq_sentinel_supervisor::{AppErrorKind, Host};
///
/// let host = Host::new(&supervisor);
/// let master = match host.master_now() {
///     Some(master) => master,
///     None => host.wait_master().await?, // held while a failover is in progress
/// };
/// // ... connect to `master` with your own client; if it answers READONLY:
/// host.check_error(&master, AppErrorKind::ReadOnly).await;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Host {
    /// The supervisor's master handle: its hold is the one hosts wait in.
    conn: MasterConnection,
    gate: WorkerGate,
}

impl Host {
    /// The host view of `supervisor`.
    pub fn new<R>(supervisor: &Supervisor<R>) -> Self {
        Self {
            conn: supervisor.master(),
            gate: supervisor.gate(),
        }
    }

    /// The verified master commands may go to now, or `None` while commands are held (a
    /// failover is in progress, or no master was verified yet): then await
    /// [`Host::wait_master`].
    pub fn master_now(&self) -> Option<Addr> {
        if self.conn.is_held() {
            return None;
        }
        self.conn.node()
    }

    /// The generation of the master in use when commands may go to it now (it changes at
    /// every activation of a master, and never goes back), or `None` while commands are held
    /// or once stopped. A host that keeps its own connections records the generation it
    /// connected in and compares it before each send: a connection is good for one
    /// generation only (the fence checked at every send, with no address to compare).
    pub fn generation(&self) -> Option<u64> {
        self.conn
            .shared()
            .slot
            .get()
            .map(|active| active.generation)
    }

    /// Whether commands are held now.
    pub fn is_held(&self) -> bool {
        self.conn.is_held()
    }

    /// The master in use, also while held (for logs and status).
    pub fn current_master(&self) -> Option<Addr> {
        self.conn.node()
    }

    /// Waits until commands may go to a verified master and returns it: a `PING` through the
    /// supervisor's master handle, so the wait is that handle's hold (fenced: until the new
    /// master is in use; unreachable: retried until it answers or another master is in use;
    /// both bounded by `hold_timeout`), and a failure is reported to the core as the handle
    /// reports its own.
    pub async fn wait_master(&self) -> Result<Addr, HostError> {
        let mut conn = self.conn.clone();
        match conn.req_packed_command(&redis::cmd("PING")).await {
            Ok(_) => self.conn.node().ok_or_else(|| HostError::Unavailable {
                message: "dramatiq-sentinel: the supervisor stopped".to_owned(),
                kind: Some(std::io::ErrorKind::NotConnected),
            }),
            Err(e) => Err(HostError::Unavailable {
                message: e.to_string(),
                kind: io_kind(&e),
            }),
        }
    }

    /// Tells the core that the host saw `kind` on its own connection to `node`. Errors about
    /// a node that is not the master in use are dropped (they are about an earlier master).
    /// The error is re-checked through the supervisor's own master connection (a `PING`, or
    /// for `READONLY` a write that changes nothing on a master), which reports what it sees to
    /// the core; the core decides. Completes when the re-check has (at most `command_timeout`,
    /// or `hold_timeout` while held); run it in the background.
    pub async fn check_error(&self, node: &Addr, kind: AppErrorKind) {
        if self.conn.node().as_ref() != Some(node) {
            return;
        }
        let mut cmd = match kind {
            AppErrorKind::ReadOnly => redis::cmd("DEL"),
            AppErrorKind::Io | AppErrorKind::Timeout => redis::cmd("PING"),
        };
        if kind == AppErrorKind::ReadOnly {
            cmd.arg(PROBE_KEY);
        }
        let mut conn = self.conn.clone();
        let _ = conn.req_packed_command(&cmd).await;
    }

    /// The worker gate (a permit per job; closed while fenced).
    pub fn gate(&self) -> &WorkerGate {
        &self.gate
    }
}

/// How serious an event is, as the supervisor logs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EventLevel {
    /// Routine detail.
    Debug,
    /// Normal operation.
    Info,
    /// Trouble the supervisor handles.
    Warn,
    /// A pause timeout or a fatal stop.
    Error,
}

/// One [`Event`] flattened for a foreign logging system: the supervisor's `tracing` level,
/// message and fields (addresses as `host:port`, durations in milliseconds).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EventRecord {
    /// The event's variant name (`SwitchDetected`, `Fenced`, ...).
    pub name: &'static str,
    /// Its log level.
    pub level: EventLevel,
    /// Its log message.
    pub message: &'static str,
    /// Its fields, in declaration order.
    pub fields: Vec<(&'static str, FieldValue)>,
}

/// A field of an [`EventRecord`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FieldValue {
    /// Text (addresses, reasons, paths); `None` for an absent optional address.
    Text(Option<String>),
    /// A duration in milliseconds; `None` when absent.
    Millis(Option<f64>),
    /// A count (bytes, offsets).
    Count(u64),
    /// A count that may be unknown (an offset a server never reported).
    MaybeCount(Option<u64>),
}

fn addr(a: &Addr) -> FieldValue {
    FieldValue::Text(Some(a.to_string()))
}

fn opt_addr(a: &Option<Addr>) -> FieldValue {
    FieldValue::Text(a.as_ref().map(Addr::to_string))
}

fn text(t: impl ToString) -> FieldValue {
    FieldValue::Text(Some(t.to_string()))
}

fn ms(d: &Duration) -> FieldValue {
    FieldValue::Millis(Some(d.as_secs_f64() * 1000.0))
}

impl EventRecord {
    /// The record of `event`, with the level, message and fields the supervisor logs it with.
    pub fn of(event: &Event) -> Self {
        use EventLevel::{Debug, Error, Info, Warn};
        let (name, level, message, fields): (_, _, _, Vec<(&'static str, FieldValue)>) = match event
        {
            Event::Ready { master, elapsed } => (
                "Ready",
                Info,
                "master verified; ready",
                vec![("master", addr(master)), ("elapsed_ms", ms(elapsed))],
            ),
            Event::Fenced {
                master,
                path,
                sentinel,
                signal,
            } => (
                "Fenced",
                Warn,
                "failover announced: work fenced",
                vec![
                    ("master", addr(master)),
                    ("path", text(path)),
                    ("sentinel", opt_addr(sentinel)),
                    ("signal", text(signal)),
                ],
            ),
            Event::CandidateNamed {
                candidate,
                sentinel,
            } => (
                "CandidateNamed",
                Info,
                "failover candidate named",
                vec![
                    ("candidate", addr(candidate)),
                    ("sentinel", opt_addr(sentinel)),
                ],
            ),
            Event::SwitchDetected {
                old,
                new,
                sentinel,
                path,
            } => (
                "SwitchDetected",
                Warn,
                "master switch detected",
                vec![
                    ("old", opt_addr(old)),
                    ("new", addr(new)),
                    ("sentinel", opt_addr(sentinel)),
                    ("path", text(path)),
                ],
            ),
            Event::BeforeReset { old, new } => (
                "BeforeReset",
                Info,
                "moving the master connection",
                vec![("old", opt_addr(old)), ("new", addr(new))],
            ),
            Event::AfterReset { old, new } => (
                "AfterReset",
                Info,
                "master connection moved; old connections closed",
                vec![("old", opt_addr(old)), ("new", addr(new))],
            ),
            Event::SwitchCompleted {
                old,
                new,
                path,
                to_paused,
                to_connected,
                total,
            } => (
                "SwitchCompleted",
                Info,
                "switch completed; workers resumed",
                vec![
                    ("old", opt_addr(old)),
                    ("new", addr(new)),
                    ("path", text(path)),
                    (
                        "to_paused_ms",
                        FieldValue::Millis(to_paused.map(|d| d.as_secs_f64() * 1000.0)),
                    ),
                    ("to_connected_ms", ms(to_connected)),
                    ("total_ms", ms(total)),
                ],
            ),
            Event::FenceLifted {
                master,
                reason,
                held,
            } => (
                "FenceLifted",
                Info,
                "fence lifted",
                vec![
                    ("master", addr(master)),
                    ("reason", text(reason)),
                    ("held_ms", ms(held)),
                ],
            ),
            Event::FenceExpired { master, waited } => (
                "FenceExpired",
                Warn,
                "no promotion within fence_timeout; re-verifying the master",
                vec![("master", addr(master)), ("waited_ms", ms(waited))],
            ),
            Event::MasterConfirmed { master, path } => (
                "MasterConfirmed",
                Debug,
                "master confirmed",
                vec![("master", addr(master)), ("path", text(path))],
            ),
            Event::ListenerUp { sentinel } => (
                "ListenerUp",
                Info,
                "listener subscribed",
                vec![("sentinel", addr(sentinel))],
            ),
            Event::ListenerDown {
                sentinel,
                reason,
                retry_in,
            } => (
                "ListenerDown",
                Warn,
                "listener down",
                vec![
                    ("sentinel", addr(sentinel)),
                    ("reason", text(reason)),
                    ("retry_in_ms", ms(retry_in)),
                ],
            ),
            Event::MessageIgnored {
                sentinel,
                channel,
                reason,
            } => (
                "MessageIgnored",
                if matches!(reason, IgnoreReason::Malformed(_)) {
                    Warn
                } else {
                    Debug
                },
                "sentinel message ignored",
                vec![
                    ("sentinel", addr(sentinel)),
                    ("channel", text(channel)),
                    ("reason", text(reason)),
                ],
            ),
            Event::DiscoveryFailed { error, retry_in } => (
                "DiscoveryFailed",
                Warn,
                "discovery failed",
                vec![("error", text(error)), ("retry_in_ms", ms(retry_in))],
            ),
            Event::VerificationFailed { node, reason } => (
                "VerificationFailed",
                Warn,
                "node failed verification",
                vec![("node", addr(node)), ("reason", text(reason))],
            ),
            Event::SentinelAdded { sentinel } => (
                "SentinelAdded",
                Info,
                "sentinel learned",
                vec![("sentinel", addr(sentinel))],
            ),
            Event::PauseTimedOut { waited } => (
                "PauseTimedOut",
                Error,
                "workers did not pause in time; stopping them",
                vec![("waited_ms", ms(waited))],
            ),
            Event::Stopped { error } => (
                "Stopped",
                Error,
                "supervisor stopped",
                vec![("error", text(error))],
            ),
            Event::PubSubResubscribed {
                old,
                new,
                channels,
                patterns,
                gap,
            } => (
                "PubSubResubscribed",
                Warn,
                "pub/sub subscriptions active again; messages published in the gap were missed",
                vec![
                    ("old", opt_addr(old)),
                    ("new", addr(new)),
                    ("channels", text(channels)),
                    ("patterns", text(patterns)),
                    ("gap_ms", ms(gap)),
                ],
            ),
            Event::NothingLost {
                old,
                new,
                old_offset,
                new_offset,
            } => (
                "NothingLost",
                Debug,
                "no write lost in the switch",
                vec![
                    ("old", addr(old)),
                    ("new", addr(new)),
                    ("old_offset", FieldValue::MaybeCount(*old_offset)),
                    ("new_offset", FieldValue::MaybeCount(*new_offset)),
                ],
            ),
            Event::WritesLost {
                old,
                new,
                old_offset,
                new_offset,
                bytes,
                commands,
                unread,
            } => (
                "WritesLost",
                Warn,
                "acknowledged writes lost in the switch",
                vec![
                    ("old", addr(old)),
                    ("new", addr(new)),
                    ("old_offset", FieldValue::Count(*old_offset)),
                    ("new_offset", FieldValue::Count(*new_offset)),
                    ("bytes", FieldValue::Count(*bytes)),
                    (
                        "commands_read_back",
                        FieldValue::Count(commands.as_ref().map_or(0, |c| c.len() as u64)),
                    ),
                    ("unread", FieldValue::Text(unread.clone())),
                ],
            ),
            other => (
                "Other",
                Info,
                "event",
                vec![("event", text(format!("{other:?}")))],
            ),
        };
        Self {
            name,
            level,
            message,
            fields,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_the_fields_of_the_log() {
        let r = EventRecord::of(&Event::SwitchDetected {
            old: None,
            new: Addr::new("127.0.0.1", 7000),
            sentinel: Some(Addr::new("127.0.0.1", 26379)),
            path: dramatiq_sentinel_core::DetectionPath::EarlySignal,
        });
        assert_eq!((r.name, r.level), ("SwitchDetected", EventLevel::Warn));
        assert_eq!(r.fields[0], ("old", FieldValue::Text(None)));
        assert_eq!(
            r.fields[1],
            ("new", FieldValue::Text(Some("127.0.0.1:7000".into())))
        );
        assert_eq!(
            r.fields[3],
            ("path", FieldValue::Text(Some("early-signal".into())))
        );
        let r = EventRecord::of(&Event::Ready {
            master: Addr::new("h", 1),
            elapsed: Duration::from_millis(3),
        });
        assert_eq!(r.fields[1], ("elapsed_ms", FieldValue::Millis(Some(3.0))));
    }

    #[test]
    fn nothing_lost_is_a_debug_record_with_its_offsets() {
        let r = EventRecord::of(&Event::NothingLost {
            old: Addr::new("h", 1),
            new: Addr::new("h", 2),
            old_offset: Some(10),
            new_offset: None,
        });
        assert_eq!((r.name, r.level), ("NothingLost", EventLevel::Debug));
        assert_eq!(r.message, "no write lost in the switch");
        assert_eq!(
            r.fields[2],
            ("old_offset", FieldValue::MaybeCount(Some(10)))
        );
        assert_eq!(r.fields[3], ("new_offset", FieldValue::MaybeCount(None)));
    }
}
