//! The sentinel table and one pub/sub listener per sentinel: subscribe, health-check, backoff,
//! the discovery order, and learning sentinels from `SENTINEL SENTINELS`. What the messages
//! mean is the core's business: a listener only hands over those about the service.

use crate::action::Action;
use crate::addr::Addr;
use crate::backoff::Backoff;
use crate::config::Config;
use crate::context::Context;
use crate::event::{Event, IgnoreReason};
use crate::op::{OpId, Pending};
use crate::parse::{SentinelMessage, parse_message, parse_sentinels_reply};
use crate::reply::Reply;
use crate::timers::{TimerReason, after};
use std::time::{Duration, Instant};

/// Every sentinel, configured then learned, with its listener; indexes are stable (a
/// forgotten sentinel's slot is reused).
#[derive(Debug)]
pub(crate) struct Listeners {
    sentinels: Vec<Sentinel>,
    /// Discovery order: indexes into `sentinels`, the last one that answered first.
    order: Vec<usize>,
    /// A `SENTINEL SENTINELS` query in flight, and the index of the sentinel asked.
    refresh: Option<(OpId, usize)>,
}

/// A sentinel and the state of its listener.
#[derive(Debug)]
struct Sentinel {
    addr: Addr,
    listener: Listener,
    backoff: Backoff,
    /// Configured (kept for good) or learned from `SENTINEL SENTINELS` (forgotten when it
    /// stays unreachable or is no longer listed).
    configured: bool,
    /// Since when its listener has failed without a successful subscription in between.
    failing_since: Option<Instant>,
    /// The sentinel's epoch as its current connection announced it (`+new-epoch`): every
    /// later message on that connection was sent at this epoch or a newer one.
    epoch: Option<u64>,
}

/// Listener state; the `Listener(i)` timer means: reconnect (Waiting), subscribe deadline
/// (Connecting), health-check ping (Up, not pinging) or ping deadline (Up, pinging).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    /// A learned sentinel that was forgotten: its slot in the table is free for the next one.
    Forgotten,
    Waiting,
    Connecting {
        op: OpId,
    },
    Up {
        op: OpId,
        pinging: bool,
    },
}

/// A message about the service that a listener heard.
#[derive(Debug)]
pub(crate) struct Heard {
    /// The sentinel that published it.
    pub(crate) sentinel: Addr,
    /// The sentinel's epoch its connection last announced (a bound of the message's epoch).
    pub(crate) tag: Option<u64>,
    /// The message, addresses NAT-mapped.
    pub(crate) message: SentinelMessage,
}

impl Sentinel {
    fn new(addr: Addr, cfg: &Config, configured: bool) -> Self {
        Self {
            addr,
            listener: Listener::Waiting,
            backoff: Backoff::new(cfg.min_backoff, cfg.max_backoff, cfg.backoff_factor),
            configured,
            failing_since: None,
            epoch: None,
        }
    }

    fn is_forgotten(&self) -> bool {
        self.listener == Listener::Forgotten
    }

    fn op(&self) -> Option<OpId> {
        match self.listener {
            Listener::Waiting | Listener::Forgotten => None,
            Listener::Connecting { op } | Listener::Up { op, .. } => Some(op),
        }
    }
}

impl Listeners {
    /// The configured sentinels, in order; no listener started yet.
    pub(crate) fn new(cfg: &Config) -> Self {
        let sentinels: Vec<Sentinel> = cfg
            .sentinels
            .iter()
            .map(|a| Sentinel::new(a.clone(), cfg, true))
            .collect();
        Self {
            order: (0..sentinels.len()).collect(),
            sentinels,
            refresh: None,
        }
    }

    /// Starts every listener.
    pub(crate) fn start_all(&mut self, now: Instant, cx: &mut Context) {
        for i in 0..self.sentinels.len() {
            self.start(i, now, cx);
        }
    }

    /// The address of sentinel `i`.
    pub(crate) fn addr(&self, i: usize) -> &Addr {
        &self.sentinels[i].addr
    }

    /// Whether slot `i` holds a forgotten sentinel.
    pub(crate) fn is_forgotten(&self, i: usize) -> bool {
        self.sentinels[i].is_forgotten()
    }

    /// The discovery order: indexes, the sentinel that answered last first.
    pub(crate) fn order(&self) -> &[usize] {
        &self.order
    }

    /// The sentinels known (configured, then learned), in table order.
    pub(crate) fn known(&self) -> impl Iterator<Item = &Addr> {
        self.sentinels
            .iter()
            .filter(|s| !s.is_forgotten())
            .map(|s| &s.addr)
    }

    /// The sentinels in discovery order.
    pub(crate) fn by_preference(&self) -> impl Iterator<Item = &Addr> {
        self.order.iter().map(|&i| &self.sentinels[i].addr)
    }

