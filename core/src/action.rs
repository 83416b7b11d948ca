//! What the core asks the runtime to do.

use crate::addr::Addr;
use crate::event::{FatalError, LostCommand};
#[cfg(doc)]
use crate::input::Input;
use crate::op::OpId;
use std::time::Duration;

/// An instruction for the runtime. Execute them in the order [`crate::Core::poll_action`]
/// returns them; report each completion to [`crate::Core::handle`] as the [`Input`] named on each
/// variant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Action {
    /// Connect to the sentinel, authenticate, and subscribe to every channel (`PSUBSCRIBE *`).
    /// Report [`Input::Subscribed`], then each message as [`Input::Message`], and a broken
    /// connection as [`Input::ListenerFailed`].
    Subscribe {
        /// Identifies this listener connection in every later report and action.
        op: OpId,
        /// The sentinel to listen to.
        sentinel: Addr,
    },
    /// Send `PING` on the listener connection `op`; report the answer with
    /// [`Input::Pong`]. No answer needs no report: the core times out.
    PingListener {
        /// The listener connection.
        op: OpId,
    },
    /// Close the listener connection `op` (it failed its health check). Report nothing.
    CloseListener {
        /// The listener connection.
        op: OpId,
    },
    /// Ask the sentinel `SENTINEL MASTER <service>`; report the reply or the failure as
    /// [`Input::SentinelReply`].
    QueryMaster {
        /// Correlation id.
        op: OpId,
        /// The sentinel to ask.
        sentinel: Addr,
        /// The master name.
        service: String,
    },
    /// Ask the sentinel `SENTINEL SENTINELS <service>`; report as [`Input::SentinelReply`]. The core sets no deadline for it (a newer query
    /// supersedes it): bound it with `query_timeout` in the runtime.
    QuerySentinels {
        /// Correlation id.
        op: OpId,
        /// The sentinel to ask.
        sentinel: Addr,
        /// The master name.
        service: String,
    },
    /// Ask the sentinel `SENTINEL REPLICAS <service>`; report as [`Input::SentinelReply`]. The
    /// core watches the replicas it lists ([`Action::Watch`]). Bound it with `query_timeout`
    /// in the runtime; a newer query is sent only after this one's report.
    QueryReplicas {
        /// Correlation id.
        op: OpId,
        /// The sentinel to ask.
        sentinel: Addr,
        /// The master name.
        service: String,
    },
    /// Send `ROLE` to the data node (a short-lived or cached probe connection, never the
    /// application's); report as [`Input::NodeReply`]. The core times it out
    /// after `connect_timeout`; the runtime should bound it the same way so tasks end.
    PollRole {
        /// Correlation id.
        op: OpId,
        /// The data node.
        node: Addr,
    },
    /// Ask the data node `INFO replication` (a probe connection, like [`Action::PollRole`]);
    /// report the reply as [`Input::NodeReply`]. The core reads where the node's replication
    /// history began (lost writes after a switch). Bound it with `connect_timeout`.
    QueryReplication {
        /// Correlation id.
        op: OpId,
        /// The data node.
        node: Addr,
    },
    /// Read lost writes back from an old master's replication backlog: connect to the data
    /// node (authenticated, never the application's connection), send `PSYNC <replid>
    /// <offset>`, and on `+CONTINUE` read exactly `bytes` bytes of the replication stream
    /// that follows, then close the connection (it counts as a replica of the node meanwhile).
    /// Report the bytes, raw, as [`Input::Backlog`], or the failure (any other answer, such
    /// as `+FULLRESYNC`: the backlog no longer holds them). Bound it with `connect_timeout`
    /// for the connection and the answer, and a few seconds for the bytes.
    ReadBacklog {
        /// Correlation id.
        op: OpId,
        /// The old master.
        node: Addr,
        /// The replication ID of the history to read.
        replid: String,
        /// The first byte to read.
        offset: u64,
        /// How many bytes.
        bytes: u64,
    },
    /// Watch a replica of the master in use, or a failover candidate: open a connection to the
    /// data node (like a probe, never the application's), send `ROLE` and report the reply (or
    /// the failure) as [`Input::NodeReply`]; then keep that connection open, sending nothing,
    /// and report [`Input::WatchClosed`] when it closes. Sentinel closes every client
    /// connection of the replica it promotes, so the closing announces the promotion with one
    /// idle connection per replica and process, whoever leads the failover, instead of a
    /// `ROLE` poll every few milliseconds. Close it on [`Action::Unwatch`].
    Watch {
        /// Correlation id of the `ROLE` reply and of the closing.
        op: OpId,
        /// The candidate.
        node: Addr,
    },
    /// Close the watch connection `op`, if it is still open. Report nothing.
    Unwatch {
        /// The watch.
        op: OpId,
    },
    /// Open a new broker connection to the node, authenticate, send `ROLE`, keep the connection
    /// aside under `op`, and report the `ROLE` reply (or the failure) with
    /// [`Input::NodeReply`]. The core follows with [`Action::Activate`] or
    /// [`Action::Discard`] for every connection that was opened.
    Connect {
        /// Correlation id, and the name of the prepared connection.
        op: OpId,
        /// The data node.
        node: Addr,
    },
    /// Point the application's master connection at the prepared connection `op` (to `node`)
    /// and close every connection of the application's to `old`, blocking and pub/sub ones
    /// included (commands in flight on them fail); a probe connection may stay, for the
    /// [`Action::PauseWrites`] and [`Action::PollRole`] that follow. With `release`, commands held by [`Action::Fence`] go out now, to
    /// the new master (a drain: jobs in flight may be waiting on them, and the pause completes
    /// only when they finish); without, they stay held until [`Action::Resume`], so that
    /// writes lost in the switch are handed back ([`Action::HandBack`]) before any other
    /// reaches the new master. Report with [`Input::Activated`], or
    /// [`Input::ActivationFailed`] if it could not be done (no prepared connection under `op`).
    Activate {
        /// The prepared connection.
        op: OpId,
        /// Its node, the new master.
        node: Addr,
        /// The master it replaces.
        old: Option<Addr>,
        /// Whether held commands go out now (else at `Resume`).
        release: bool,
    },
    /// Hand writes the old master acknowledged but the new master lacks (read back from the
    /// old master's backlog, also reported as [`crate::Event::WritesLost`]) to the
    /// application, which re-applies what is safe to re-apply on the new master, through a
    /// connection of its own (the master connection's commands are still held). Report
    /// [`Input::HandedBack`] when it is done; the core resumes after it (or after
    /// `fence_timeout`).
    HandBack {
        /// Correlation id.
        op: OpId,
        /// The master the writes were lost on.
        old: Addr,
        /// The new master, in use.
        new: Addr,
        /// The commands, in order.
        commands: Vec<LostCommand>,
    },
    /// Pause writes on the deposed master `node` for `duration` (`CLIENT PAUSE <ms> WRITE`),
    /// on its probe connection (the one [`Action::PollRole`] uses), before any later probe
    /// of it. Best effort: log a failure (a server before 6.2, an ACL without `CLIENT
    /// PAUSE`), report nothing. Comes right before the [`Action::Activate`] that leaves it.
    PauseWrites {
        /// The deposed master.
        node: Addr,
        /// How long its writes wait.
        duration: Duration,
    },
    /// End a pause of writes this process set on `node` (`CLIENT UNPAUSE`), which a switch
    /// moves back to: comes right before the [`Action::Activate`]. Best effort, report nothing.
    UnpauseWrites {
        /// The node, master again.
        node: Addr,
    },
    /// Close the prepared connection `op`; it will not be used. Report nothing.
    Discard {
        /// The prepared connection.
        op: OpId,
    },
    /// Stop new work and hold writes: workers start no new job and application commands wait
    /// (up to `hold_timeout`) instead of reaching the master. Jobs in flight go on. Report nothing.
    Fence,
    /// Wait until the jobs in flight are done (the fence already stops new ones); report with
    /// [`Input::Paused`]. The core enforces `pause_timeout`.
    PauseWorkers {
        /// Correlation id.
        op: OpId,
    },
    /// Lift the fence: release commands still held (when no [`Action::Activate`] came, as when
    /// a fence is lifted on the same master) and let workers start jobs. Report nothing.
    Resume,
    /// Stop the workers, waiting at most `grace` for jobs in flight. Report nothing; the next
    /// action is [`Action::Shutdown`].
    StopWorkers {
        /// Longest wait for jobs in flight.
        grace: Duration,
    },
    /// Stop for good. No further action follows and later inputs are ignored.
    Shutdown(Shutdown),
}

/// How the supervisor stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shutdown {
    /// Exit the process with this code.
    Exit {
        /// The exit code.
        code: u8,
    },
    /// Stop the supervisor and return this error to the application.
    Fail(FatalError),
}
