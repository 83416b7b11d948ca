//! Operation ids, and the one table of the operations the core waits for. Every action that is
//! answered carries an op id; the table says what each pending one is for, so a completion
//! goes to the part of the core that waits for it, and one the table does not hold (late,
//! duplicate or superseded) is ignored.

use std::collections::BTreeMap;
use std::fmt;

/// Correlates an action with its completion. Completions carrying an id the core no longer
/// waits for (late, duplicate or superseded) are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub u64);

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What a pending operation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pending {
    /// The listener connection of sentinel `n` (index into the sentinel table): its
    /// subscription, messages, pongs and failure.
    Listener(usize),
    /// Discovery's `SENTINEL MASTER` query.
    MasterQuery,
    /// A `SENTINEL SENTINELS` query (learning sentinels).
    SentinelsQuery,
    /// The `SENTINEL REPLICAS` query (the replicas to watch).
    ReplicasQuery,
    /// The `ROLE` probe of the master in use after an application error.
    VerifyProbe,
    /// The `ROLE` of the master in use, asked when the sentinels name a master taken for
    /// replaced.
    StaleCheck,
    /// The fence's `ROLE` poll of the master in use (its replication offset).
    FenceProbe,
    /// The lost-write check: `INFO replication` of the new master.
    LostInfo,
    /// The lost-write check: `ROLE` of the old master.
    LostRole,
    /// The lost-write check: reading the old master's backlog.
    BacklogRead,
    /// The switch's broker connection to its target (or to its candidate).
    Connect,
    /// A prepared broker connection nobody waits for any more: discarded when it answers.
    Unwanted,
    /// The activation of a prepared connection.
    Activation,
    /// The switch's `ROLE` check of its target when it is the master in use.
    SwitchProbe,
    /// A `ROLE` poll of the switch's candidate; `watch`: on a watch connection of its own,
    /// which stays open after the answer.
    CandidatePoll {
        /// The poll is a watch connection.
        watch: bool,
    },
    /// A watch connection (see `watches`).
    Watch,
    /// The workers' drain.
    Pause,
    /// Lost writes handed to the application.
    HandBack,
}

/// Op ids, allocated in order, and what each pending one is for.
#[derive(Debug, Default)]
pub(crate) struct Ops {
    last: u64,
    pending: BTreeMap<OpId, Pending>,
}

impl Ops {
    /// A new op id, pending for `what`.
    pub(crate) fn start(&mut self, what: Pending) -> OpId {
        self.last += 1;
        let op = OpId(self.last);
        self.pending.insert(op, what);
        op
    }

    /// What `op` is pending for, if it is.
    pub(crate) fn get(&self, op: OpId) -> Option<Pending> {
        self.pending.get(&op).copied()
    }

    /// `op` is no longer waited for (answered, timed out or superseded).
    pub(crate) fn finish(&mut self, op: OpId) {
        self.pending.remove(&op);
    }

    /// `op` now waits for something else (a connection that goes on to be activated, or that
    /// is no longer wanted).
    pub(crate) fn repurpose(&mut self, op: OpId, what: Pending) {
        if let Some(p) = self.pending.get_mut(&op) {
            *p = what;
        }
    }

    /// The switch no longer waits for its candidate poll `op`: a watch connection stays a watch.
    pub(crate) fn poll_dropped(&mut self, op: OpId) {
        match self.get(op) {
            Some(Pending::CandidatePoll { watch: true }) => {
                self.repurpose(op, Pending::Watch);
            }
            Some(Pending::CandidatePoll { watch: false }) => self.finish(op),
            _ => {}
        }
    }

    /// The watch connection `op` is closed or gone: a candidate poll on it still waits for
    /// its answer in the switch's eyes, as a plain poll.
    pub(crate) fn watch_gone(&mut self, op: OpId) {
        match self.get(op) {
            Some(Pending::Watch) => self.finish(op),
            Some(Pending::CandidatePoll { watch: true }) => {
                self.repurpose(op, Pending::CandidatePoll { watch: false });
            }
            _ => {}
        }
    }
}