    fn start(&mut self, i: usize, now: Instant, cx: &mut Context) {
        let op = cx.start(Pending::Listener(i));
        self.sentinels[i].listener = Listener::Connecting { op };
        cx.timers
            .set(TimerReason::Listener(i), after(now, cx.cfg.connect_timeout));
        let sentinel = self.sentinels[i].addr.clone();
        cx.act(Action::Subscribe { op, sentinel });
    }

    /// Listener `i` subscribed on connection `op`; returns whether it came up (a duplicate
    /// report changes nothing).
    pub(crate) fn subscribed(
        &mut self,
        i: usize,
        op: OpId,
        now: Instant,
        cx: &mut Context,
    ) -> bool {
        let s = &mut self.sentinels[i];
        if s.listener != (Listener::Connecting { op }) {
            return false;
        }
        s.listener = Listener::Up { op, pinging: false };
        s.backoff.reset();
        s.failing_since = None;
        s.epoch = None; // a new connection: nothing announced on it yet
        cx.timers.set(
            TimerReason::Listener(i),
            after(now, cx.cfg.health_check_interval),
        );
        cx.emit(Event::ListenerUp {
            sentinel: s.addr.clone(),
        });
        true
    }

    /// Traffic on listener `i` (a pong, or any message): the connection is alive.
    pub(crate) fn alive(&mut self, i: usize, now: Instant, cx: &mut Context) {
        if let Listener::Up { pinging, .. } = &mut self.sentinels[i].listener {
            *pinging = false;
            cx.timers.set(
                TimerReason::Listener(i),
                after(now, cx.cfg.health_check_interval),
            );
        }
    }

    /// Listener `i` failed (`close`: the core gave up on it, so the runtime closes it): it
    /// reconnects at once if it was subscribed (a sentinel restarted, a connection reset: the
    /// first attempt is not delayed, so a failover that sentinel leads is heard), then after
    /// its jittered backoff. A learned sentinel failing for `forget_sentinel_after` is
    /// forgotten.
    pub(crate) fn failed(
        &mut self,
        i: usize,
        reason: String,
        close: bool,
        now: Instant,
        cx: &mut Context,
    ) {
        let s = &mut self.sentinels[i];
        let was_up = matches!(s.listener, Listener::Up { .. });
        if let Some(op) = s.op() {
            cx.ops.finish(op);
            if close {
                cx.act(Action::CloseListener { op });
            }
        }
        let since = *s.failing_since.get_or_insert(now);
        if !s.configured && now.saturating_duration_since(since) >= cx.cfg.forget_sentinel_after {
            let reason = format!(
                "unreachable for {:?} (forget_sentinel_after): {reason}",
                now.saturating_duration_since(since)
            );
            return self.forget(i, reason, cx);
        }
        s.listener = Listener::Waiting;
        let retry_in = if was_up {
            Duration::ZERO
        } else {
            s.backoff.next_delay(&mut cx.rng)
        };
        cx.timers
            .set(TimerReason::Listener(i), after(now, retry_in));
        cx.emit(Event::ListenerDown {
            sentinel: s.addr.clone(),
            reason,
            retry_in,
        });
    }

    /// Stops listening to a learned sentinel and frees its slot.
    fn forget(&mut self, i: usize, reason: String, cx: &mut Context) {
        if let Some(op) = self.sentinels[i].op() {
            cx.ops.finish(op);
            cx.act(Action::CloseListener { op });
        }
        self.sentinels[i].listener = Listener::Forgotten;
        cx.timers.cancel(TimerReason::Listener(i));
        self.order.retain(|&j| j != i);
        if let Some((op, _)) = self.refresh.take_if(|(_, from)| *from == i) {
            cx.ops.finish(op);
        }
        let sentinel = self.sentinels[i].addr.clone();
        cx.emit(Event::SentinelForgotten { sentinel, reason });
    }

    /// The `Listener(i)` deadline: reconnect, give up on a subscription or a ping, or ping.
    pub(crate) fn deadline(&mut self, i: usize, now: Instant, cx: &mut Context) {
        let Some(s) = self.sentinels.get_mut(i) else {
            return;
        };
        match s.listener {
            Listener::Forgotten => {}
            Listener::Waiting => self.start(i, now, cx),
            Listener::Connecting { .. } => {
                let reason = format!("no subscription within {:?}", cx.cfg.connect_timeout);
                self.failed(i, reason, true, now, cx);
            }
            Listener::Up { op, pinging: false } => {
                s.listener = Listener::Up { op, pinging: true };
                cx.timers
                    .set(TimerReason::Listener(i), after(now, cx.cfg.query_timeout));
                cx.act(Action::PingListener { op });
            }
            Listener::Up { pinging: true, .. } => {
                let reason = format!(
                    "health check: no PONG within {:?} after {:?} of silence",
                    cx.cfg.query_timeout, cx.cfg.health_check_interval
                );
                self.failed(i, reason, true, now, cx);
            }
        }
    }

