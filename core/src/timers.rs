//! The timer table: every deadline the core waits for, tagged with its reason.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Why the core wants to be woken up. Returned by [`crate::Core::poll_timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum TimerReason {
    /// Startup has not found a verified master by `startup_timeout`.
    StartupDeadline,
    /// Workers have not paused by `pause_timeout`.
    PauseTimeout,
    /// An early fence saw no promotion within `fence_timeout`.
    FenceTimeout,
    /// A broker connection attempt takes too long.
    ConnectTimeout,
    /// Time for the next `ROLE` poll of a candidate.
    RolePoll,
    /// A `ROLE` probe takes too long.
    ProbeTimeout,
    /// A sentinel query takes too long.
    QueryTimeout,
    /// Time to re-ask the sentinels after a failure.
    DiscoveryRetry,
    /// Time for the periodic master check.
    PeriodicCheck,
    /// Listener `n` (index into the sentinel table) needs attention: reconnect after backoff,
    /// health-check ping, or ping timeout.
    Listener(usize),
    /// A replica whose watch failed may be watched again.
    WatchRetry,
    /// Time to ask the sentinels for the replicas of the master a switch moved to.
    ReplicasQuery,
    /// The lost-write check after a switch (or its backlog read) takes too long.
    LostWrites,
    /// The application takes longer than `fence_timeout` with lost writes handed back.
    HandBack,
}

/// Deadlines by reason; at most one per reason.
#[derive(Debug, Default, Clone)]
pub(crate) struct Timers {
    at: BTreeMap<TimerReason, Instant>,
}

impl Timers {
    pub(crate) fn set(&mut self, reason: TimerReason, at: Instant) {
        self.at.insert(reason, at);
    }

    pub(crate) fn cancel(&mut self, reason: TimerReason) {
        self.at.remove(&reason);
    }

    pub(crate) fn is_set(&self, reason: TimerReason) -> bool {
        self.at.contains_key(&reason)
    }

    /// The earliest deadline and its reason (ties broken by reason order).
    pub(crate) fn next(&self) -> Option<(Instant, TimerReason)> {
        self.at.iter().map(|(r, t)| (*t, *r)).min()
    }

    /// Removes and returns the earliest deadline at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<TimerReason> {
        let (t, r) = self.next()?;
        if t <= now {
            self.at.remove(&r);
            Some(r)
        } else {
            None
        }
    }
}

/// `now + d` without a possible panic (durations are validated to at most a year).
pub(crate) fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).unwrap_or(now)
}
