//! What the core knows of Sentinel's configuration epochs for its service, to tell a late
//! message or a lagging sentinel from news without timing rules.
//!
//! Every failover attempt takes a new epoch (shared by all services of a sentinel), and the
//! configuration it promotes carries that epoch as its `config-epoch`; sentinels that learn a
//! newer configuration adopt it. Sources:
//! - `SENTINEL MASTER` answers give the exact `config-epoch` of the master a sentinel names;
//! - every change of a sentinel's epoch is announced on its pub/sub connection
//!   (`+new-epoch`) before any message sent at that epoch, so the last epoch announced on a
//!   connection (its *tag*) is at least the epoch of what a later message announces: a
//!   message whose tag is not above the configuration in use announces nothing newer. (A
//!   missed `+new-epoch` makes a tag too low, which only makes the core more careful, so a
//!   tag is never used as an upper bound);
//! - a `+switch-master old new`, or a switch of the core itself, tells that `old`'s
//!   configuration is older than `new`'s.
//!
//! The epoch of the master in use is kept as an interval: at least `lo`, at most `hi` when
//! known; a sentinel's answer naming it makes it exact.

use crate::addr::Addr;
use std::collections::BTreeMap;

/// What a switch knows of the epoch of the master it moves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Known {
    /// A sentinel's answer named it at this `config-epoch`.
    Exact(u64),
    /// A message not older than the configuration in use announced it, sent at this
    /// connection epoch when known (the sentinel's current epoch then: an upper bound of the
    /// configuration's).
    Announced(Option<u64>),
    /// Nothing: the master the core re-verifies, or a candidate it remembered.
    Unknown,
}

/// The core's epoch knowledge.
#[derive(Debug, Default)]
pub(crate) struct Epochs {
    /// The `config-epoch` of the master in use is at least this...
    lo: u64,
    /// ... and at most this, when known.
    hi: Option<u64>,
    /// Masters a newer configuration replaced: answers naming one at an epoch up to its
    /// bound name an older configuration (`None`: at any epoch, as far as the core knows).
    replaced: BTreeMap<Addr, Option<u64>>,
    /// The highest `config-epoch` a sentinel's answer gave each master (configurations that
    /// existed; as many entries as the service has had masters).
    named: BTreeMap<Addr, u64>,
}

impl Epochs {
    /// The lowest epoch a configuration newer than the one in use can have.
    pub(crate) fn above_in_use(&self) -> u64 {
        self.lo.saturating_add(1)
    }

    /// The exact epoch of the master in use, when known.
    pub(crate) fn in_use(&self) -> Option<u64> {
        (self.hi == Some(self.lo)).then_some(self.lo)
    }

    /// Whether a message sent at the connection epoch `tag` that names `named` (the new master
    /// or a candidate) may be old news: what it announces may not be newer than the
    /// configuration in use (the tag is not above its upper bound when one is known, else its
    /// lower bound), or names a master a newer configuration replaced at an epoch up to its
    /// bound (at any epoch when the bound is unknown), or the connection's epoch is unknown.
    pub(crate) fn possibly_late(&self, tag: Option<u64>, named: Option<&Addr>) -> bool {
        let replaced = named.and_then(|a| self.replaced.get(a));
        let in_use = self.hi.unwrap_or(self.lo).max(self.lo);
        match tag {
            Some(t) => t <= in_use || replaced.is_some_and(|b| b.is_none_or(|b| t <= b)),
            // A connection's epoch is unknown from its subscription to the sentinel's next
            // `+new-epoch`.
            None => true,
        }
    }

