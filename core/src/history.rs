//! What the core remembers about recent masters, to tell news from late copies: masters that
//! were replaced (stale), masters whose failover sentinels announced (failing, with their
//! candidate), and master transitions seen (old → new, with when they were first seen).

use crate::addr::Addr;
use crate::parse::Signal;
use crate::timers::after;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Messages about a transition that arrive this soon after it was first seen are copies of it
/// (every sentinel publishes its own within about 2 s of the promotion), not a new failover.
pub(crate) const LATE_SIGNAL_WINDOW: Duration = Duration::from_secs(5);

/// The core's memory of recent masters.
#[derive(Debug)]
pub(crate) struct History {
    /// How long a failover announcement counts (`fence_timeout`).
    failing_ttl: Duration,
    /// How long a replaced master is stale (`stale_master_ttl`).
    stale_ttl: Duration,
    /// Replaced masters, until when they are stale.
    stale: BTreeMap<Addr, Instant>,
    /// Masters whose failover was announced: when last, and the candidate named.
    failing: BTreeMap<Addr, (Instant, Option<Addr>)>,
    /// Transitions seen (old, new) and when first.
    completed: BTreeMap<(Addr, Addr), Instant>,
}

impl History {
    pub(crate) fn new(failing_ttl: Duration, stale_ttl: Duration) -> Self {
        History {
            failing_ttl,
            stale_ttl,
            stale: BTreeMap::new(),
            failing: BTreeMap::new(),
            completed: BTreeMap::new(),
        }
    }

    /// Whether `addr` was replaced within `stale_master_ttl`.
    pub(crate) fn is_stale(&self, addr: &Addr, now: Instant) -> bool {
        self.stale.get(addr).is_some_and(|until| *until > now)
    }

    /// Believe `addr` again (a majority of sentinels names it for a fail-back).
    pub(crate) fn unstale(&mut self, addr: &Addr) {
        self.stale.remove(addr);
    }

    /// Marks a replaced master stale. The first report counts: repeats of the same failover
    /// (every sentinel publishes its `+switch-master`) do not extend it.
    fn mark_stale(&mut self, addr: Addr, now: Instant) {
        self.stale.retain(|_, until| *until > now);
        self.stale
            .entry(addr)
            .or_insert_with(|| after(now, self.stale_ttl));
    }

    /// Whether `addr` was replaced within the late-signal window.
    pub(crate) fn replaced_recently(&self, addr: &Addr, now: Instant) -> bool {
        self.stale
            .get(addr)
            .and_then(|until| until.checked_sub(self.stale_ttl))
            .is_some_and(|at| now.saturating_duration_since(at) < LATE_SIGNAL_WINDOW)
    }

    /// The master moved from `old` to `new`, by a switch or a `+switch-master`.
    pub(crate) fn moved(&mut self, old: Option<Addr>, new: &Addr, now: Instant) {
        self.stale.remove(new);
        self.failing.remove(new);
        if let Some(old) = old.filter(|o| o != new) {
            self.failing.remove(&old); // its failover is over
            self.mark_stale(old.clone(), now);
            self.completed
                .retain(|_, at| now.saturating_duration_since(*at) < self.stale_ttl);
            self.completed.entry((old, new.clone())).or_insert(now);
        }
    }

    /// Remembers a failover signal of `master` (naming `candidate` for candidate signals).
    /// Signals of a transition already completed do not announce a new failover.
    pub(crate) fn note_signal(
        &mut self,
        signal: Signal,
        master: &Addr,
        candidate: Option<&Addr>,
        now: Instant,
    ) {
        let ttl = self.failing_ttl;
        self.failing
            .retain(|_, (since, _)| now.saturating_duration_since(*since) < ttl);
        if signal == Signal::Abort {
            self.failing.remove(master);
            return;
        }
        let late = match candidate {
            Some(c) => self.completed_recently(master, c, now),
            None => self.replaced_recently(master, now),
        };
        if late {
            return;
        }
        let entry = self.failing.entry(master.clone()).or_insert((now, None));
        entry.0 = now;
        if signal == Signal::Candidate {
            entry.1 = candidate.cloned();
        }
    }

    /// Whether sentinels announced a failover of `addr` within the fence timeout.
    pub(crate) fn is_failing(&self, addr: &Addr, now: Instant) -> bool {
        self.failing
            .get(addr)
            .is_some_and(|(since, _)| now.saturating_duration_since(*since) < self.failing_ttl)
    }

    /// The candidate announced for `addr`'s failover, unless it was replaced since or is
    /// failing over itself.
    pub(crate) fn candidate_of(&self, addr: &Addr, now: Instant) -> Option<Addr> {
        self.failing
            .get(addr)
            .and_then(|(_, c)| c.clone())
            .filter(|c| !self.is_stale(c, now) && !self.is_failing(c, now))
    }

    /// Whether a `+switch-master old → new` is a late copy of an earlier failover: `new` is
    /// failing over itself, or `old → new` was seen and `new` was replaced after it; unless the
    /// early signals announced exactly this fail-back (`old` failing over to `new`), more
    /// recently than `new`'s own failure.
    pub(crate) fn is_late_switch(&self, old: &Addr, new: &Addr, now: Instant) -> bool {
        let announced = self.is_failing(old, now)
            && self.failing.get(old).is_some_and(|(since, candidate)| {
                candidate.as_ref() == Some(new)
                    && self.failing.get(new).is_none_or(|(s, _)| s < since)
            });
        !announced && (self.is_failing(new, now) || self.superseded(old, new, now))
    }

    fn first_seen(&self, old: &Addr, new: &Addr, now: Instant) -> Option<Instant> {
        self.completed
            .get(&(old.clone(), new.clone()))
            .copied()
            .filter(|at| now.saturating_duration_since(*at) < LATE_SIGNAL_WINDOW)
    }

    /// `old → new` was seen moments ago and `new` was replaced after it.
    fn superseded(&self, old: &Addr, new: &Addr, now: Instant) -> bool {
        self.first_seen(old, new, now).is_some_and(|at| {
            self.completed
                .iter()
                .any(|((from, _), later)| from == new && *later > at)
        })
    }

    /// `old → new` was seen moments ago and `old` has not become master again since.
    fn completed_recently(&self, old: &Addr, new: &Addr, now: Instant) -> bool {
        self.first_seen(old, new, now).is_some_and(|at| {
            !self
                .completed
                .iter()
                .any(|((_, to), later)| to == old && *later > at)
        })
    }
}
