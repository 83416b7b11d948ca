//! Watch connections on data nodes: one idle connection on every replica of the master in use
//! (`watch_replicas`, the list from the sentinels' `SENTINEL REPLICAS`), and one on the
//! switch's candidate. Sentinel promotes a replica with `MULTI / REPLICAOF NO ONE / CONFIG
//! REWRITE / CLIENT KILL TYPE normal / EXEC`, and re-points one the same way: every client
//! connection of the replica closes at the promotion itself. So the closing of a watch on a
//! replica that replicated from the master in use fences at once, within one round trip of the
//! promotion, whoever leads the failover and whether or not its events are heard; one `ROLE`
//! then tells a promotion (master: switch to it) from a restart or a re-pointing (replica: lift
//! the fence).

use crate::action::{Action, OpId};
use crate::addr::Addr;
use crate::backoff::Backoff;
use crate::epochs::Known;
use crate::event::DetectionPath;
use crate::machine::Core;
use crate::parse::{Role, parse_replicas_reply, parse_role};
use crate::reply::Reply;
use crate::timers::{TimerReason, after};
use std::collections::BTreeMap;
use std::time::Instant;

/// Every watch connection, and the replicas to keep watched.
#[derive(Debug, Default)]
pub(crate) struct Watches {
    /// Open watch connections (their `ROLE` may not have answered yet), by op.
    open: BTreeMap<OpId, Watch>,
    /// The replicas of the master in use to keep watched, each with its retry state.
    replicas: BTreeMap<Addr, Retry>,
    /// The `SENTINEL REPLICAS` query in flight, and the sentinels (indexes) left to ask if it
    /// fails.
    query: Option<(OpId, Vec<usize>)>,
    /// Whether another query is wanted after the one in flight.
    again: bool,
}

/// One watch connection.
#[derive(Debug, Clone)]
pub(crate) struct Watch {
    pub(crate) node: Addr,
    /// What its `ROLE` answered: `None` until it did; for a replica, the master it follows
    /// (NAT-mapped), when it said.
    role: Option<WatchRole>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum WatchRole {
    Replica { of: Option<Addr> },
    Master,
    Other,
}

/// When a replica may be watched again, and what its watches saw.
#[derive(Debug)]
struct Retry {
    backoff: Backoff,
    at: Option<Instant>,
    /// A watch's `ROLE` said replica of the master in use (since it was activated).
    confirmed: bool,
}

impl Watches {
    /// The open watch on `node` whose `ROLE` answered, if any.
    pub(crate) fn answered_on(&self, node: &Addr) -> Option<OpId> {
        self.open
            .iter()
            .find(|(_, w)| w.node == *node && w.role.is_some())
            .map(|(op, _)| *op)
    }

    /// Whether any watch is open on `node`.
    fn is_watched(&self, node: &Addr) -> bool {
        self.open.values().any(|w| w.node == *node)
    }

    /// Forgets every watch (the runtime closed every connection at shutdown).
    pub(crate) fn clear(&mut self) {
        *self = Watches::default();
    }
}

impl Core {
    /// Opens a watch on `node`; its `ROLE` reply and its closing come back under the op.
    pub(crate) fn open_watch(&mut self, op: OpId, node: Addr) {
        self.watches.open.insert(
            op,
            Watch {
                node: node.clone(),
                role: None,
            },
        );
        self.push_action(Action::Watch { op, node });
    }

    /// Closes the watch `op` (if open).
    fn close_watch(&mut self, op: OpId) {
        if self.watches.open.remove(&op).is_some() {
            self.push_action(Action::Unwatch { op });
        }
    }

    /// The `ROLE` answer of a watch (`None`: it failed). Returns the watch, if `op` is one.
    pub(crate) fn watch_answered(
        &mut self,
        op: OpId,
        reply: Option<&Reply>,
        now: Instant,
    ) -> Option<Watch> {
        let watch = self.watches.open.get_mut(&op)?;
        let role = reply.map(|r| match parse_role(r) {
            Ok(Role::Replica { master }) => WatchRole::Replica {
                of: master.map(|m| self.cfg.nat.map(&m)),
            },
            Ok(Role::Master) => WatchRole::Master,
            _ => WatchRole::Other,
        });
        watch.role = role.clone();
        let answered = watch.clone();
        let node = &answered.node;
        let in_use = self.master.clone();
        let candidate = self.is_candidate(node);
        let Some(role) = role else {
            // Never opened, or closed before it answered: retried after a delay.
            self.watches.open.remove(&op);
            self.retry_replica(node, now);
            return Some(answered);
        };
        let Some(retry) = self.watches.replicas.get_mut(node) else {
            return Some(answered);
        };
        match role {
            WatchRole::Replica { of } => {
                retry.backoff.reset();
                retry.confirmed |= of.is_some() && of == in_use;
            }
            // A replica of the master in use that says master now was promoted since (its
            // watch closed unseen, or was not open at that moment).
            WatchRole::Master if retry.confirmed && !candidate => {
                self.close_watch(op);
                if !self.replica_closed(node.clone(), now) {
                    self.retry_replica(node, now);
                }
            }
            // A master that is not the one in use: a deposed master the sentinels have not
            // reconfigured yet (their list names it already). Kept watched: its reconfiguration
            // as a replica closes the watch, and the next one says whose replica it is.
            WatchRole::Master => retry.backoff.reset(),
            // An error (loading, authentication, a sentinel's address): asked again later.
            WatchRole::Other if !candidate => {
                self.close_watch(op);
                self.retry_replica(node, now);
            }
            WatchRole::Other => {}
        }
        Some(answered)
    }