    /// Whether a sentinel naming `addr` at `config_epoch` has not caught up: a configuration
    /// of another master at a higher epoch existed; or `addr` is a master a newer
    /// configuration replaced, named at an epoch up to its bound; or another master than the
    /// one in use, at an epoch not above the one in use.
    pub(crate) fn older(&self, addr: &Addr, config_epoch: u64, in_use: Option<&Addr>) -> bool {
        let newer_elsewhere = self
            .named
            .iter()
            .any(|(a, e)| a != addr && *e > config_epoch);
        let replaced = self
            .replaced
            .get(addr)
            .is_some_and(|b| b.is_none_or(|b| config_epoch <= b));
        let behind_in_use = in_use.is_some_and(|m| m != addr) && config_epoch <= self.lo;
        newer_elsewhere || replaced || behind_in_use
    }

    /// A sentinel's answer named `addr` at `config_epoch`: such a configuration existed.
    pub(crate) fn named(&mut self, addr: &Addr, config_epoch: u64) {
        let e = self.named.entry(addr.clone()).or_insert(config_epoch);
        *e = (*e).max(config_epoch);
    }

    /// Whether `addr`, at an epoch the core does not know, may be older than what it knows:
    /// a newer configuration replaced it, or another master was named at a higher epoch
    /// than the one the core knows of `addr` (the sentinels, asked, will tell). Of a master
    /// no answer named and not in use, the core knows no more than of the one in use (`lo`):
    /// another master named above it may be newer.
    pub(crate) fn maybe_older(&self, addr: &Addr, in_use: Option<&Addr>) -> bool {
        let named = self.named.get(addr).copied();
        let known = if in_use == Some(addr) {
            named.max(Some(self.lo))
        } else {
            named.or(Some(self.lo))
        };
        self.replaced.contains_key(addr)
            || known.is_some_and(|k| self.named.iter().any(|(a, e)| a != addr && *e > k))
    }

    /// Whether a switch must not move to (or activate) `addr`, whose epoch is `known`: an
    /// answer naming it at an older configuration than one the core knows of ([`older`]);
    /// an announcement sent at a connection epoch below a configuration an answer named for
    /// another master (the announced configuration is at most that epoch; a tag too low from
    /// a missed `+new-epoch` only makes the core ask the sentinels); or, unknown, a master
    /// that may be older ([`maybe_older`]). Checked again when the connection is
    /// ready, as answers learned meanwhile may name newer configurations.
    ///
    /// [`older`]: Epochs::older
    /// [`maybe_older`]: Epochs::maybe_older
    pub(crate) fn refuses(&self, addr: &Addr, known: Known, in_use: Option<&Addr>) -> bool {
        match known {
            Known::Exact(e) => self.older(addr, e, in_use),
            Known::Announced(Some(h)) => self.named.iter().any(|(a, e)| a != addr && *e > h),
            Known::Announced(None) => false,
            Known::Unknown => self.maybe_older(addr, in_use),
        }
    }

    /// Whether `addr` was replaced at an epoch the core does not know (any answer naming it is
    /// taken for older).
    pub(crate) fn replaced_at_unknown(&self, addr: &Addr) -> bool {
        self.replaced.get(addr).is_some_and(Option::is_none)
    }

    /// The master in use replicates from `addr`: a configuration newer than the one in use
    /// names it, so it is no longer taken for replaced.
    pub(crate) fn overruled(&mut self, addr: &Addr) {
        self.replaced.remove(addr);
    }

    /// A sentinel named the master in use at `config_epoch`: the configurations it
    /// replaced are older (their unknown bounds become known).
    pub(crate) fn confirmed(&mut self, config_epoch: u64) {
        if config_epoch >= self.lo && self.hi.is_none_or(|h| config_epoch <= h) {
            self.lo = config_epoch;
            self.hi = Some(config_epoch);
            for bound in self.replaced.values_mut().filter(|b| b.is_none()) {
                *bound = Some(config_epoch.saturating_sub(1));
            }
        }
    }

    /// A `+switch-master old new` not older than the configuration in use, sent at the
    /// connection epoch `tag`: `old`'s configuration is older than `new`'s, whose epoch is at
    /// most `tag` (bounded too by the epoch in use when `old` is the master in use).
    pub(crate) fn switched(&mut self, old: &Addr, new: &Addr, in_use: Option<&Addr>, tag: u64) {
        let in_use_bound = if in_use == Some(old) { self.hi } else { None };
        self.replace(old, in_use_bound.max(Some(tag.saturating_sub(1))));
        self.replaced.remove(new);
    }

