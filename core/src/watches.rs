//! Watch connections on data nodes: one idle connection on every replica of the master in use
//! (`watch_replicas`, the list from the sentinels' `SENTINEL REPLICAS`), and one on the
//! switch's candidate. Sentinel promotes a replica with `MULTI / REPLICAOF NO ONE / CONFIG
//! REWRITE / CLIENT KILL TYPE normal / EXEC`, and re-points one the same way: every client
//! connection of the replica closes at the promotion itself. So the closing of a watch on a
//! replica that replicated from the master in use fences at once, within one round trip of the
//! promotion, whoever leads the failover and whether or not its events are heard; one `ROLE`
//! then tells a promotion (master: switch to it) from a restart or a re-pointing (replica: lift
//! the fence).

use crate::action::Action;
use crate::addr::Addr;
use crate::backoff::Backoff;
use crate::context::Context;
use crate::listeners::Listeners;
use crate::op::{OpId, Pending};
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
struct Watch {
    node: Addr,
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
    /// Opens a watch on `node` (`op` is pending as a watch, or as a candidate poll on a
    /// watch connection); its `ROLE` reply and its closing come back under the op.
    pub(crate) fn open(&mut self, op: OpId, node: Addr, cx: &mut Context) {
        self.open.insert(
            op,
            Watch {
                node: node.clone(),
                role: None,
            },
        );
        cx.act(Action::Watch { op, node });
    }

    /// Closes the watch `op` (if open).
    fn close(&mut self, op: OpId, cx: &mut Context) {
        if self.open.remove(&op).is_some() {
            cx.ops.watch_gone(op);
            cx.act(Action::Unwatch { op });
        }
    }

    /// The `ROLE` answer of the watch `op` (`None`: it failed). `candidate` is the switch's
    /// candidate, if it waits for one. Returns the node when a replica of the master in use
    /// says master now: it was promoted since (its watch closed unseen, or was not open at
    /// that moment), and its watch is closed.
    pub(crate) fn answered(
        &mut self,
        op: OpId,
        reply: Option<&Reply>,
        in_use: Option<&Addr>,
        candidate: Option<&Addr>,
        now: Instant,
        cx: &mut Context,
    ) -> Option<Addr> {
        let watch = self.open.get_mut(&op)?;
        let role = reply.map(|r| match parse_role(r) {
            Ok(Role::Replica { master }) => WatchRole::Replica {
                of: master.map(|m| cx.cfg.nat.map(&m)),
            },
            Ok(Role::Master) => WatchRole::Master,
            _ => WatchRole::Other,
        });
        watch.role = role.clone();
        let node = watch.node.clone();
        let candidate = candidate == Some(&node);
        let Some(role) = role else {
            // Never opened, or closed before it answered: retried after a delay.
            self.open.remove(&op);
            cx.ops.watch_gone(op);
            self.retry(&node, now, cx);
            return None;
        };
        let retry = self.replicas.get_mut(&node)?;
        match role {
            WatchRole::Replica { of } => {
                retry.backoff.reset();
                retry.confirmed |= of.is_some() && of.as_ref() == in_use;
            }
            WatchRole::Master if retry.confirmed && !candidate => {
                self.close(op, cx);
                return Some(node);
            }
            // A master that is not the one in use: a deposed master the sentinels have not
            // reconfigured yet (their list names it already). Kept watched: its reconfiguration
            // as a replica closes the watch, and the next one says whose replica it is.
            WatchRole::Master => retry.backoff.reset(),
            // An error (loading, authentication, a sentinel's address): asked again later.
            WatchRole::Other if !candidate => {
                self.close(op, cx);
                self.retry(&node, now, cx);
            }
            WatchRole::Other => {}
        }
        None
    }

    /// The server closed the watch `op`. Returns its node and whether its closing was
    /// unexpected: it was a replica of `in_use`, the master in use (a replica that followed
    /// another master is being re-pointed, which closes its connections too).
    pub(crate) fn gone(
        &mut self,
        op: OpId,
        in_use: Option<&Addr>,
        cx: &mut Context,
    ) -> Option<(Addr, bool)> {
        let watch = self.open.remove(&op)?;
        cx.ops.watch_gone(op);
        let unexpected = in_use.is_some()
            && watch.role
                == Some(WatchRole::Replica {
                    of: in_use.cloned(),
                });
        Some((watch.node, unexpected))
    }

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

    /// Whether `node` is in the sentinels' list of replicas of the master in use.
    pub(crate) fn is_listed(&self, node: &Addr) -> bool {
        self.replicas.contains_key(node)
    }

    /// `node` may be watched again after the next delay of its backoff (at once after its
    /// first failure since it was last watched, so a re-pointed or restarted replica is soon
    /// watched again).
    pub(crate) fn retry(&mut self, node: &Addr, now: Instant, cx: &mut Context) {
        if let Some(retry) = self.replicas.get_mut(node) {
            let delay = retry.backoff.next_delay(&mut cx.rng);
            retry.at = Some(after(now, delay));
        }
    }