    /// The server closed the watch `op`. Returns the watch and whether its closing was
    /// unexpected: it was a replica of the master in use (a replica that followed another
    /// master is being re-pointed, which closes its connections too).
    pub(crate) fn watch_gone(&mut self, op: OpId) -> Option<(Watch, bool)> {
        let watch = self.watches.open.remove(&op)?;
        let unexpected = self.master.is_some()
            && watch.role
                == Some(WatchRole::Replica {
                    of: self.master.clone(),
                });
        Some((watch, unexpected))
    }

    /// A watched replica of the master in use closed its connections (or says master now):
    /// it was promoted, or re-pointed, or restarted. Fences at once, unless a switch already
    /// has a target or a candidate (then returns false), and asks the replica's `ROLE` on a new
    /// connection: master means a promotion (switch to it), anything else lifts a fence begun
    /// here. The replica is watched again either way.
    pub(crate) fn replica_closed(&mut self, node: Addr, now: Instant) -> bool {
        let signal = format!("replica {node} closed its connections");
        match self.switch.as_mut() {
            None => {
                self.start_switch(DetectionPath::ReplicaWatch, None, true, &signal, now);
                if let Some(sw) = self.switch.as_mut() {
                    sw.watch_only = true;
                }
            }
            // Fenced (a heard `+odown`, an application error, ...) and no candidate named:
            // this replica's closing names it.
            Some(sw) if sw.target.is_none() && sw.candidate.is_none() => {}
            // Re-verifying the master in use to lift its fence: the closing of its replica may
            // be its successor's promotion, so the re-verification no longer lifts anything.
            Some(sw)
                if sw.candidate.is_none() && sw.target.is_some() && sw.target == self.master =>
            {
                sw.target = None;
                sw.target_epoch = Known::Unknown;
                sw.verified = false;
                sw.lifting = None;
                if sw.probe.take().is_some() {
                    self.timers.cancel(TimerReason::ProbeTimeout);
                }
            }
            Some(_) => return false,
        }
        let in_use = self.master.clone();
        let Some(sw) = self.switch.as_mut() else {
            return false;
        };
        if !sw.early {
            // A switch that was looking for the master (an application error, a discovery)
            // now waits for this replica's promotion, as after an early signal.
            sw.early = true;
            sw.failing = in_use;
            self.timers.set(
                TimerReason::FenceTimeout,
                after(now, self.cfg.fence_timeout),
            );
        }
        let Some(sw) = self.switch.as_mut() else {
            return false;
        };
        sw.candidate = Some(node);
        // Its `ROLE` said replica of the master in use after that master was activated (the
        // watches start anew at every activation): a master now was promoted since, by a
        // configuration newer than the one in use.
        sw.candidate_epoch = Known::Announced(None);
        sw.candidate_from_watch = true;
        sw.candidate_since = Some(now);
        sw.denied = false;
        self.timers.cancel(TimerReason::RolePoll);
        self.candidate_watch_closed(now);
        true
    }

    /// Whether `node` is in the sentinels' list of replicas of the master in use.
    pub(crate) fn is_listed_replica(&self, node: &Addr) -> bool {
        self.watches.replicas.contains_key(node)
    }

    /// Whether the switch waits for `node` as its candidate.
    pub(crate) fn is_candidate(&self, node: &Addr) -> bool {
        self.switch
            .as_ref()
            .is_some_and(|sw| sw.target.is_none() && sw.candidate.as_ref() == Some(node))
    }

    /// `node` may be watched again after the next delay of its backoff (at once after its
    /// first failure since it was last watched, so a re-pointed or restarted replica is soon
    /// watched again).
    fn retry_replica(&mut self, node: &Addr, now: Instant) {
        if let Some(retry) = self.watches.replicas.get_mut(node) {
            let delay = retry.backoff.next_delay(&mut self.rng);
            retry.at = Some(after(now, delay));
        }
    }

    /// After a closing: the replica is watched again at once.
    pub(crate) fn rewatch_now(&mut self, node: &Addr) {
        if let Some(retry) = self.watches.replicas.get_mut(node) {
            retry.at = None;
        }
    }