    /// A message sent at the connection epoch `tag` announced that a newer configuration
    /// replaced `addr` (perhaps long ago): its configurations up to `tag - 1` are older. Only
    /// tightens what is known: an unknown bound stays unknown.
    pub(crate) fn replaced_by(&mut self, addr: &Addr, tag: u64) {
        let bound = tag.saturating_sub(1);
        match self.replaced.get(addr) {
            Some(None) => {}
            Some(Some(b)) if *b >= bound => {}
            _ => self.replace(addr, Some(bound)),
        }
    }

    /// Records that a newer configuration replaced `addr`, whose configuration then had an
    /// epoch of at most `bound` (`None`: unknown, which refuses it at any epoch). The latest
    /// replacement decides, except that of two known bounds the higher one wins.
    fn replace(&mut self, addr: &Addr, bound: Option<u64>) {
        // The replaced configuration is at least as new as any the sentinels named it at.
        let floor = self.named.get(addr).copied().unwrap_or(0);
        let bound = match (self.replaced.get(addr).copied().flatten(), bound) {
            (Some(a), Some(b)) => Some(a.max(b).max(floor)),
            (_, b) => b.map(|b| b.max(floor)),
        };
        self.replaced.insert(addr.clone(), bound);
    }

    /// The master in use moved from `old` to `new`, whose epoch is `known`.
    pub(crate) fn moved(&mut self, old: Option<&Addr>, new: &Addr, known: Known) {
        if let Some(old) = old.filter(|o| *o != new) {
            // Older than the new configuration, which is at most its announcement's epoch
            // (and may have replaced a newer configuration of `old` than the core knew). A
            // move without any epoch (a replica's watch saw the promotion) may follow
            // failovers the core never heard of, `old` re-promoted among them: its bound is
            // unknown until a sentinel names the master in use (or the stale check proves an
            // answer naming `old` newer).
            let bound = match known {
                Known::Exact(e) | Known::Announced(Some(e)) => {
                    self.hi.max(Some(e.saturating_sub(1)))
                }
                Known::Announced(None) => None,
                Known::Unknown => self.hi,
            };
            self.replace(old, bound);
        }
        self.replaced.remove(new);
        (self.lo, self.hi) = match known {
            Known::Exact(e) => (e, Some(e)),
            // Newer than the configuration it replaces.
            Known::Announced(hi) => {
                let lo = self.lo + u64::from(old.is_some());
                (lo, hi.filter(|h| *h >= lo))
            }
            Known::Unknown => (self.lo + u64::from(old.is_some()), None),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(port: u16) -> Addr {
        Addr::new("127.0.0.1", port)
    }

    #[test]
    fn lagging_answers_and_late_messages() {
        let mut e = Epochs::default();
        e.moved(None, &a(1), Known::Exact(3));
        assert_eq!(e.in_use(), Some(3));
        // Another master at an epoch not above ours: a sentinel that has not caught up.
        assert!(e.older(&a(2), 2, Some(&a(1))));
        assert!(e.older(&a(2), 3, Some(&a(1))));
        assert!(!e.older(&a(2), 4, Some(&a(1))));
        assert!(
            !e.older(&a(1), 1, Some(&a(1))),
            "the master in use, at any epoch"
        );
        // Messages sent at an epoch not above ours.
        assert!(e.possibly_late(Some(3), None));
        assert!(!e.possibly_late(Some(4), None));
        assert!(e.possibly_late(None, None));
        // An early switch to 2, announced at epoch 4.
        e.moved(Some(&a(1)), &a(2), Known::Announced(Some(4)));
        assert_eq!(e.in_use(), Some(4), "above 3, at most 4");
        assert!(
            e.older(&a(1), 3, Some(&a(2))),
            "the replaced master at its epoch"
        );
        assert!(e.possibly_late(Some(4), None));
        // A fail-back to 1 at a newer epoch is news.
        assert!(!e.older(&a(1), 5, Some(&a(2))));
        // A `+switch-master` away from the master in use, then back: the first is replaced
        // up to the epoch in use, the second is no longer replaced.
        e.switched(&a(2), &a(1), Some(&a(2)), 4);
        assert!(e.older(&a(2), 4, Some(&a(2))));
        assert!(!e.maybe_older(&a(1), Some(&a(2))));
    }

    #[test]
    fn unknown_bounds_until_confirmed() {
        let mut u = Epochs::default();
        u.moved(None, &a(1), Known::Exact(1));
        u.moved(Some(&a(1)), &a(2), Known::Announced(None));
        u.moved(Some(&a(2)), &a(3), Known::Unknown);
        assert!(
            u.older(&a(2), 9, Some(&a(3))),
            "replaced at an unknown epoch"
        );
        assert!(u.maybe_older(&a(2), Some(&a(3))));
        // A configuration named at a higher epoch makes every other master's lower ones older.
        u.named(&a(4), 8);
        assert!(u.older(&a(1), 7, Some(&a(3))));
        assert!(!u.older(&a(4), 8, Some(&a(3))));
        // The master in use confirmed: unknown bounds become known.
        u.confirmed(5);
        assert!(u.older(&a(2), 4, Some(&a(3))));
        assert!(!u.older(&a(2), 9, Some(&a(3))));
    }

    #[test]
    fn refusals_with_what_answers_named_since() {
        let mut e = Epochs::default();
        e.moved(None, &a(1), Known::Exact(0));
        // Nothing named above the epoch in use: an unnamed master may be followed.
        assert!(!e.refuses(&a(3), Known::Unknown, Some(&a(1))));
        // A (late) answer names 2 at epoch 2: an unnamed master, known no better than the
        // one in use, may be older; one announced at an epoch up to 1 is; 2 itself is not.
        e.named(&a(2), 2);
        assert!(e.refuses(&a(3), Known::Unknown, Some(&a(1))));
        assert!(e.refuses(&a(3), Known::Announced(Some(1)), Some(&a(1))));
        assert!(!e.refuses(&a(3), Known::Announced(Some(2)), Some(&a(1))));
        assert!(!e.refuses(&a(2), Known::Exact(2), Some(&a(1))));
        assert!(!e.refuses(&a(2), Known::Unknown, Some(&a(1))));
        // A target chosen at epoch 1 is refused once 2 is known (re-checked before use).
        assert!(e.refuses(&a(3), Known::Exact(1), Some(&a(1))));
        // The master in use is known at its epoch: re-verified while nothing newer is named
        // elsewhere.
        assert!(e.maybe_older(&a(1), Some(&a(1))));
        let mut f = Epochs::default();
        f.moved(None, &a(1), Known::Exact(3));
        f.named(&a(1), 3);
        assert!(!f.maybe_older(&a(1), Some(&a(1))));
    }

    #[test]
    fn news_is_above_the_upper_bound_in_use() {
        let mut e = Epochs::default();
        e.moved(None, &a(1), Known::Exact(0));
        // The master in use promoted again by a failover announced at epoch 3: at 1..=3.
        e.moved(Some(&a(1)), &a(1), Known::Announced(Some(3)));
        assert_eq!(e.in_use(), None);
        // A message sent at 2 may be a late copy of an older failover; at 4 it is news.
        assert!(e.possibly_late(Some(2), None));
        assert!(e.possibly_late(Some(3), None));
        assert!(!e.possibly_late(Some(4), None));
        // Without an upper bound, the lower one decides.
        let mut u = Epochs::default();
        u.moved(None, &a(1), Known::Exact(1));
        u.moved(Some(&a(1)), &a(2), Known::Unknown);
        assert!(u.possibly_late(Some(2), None));
        assert!(!u.possibly_late(Some(3), None));
    }
}