    /// A message on listener `i`: the one about the service, if it is (unreadable messages
    /// and other services' are reported as ignored). `+new-epoch` updates the connection's
    /// epoch before it is handed over.
    pub(crate) fn message(
        &mut self,
        i: usize,
        channel: &[u8],
        payload: &[u8],
        now: Instant,
        cx: &mut Context,
    ) -> Option<Heard> {
        // Any traffic proves the connection alive.
        self.alive(i, now, cx);
        let s = &mut self.sentinels[i];
        let ignored = |reason| Event::MessageIgnored {
            sentinel: s.addr.clone(),
            channel: String::from_utf8_lossy(channel).into_owned(),
            reason,
        };
        let message = match parse_message(channel, payload) {
            Ok(Some(m)) => m.nat(&cx.cfg.nat),
            Ok(None) => return None,
            Err(e) => {
                cx.emit(ignored(IgnoreReason::Malformed(e.0)));
                return None;
            }
        };
        if let Some(other) = message.service().filter(|s| *s != cx.cfg.service_name) {
            cx.emit(ignored(IgnoreReason::OtherService(other.to_owned())));
            return None;
        }
        let tag = s.epoch;
        if let SentinelMessage::Epoch { epoch } = message {
            s.epoch = Some(tag.map_or(epoch, |t| t.max(epoch)));
        }
        Some(Heard {
            sentinel: s.addr.clone(),
            tag,
            message,
        })
    }

    /// Sentinel `i` named the master: it moves to the front of the discovery order, and the
    /// sentinels it knows are asked for (a newer query supersedes one still in flight, whose
    /// late reply is ignored).
    pub(crate) fn answered(&mut self, i: usize, cx: &mut Context) {
        if self.sentinels[i].is_forgotten() {
            return;
        }
        self.order.retain(|&j| j != i);
        self.order.insert(0, i);
        if !cx.cfg.refresh_sentinels {
            return;
        }
        if let Some((old, _)) = self.refresh.take() {
            cx.ops.finish(old);
        }
        let op = cx.start(Pending::SentinelsQuery);
        self.refresh = Some((op, i));
        cx.act(Action::QuerySentinels {
            op,
            sentinel: self.sentinels[i].addr.clone(),
            service: cx.cfg.service_name.clone(),
        });
    }

    /// The answer to `SENTINEL SENTINELS`: forget learned sentinels the sentinel asked no
    /// longer lists, learn the new ones (making room, at `max_sentinels`, by forgetting the
    /// learned sentinel that has been unreachable the longest).
    pub(crate) fn sentinels_reply(
        &mut self,
        reply: Result<Reply, String>,
        now: Instant,
        cx: &mut Context,
    ) {
        let from = self.refresh.take().map(|(_, from)| from);
        // A failed refresh is harmless: the sentinels known so far are still used.
        let Ok(Ok(found)) = reply.map(|r| parse_sentinels_reply(&r)) else {
            return;
        };
        let found: Vec<Addr> = found.iter().map(|a| cx.cfg.nat.map(a)).collect();
        let from_addr = from
            .and_then(|i| self.sentinels.get(i))
            .map(|s| s.addr.clone());
        // A sentinel that knows no peer yet (just started) proves nothing about the others.
        if !found.is_empty()
            && let Some(from_addr) = &from_addr
        {
            let unlisted: Vec<usize> = (0..self.sentinels.len())
                .filter(|&i| {
                    let s = &self.sentinels[i];
                    !s.configured
                        && !s.is_forgotten()
                        && s.addr != *from_addr
                        && !found.contains(&s.addr)
                })
                .collect();
            for i in unlisted {
                self.forget(i, format!("no longer listed by sentinel {from_addr}"), cx);
            }
        }
        for addr in found {
            if self.known().any(|a| *a == addr) {
                continue;
            }
            if self.known().count() >= cx.cfg.max_sentinels {
                let longest = (0..self.sentinels.len())
                    .filter(|&i| !self.sentinels[i].configured && !self.sentinels[i].is_forgotten())
                    .filter_map(|i| self.sentinels[i].failing_since.map(|t| (t, i)))
                    .min();
                let Some((_, i)) = longest else {
                    break; // every sentinel tracked is reachable: keep them
                };
                let reason = format!("unreachable, replaced by {addr} (max_sentinels)");
                self.forget(i, reason, cx);
            }
            let sentinel = Sentinel::new(addr.clone(), &cx.cfg, false);
            let i = match self.sentinels.iter().position(Sentinel::is_forgotten) {
                Some(i) => {
                    self.sentinels[i] = sentinel;
                    i
                }
                None => {
                    self.sentinels.push(sentinel);
                    self.sentinels.len() - 1
                }
            };
            self.order.push(i);
            cx.emit(Event::SentinelAdded { sentinel: addr });
            self.start(i, now, cx);
        }
    }
}