    /// Asks the sentinels, in discovery order, for the replicas of the service's master: one
    /// query at a time, the next sentinel when one fails, and one more query after the one in
    /// flight when asked again meanwhile.
    pub(crate) fn query_replicas(&mut self) {
        if !self.cfg.watch_replicas || self.master.is_none() {
            return;
        }
        if self.watches.query.is_some() {
            self.watches.again = true;
            return;
        }
        self.watches.again = false;
        let order: Vec<usize> = self.order.iter().rev().copied().collect();
        self.ask_replicas(order);
    }

    /// Asks the last sentinel of `left` (the others are asked if it fails).
    fn ask_replicas(&mut self, mut left: Vec<usize>) {
        let Some(i) =
            std::iter::from_fn(|| left.pop()).find(|&i| !self.sentinels[i].is_forgotten())
        else {
            return;
        };
        let op = self.op();
        self.watches.query = Some((op, left));
        self.push_action(Action::QueryReplicas {
            op,
            sentinel: self.sentinels[i].addr.clone(),
            service: self.cfg.service_name.clone(),
        });
    }

    /// Whether `op` is the replicas query in flight.
    pub(crate) fn is_replicas_query(&self, op: OpId) -> bool {
        self.watches.query.as_ref().is_some_and(|(q, _)| *q == op)
    }

    /// The sentinels' replicas of the master: those not flagged down (NAT-mapped), but the
    /// master in use, are the replicas to watch, each at once if not watched already. A failed query asks the next sentinel; when none
    /// answers, the list stays as it was until the next reason to ask.
    pub(crate) fn replicas_reply(&mut self, reply: Result<Reply, String>) {
        let Some((_, left)) = self.watches.query.take() else {
            return;
        };
        let answer = reply.map(|r| parse_replicas_reply(&r));
        if !matches!(answer, Ok(Ok(_))) && !left.is_empty() {
            return self.ask_replicas(left);
        }
        if let Ok(Ok(found)) = answer {
            let found: Vec<Addr> = found
                .into_iter()
                .filter(|r| !r.down)
                .map(|r| self.cfg.nat.map(&r.addr))
                .filter(|a| self.master.as_ref() != Some(a))
                .collect();
            self.watches.replicas.retain(|a, _| found.contains(a));
            for addr in found {
                let (min, max, factor) = (
                    self.cfg.retry_delay,
                    self.cfg.max_retry_delay,
                    self.cfg.backoff_factor,
                );
                // Listed anew: watched at once (a `+convert-to-slave` made a deposed master a
                // replica, say); its backoff goes on growing if it still cannot be watched.
                self.watches
                    .replicas
                    .entry(addr)
                    .or_insert(Retry {
                        backoff: Backoff::new(min, max, factor),
                        at: None,
                        confirmed: false,
                    })
                    .at = None;
            }
        }
        if self.watches.again {
            self.query_replicas();
        }
    }

    /// The master in use changed: the replicas watched were those of the old one. Their
    /// watches close; the new master's replicas are asked for when the switch completes.
    pub(crate) fn forget_replicas(&mut self) {
        self.watches.replicas.clear();
        self.timers.cancel(TimerReason::WatchRetry);
    }

    /// Keeps the watches in line with what is wanted (the epilogue of every input): closes
    /// those on nodes that are neither a replica to watch nor the switch's candidate, opens
    /// one on every replica to watch that has none and whose retry time came, and sets the
    /// retry timer for the others.
    pub(crate) fn tend_watches(&mut self, now: Instant) {
        let unwanted: Vec<OpId> = self
            .watches
            .open
            .iter()
            .filter(|(_, w)| {
                !self.watches.replicas.contains_key(&w.node) && !self.is_candidate(&w.node)
            })
            .map(|(op, _)| *op)
            .collect();
        for op in unwanted {
            self.close_watch(op);
        }
        // While a switch moves to a target, no new watch: the replicas change with it.
        if self.switch.as_ref().is_some_and(|sw| sw.target.is_some()) {
            return;
        }
        let mut next: Option<Instant> = None;
        let due: Vec<Addr> = self
            .watches
            .replicas
            .iter()
            .filter(|(a, _)| !self.watches.is_watched(a) && !self.is_candidate(a))
            .filter_map(|(a, r)| match r.at {
                Some(at) if at > now => {
                    next = Some(next.map_or(at, |n| n.min(at)));
                    None
                }
                _ => Some(a.clone()),
            })
            .collect();
        for node in due {
            let op = self.op();
            self.open_watch(op, node);
        }
        match next {
            Some(at) => self.timers.set(TimerReason::WatchRetry, at),
            None => self.timers.cancel(TimerReason::WatchRetry),
        }
    }
}
