//! What the runtime tells the core: one type for every completion of an action, every message
//! on a listener connection and every error the application saw. Deadlines are the one other
//! way in ([`crate::Core::handle_timeout`]).

use crate::addr::Addr;
use crate::event::AppErrorKind;
use crate::op::OpId;
use crate::reply::Reply;
use std::fmt;

/// An input for [`crate::Core::handle`]. Each [`crate::Action`] names the input that completes
/// it; every input carries the [`OpId`] of its action, and the core ignores ids it no longer
/// waits for (late, duplicate or superseded completions).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// The listener connection of an [`crate::Action::Subscribe`] subscribed.
    Subscribed {
        /// The listener connection.
        op: OpId,
    },
    /// A message arrived on a listener connection (raw channel and payload).
    Message {
        /// The listener connection.
        op: OpId,
        /// The channel, as received.
        channel: Vec<u8>,
        /// The payload, as received.
        payload: Vec<u8>,
    },
    /// A listener connection answered an [`crate::Action::PingListener`]. No answer needs no
    /// input: the core times the ping out.
    Pong {
        /// The listener connection.
        op: OpId,
    },
    /// A listener connection could not be opened or subscribed, or it broke.
    ListenerFailed {
        /// The listener connection.
        op: OpId,
        /// Why.
        error: IoError,
    },
    /// A sentinel answered an [`crate::Action::QueryMaster`], [`crate::Action::QuerySentinels`]
    /// or [`crate::Action::QueryReplicas`] (server errors are replies: [`Reply::Error`]), or
    /// the query failed.
    SentinelReply {
        /// The query.
        op: OpId,
        /// The reply, or why there is none.
        reply: Result<Reply, IoError>,
    },
    /// A data node answered the `ROLE` of an [`crate::Action::PollRole`],
    /// [`crate::Action::Watch`] or [`crate::Action::Connect`], or the `INFO replication` of an
    /// [`crate::Action::QueryReplication`], or the attempt failed.
    NodeReply {
        /// The action.
        op: OpId,
        /// The reply, or why there is none.
        reply: Result<Reply, IoError>,
    },
    /// The bytes an [`crate::Action::ReadBacklog`] read, or why it could not.
    Backlog {
        /// The read.
        op: OpId,
        /// The raw bytes of the replication stream.
        result: Result<Vec<u8>, IoError>,
    },
    /// The server closed the connection of an [`crate::Action::Watch`] (or it broke) after its
    /// `ROLE` answer. Sentinel closes every client connection of a replica it promotes or
    /// re-points, so this usually means a promotion or a reconfiguration.
    WatchClosed {
        /// The watch.
        op: OpId,
    },
    /// The runtime executed an [`crate::Action::Activate`]: the master connection points at
    /// the new node.
    Activated {
        /// The activation.
        op: OpId,
    },
    /// The runtime could not execute an [`crate::Action::Activate`] (for example, the prepared
    /// connection was gone). The core does not use that node until it is verified again.
    ActivationFailed {
        /// The activation.
        op: OpId,
        /// Why.
        reason: String,
    },
    /// The application is done with the lost writes of an [`crate::Action::HandBack`].
    HandedBack {
        /// The hand-back.
        op: OpId,
    },
    /// The workers drained ([`crate::Action::PauseWorkers`] completed).
    Paused {
        /// The pause.
        op: OpId,
    },
    /// The application saw an error on its connection to `node`. Errors about a node that is
    /// not the master in use, or during a switch, are ignored; repeated errors coalesce into
    /// one re-check, paced by the retry backoff.
    AppError {
        /// The node the application's connection talked to.
        node: Addr,
        /// What it saw.
        kind: AppErrorKind,
    },
}

impl Input {
    /// The action this input completes or reports on, if it is about one.
    pub fn op(&self) -> Option<OpId> {
        match self {
            Input::Subscribed { op }
            | Input::Message { op, .. }
            | Input::Pong { op }
            | Input::ListenerFailed { op, .. }
            | Input::SentinelReply { op, .. }
            | Input::NodeReply { op, .. }
            | Input::Backlog { op, .. }
            | Input::WatchClosed { op }
            | Input::Activated { op }
            | Input::ActivationFailed { op, .. }
            | Input::HandedBack { op }
            | Input::Paused { op } => Some(*op),
            Input::AppError { .. } => None,
        }
    }
}

/// Why an operation of an action did not complete, as the runtime saw it: whether retrying
/// may help, and a description for logs and errors. Server error replies to a command are not
/// `IoError`s but [`Reply::Error`]s, which the core reads itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoError {
    kind: IoErrorKind,
    message: String,
}

/// Whether retrying may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IoErrorKind {
    /// The server could not be reached or did not answer in time (refused, reset, closed,
    /// timed out, still loading its data): it may answer later.
    Unreachable,
    /// The server answered but refused us (authentication, permissions, a TLS certificate,
    /// not the kind of server expected): retrying the same way will not help.
    Rejected,
}

impl IoError {
    /// A failure of `kind`, described by `message`.
    pub fn new(kind: IoErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The server could not be reached or did not answer in time.
    pub fn unreachable(message: impl Into<String>) -> Self {
        Self::new(IoErrorKind::Unreachable, message)
    }

    /// The server answered but refused us.
    pub fn rejected(message: impl Into<String>) -> Self {
        Self::new(IoErrorKind::Rejected, message)
    }

    /// Whether retrying may help.
    pub fn kind(&self) -> IoErrorKind {
        self.kind
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for IoError {}

impl From<IoError> for String {
    fn from(e: IoError) -> Self {
        e.message
    }
}