    /// After a closing: the replica is watched again at once.
    pub(crate) fn rewatch_now(&mut self, node: &Addr) {
        if let Some(retry) = self.replicas.get_mut(node) {
            retry.at = None;
        }
    }

    /// Asks the sentinels, in discovery order, for the replicas of `in_use`, the master in use:
    /// one query at a time, the next sentinel when one fails, and one more query after the
    /// one in flight when asked again meanwhile.
    pub(crate) fn query(&mut self, in_use: Option<&Addr>, sentinels: &Listeners, cx: &mut Context) {
        if !cx.cfg.watch_replicas || in_use.is_none() {
            return;
        }
        if self.query.is_some() {
            self.again = true;
            return;
        }
        self.again = false;
        let order: Vec<usize> = sentinels.order().iter().rev().copied().collect();
        self.ask(order, sentinels, cx);
    }

    /// Asks the last sentinel of `left` (the others are asked if it fails).
    fn ask(&mut self, mut left: Vec<usize>, sentinels: &Listeners, cx: &mut Context) {
        let Some(i) = std::iter::from_fn(|| left.pop()).find(|&i| !sentinels.is_forgotten(i))
        else {
            return;
        };
        let op = cx.start(Pending::ReplicasQuery);
        self.query = Some((op, left));
        cx.act(Action::QueryReplicas {
            op,
            sentinel: sentinels.addr(i).clone(),
            service: cx.cfg.service_name.clone(),
        });
    }

    /// The sentinels' replicas of `in_use`: those not flagged down (NAT-mapped), but the master
    /// in use, are the replicas to watch, each at once if not watched already. A failed query
    /// asks the next sentinel; when none answers, the list stays as it was until the next
    /// reason to ask.
    pub(crate) fn replicas_reply(
        &mut self,
        reply: Result<Reply, String>,
        in_use: Option<&Addr>,
        sentinels: &Listeners,
        cx: &mut Context,
    ) {
        let Some((_, left)) = self.query.take() else {
            return;
        };
        let answer = reply.map(|r| parse_replicas_reply(&r));
        if !matches!(answer, Ok(Ok(_))) && !left.is_empty() {
            return self.ask(left, sentinels, cx);
        }
        if let Ok(Ok(found)) = answer {
            let found: Vec<Addr> = found
                .into_iter()
                .filter(|r| !r.down)
                .map(|r| cx.cfg.nat.map(&r.addr))
                .filter(|a| in_use != Some(a))
                .collect();
            self.replicas.retain(|a, _| found.contains(a));
            for addr in found {
                // Listed anew: watched at once (a `+convert-to-slave` made a deposed master a
                // replica, say); its backoff goes on growing if it still cannot be watched.
                self.replicas
                    .entry(addr)
                    .or_insert(Retry {
                        backoff: Backoff::new(
                            cx.cfg.retry_delay,
                            cx.cfg.max_retry_delay,
                            cx.cfg.backoff_factor,
                        ),
                        at: None,
                        confirmed: false,
                    })
                    .at = None;
            }
        }
        if self.again {
            self.query(in_use, sentinels, cx);
        }
    }

    /// The master in use changed: the replicas watched were those of the old one. Their
    /// watches close; the new master's replicas are asked for when the switch completes.
    pub(crate) fn forget_replicas(&mut self, cx: &mut Context) {
        self.replicas.clear();
        cx.timers.cancel(TimerReason::WatchRetry);
    }

    /// Keeps the watches in line with what is wanted (the epilogue of every input): closes
    /// those on nodes that are neither a replica to watch nor `candidate` (the switch's), opens
    /// one on every replica to watch that has none and whose retry time came, and sets the
    /// retry timer for the others. While the switch moves to a target (`moving`), no new
    /// watch: the replicas change with it.
    pub(crate) fn tend(
        &mut self,
        candidate: Option<&Addr>,
        moving: bool,
        now: Instant,
        cx: &mut Context,
    ) {
        let wanted = |node: &Addr, replicas: &BTreeMap<Addr, Retry>| {
            replicas.contains_key(node) || candidate == Some(node)
        };
        let unwanted: Vec<OpId> = self
            .open
            .iter()
            .filter(|(_, w)| !wanted(&w.node, &self.replicas))
            .map(|(op, _)| *op)
            .collect();
        for op in unwanted {
            self.close(op, cx);
        }
        if moving {
            return;
        }
        let mut next: Option<Instant> = None;
        let due: Vec<Addr> = self
            .replicas
            .iter()
            .filter(|(a, _)| !self.is_watched(a) && candidate != Some(*a))
            .filter_map(|(a, r)| match r.at {
                Some(at) if at > now => {
                    next = Some(next.map_or(at, |n| n.min(at)));
                    None
                }
                _ => Some(a.clone()),
            })
            .collect();
        for node in due {
            let op = cx.start(Pending::Watch);
            self.open(op, node, cx);
        }
        match next {
            Some(at) => cx.timers.set(TimerReason::WatchRetry, at),
            None => cx.timers.cancel(TimerReason::WatchRetry),
        }
    }

    /// Forgets every watch (the runtime closes every connection at shutdown).
    pub(crate) fn clear(&mut self) {
        *self = Watches::default();
    }
}
