//! What the core remembers of failovers in progress: masters whose failover sentinels
//! announced, with the candidate they named and the epoch of that announcement. Whether a
//! configuration is old or new is not remembered here: configuration epochs tell.

use crate::addr::Addr;
use crate::parse::FailoverSignal;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A failover announced recently.
#[derive(Debug)]
struct Failing {
    since: Instant,
    /// The candidate named, with the connection epoch of the message that named it (the
    /// leader's: the failover's own epoch).
    candidate: Option<(Addr, Option<u64>)>,
    /// For each sentinel that announced it: an upper bound of its epoch then (`None` until
    /// the core learns one: a sentinel's epoch only grows, so any epoch it announces later
    /// bounds its earlier messages).
    epochs: BTreeMap<Addr, Option<u64>>,
    /// A watch saw the promotion itself: its epoch has no known upper bound, so no answer
    /// supersedes it until it expires.
    seen: bool,
}

/// Failovers announced recently.
#[derive(Debug)]
pub(crate) struct History {
    /// How long a failover announcement counts (`fence_timeout`).
    failing_ttl: Duration,
    /// Masters whose failover was announced.
    failing: BTreeMap<Addr, Failing>,
}

impl History {
    pub(crate) fn new(failing_ttl: Duration) -> Self {
        History {
            failing_ttl,
            failing: BTreeMap::new(),
        }
    }

    /// The master moved from `old` to `new`: their failovers are over.
    pub(crate) fn moved(&mut self, old: &Addr, new: &Addr) {
        self.failing.remove(old);
        self.failing.remove(new);
    }

    /// Remembers a failover signal of `master` that `sentinel` sent at the connection epoch
    /// `tag` (with the candidate it names, unless the signal may be old news); an abort
    /// forgets it.
    pub(crate) fn note_signal(
        &mut self,
        signal: FailoverSignal,
        master: &Addr,
        candidate: Option<&Addr>,
        (sentinel, tag): (&Addr, Option<u64>),
        now: Instant,
    ) {
        let ttl = self.failing_ttl;
        self.failing
            .retain(|_, f| now.saturating_duration_since(f.since) < ttl);
        if signal == FailoverSignal::Abort {
            self.failing.remove(master);
            return;
        }
        let entry = self.announced(master, now);
        let bound = entry.epochs.entry(sentinel.clone()).or_insert(tag);
        *bound = tag.map(|t| bound.map_or(t, |b| b.max(t)));
        if let Some(c) = candidate.filter(|_| signal == FailoverSignal::Candidate) {
            entry.candidate = Some((c.clone(), tag));
        }
    }

    /// The failover of `master`, announced (again) at `now`.
    fn announced(&mut self, master: &Addr, now: Instant) -> &mut Failing {
        let entry = self.failing.entry(master.clone()).or_insert(Failing {
            since: now,
            candidate: None,
            epochs: BTreeMap::new(),
            seen: false,
        });
        entry.since = now;
        entry
    }

    /// A watch saw `candidate`, a replica of `master`, promoted by a configuration of an epoch
    /// at least `floor` (newer than the one in use, whose epoch is below it).
    pub(crate) fn promoted(&mut self, master: &Addr, candidate: &Addr, floor: u64, now: Instant) {
        let entry = self.announced(master, now);
        entry.seen = true;
        entry.candidate = Some((candidate.clone(), Some(floor)));
    }

    /// Whether a watch saw a replica of `master` promoted, recently (within the fence timeout).
    pub(crate) fn promotion_seen(&self, master: &Addr, now: Instant) -> bool {
        self.failing
            .get(master)
            .is_some_and(|f| f.seen && now.saturating_duration_since(f.since) < self.failing_ttl)
    }

    /// `sentinel` announced its epoch: it bounds the epochs of its earlier messages.
    pub(crate) fn epoch_learned(&mut self, sentinel: &Addr, epoch: u64) {
        for f in self.failing.values_mut() {
            if let Some(b @ None) = f.epochs.get_mut(sentinel) {
                *b = Some(epoch);
            }
        }
    }

    /// Whether sentinels announced a failover of `addr` within the fence timeout, that a
    /// configuration naming it at `config_epoch` does not supersede. (A failover of a master
    /// never promotes it: a configuration naming it at an epoch above every announcement's is
    /// newer than the failover.)
    pub(crate) fn is_failing(&self, addr: &Addr, config_epoch: Option<u64>, now: Instant) -> bool {
        self.failing.get(addr).is_some_and(|f| {
            now.saturating_duration_since(f.since) < self.failing_ttl
                && !config_epoch
                    .is_some_and(|e| !f.seen && f.epochs.values().all(|b| b.is_some_and(|b| b < e)))
        })
    }

    /// The candidate announced for `addr`'s failover, unless it is failing over itself, or
    /// the master is named at `config_epoch` and the failover is not known to be newer (the
    /// epoch of the message that named the candidate, the failover's, is not above it).
    pub(crate) fn candidate_of(&self, addr: &Addr, config_epoch: Option<u64>) -> Option<Addr> {
        let (candidate, tag) = self.failing.get(addr)?.candidate.as_ref()?;
        let newer = config_epoch.is_none_or(|e| tag.is_some_and(|t| t > e));
        (newer && !self.failing.contains_key(candidate)).then(|| candidate.clone())
    }
}
