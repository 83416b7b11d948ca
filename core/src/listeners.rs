//! One pub/sub listener per sentinel: subscribe, health-check, backoff, and message dispatch.

use crate::action::Action;
use crate::addr::Addr;
use crate::backoff::Backoff;
use crate::config::Config;
use crate::event::{DetectionPath, Event, IgnoreReason};
use crate::machine::Core;
use crate::op::{OpId, Pending};
use crate::parse::{Message, parse_message, parse_sentinels_reply};
use crate::reply::Reply;
use crate::timers::{TimerReason, after};
use std::time::{Duration, Instant};

/// A sentinel and the state of its listener.
#[derive(Debug)]
pub(crate) struct Sentinel {
    pub(crate) addr: Addr,
    pub(crate) listener: Listener,
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
pub(crate) enum Listener {
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

impl Sentinel {
    pub(crate) fn new(addr: Addr, cfg: &Config, configured: bool) -> Self {
        Self {
            addr,
            listener: Listener::Waiting,
            backoff: Backoff::new(cfg.min_backoff, cfg.max_backoff, cfg.backoff_factor),
            configured,
            failing_since: None,
            epoch: None,
        }
    }

    /// Whether this slot holds a forgotten sentinel.
    pub(crate) fn is_forgotten(&self) -> bool {
        self.listener == Listener::Forgotten
    }

    fn op(&self) -> Option<OpId> {
        match self.listener {
            Listener::Waiting | Listener::Forgotten => None,
            Listener::Connecting { op } | Listener::Up { op, .. } => Some(op),
        }
    }
}

impl Core {
    pub(crate) fn start_listener(&mut self, i: usize, now: Instant) {
        let op = self.out.start(Pending::Listener(i));
        self.sentinels[i].listener = Listener::Connecting { op };
        self.out.timers.set(
            TimerReason::Listener(i),
            after(now, self.cfg.connect_timeout),
        );
        let sentinel = self.sentinels[i].addr.clone();
        self.out.act(Action::Subscribe { op, sentinel });
    }

    pub(crate) fn listener_subscribed(&mut self, i: usize, op: OpId, now: Instant) {
        if self.sentinels[i].listener != (Listener::Connecting { op }) {
            return;
        }
        let s = &mut self.sentinels[i];
        s.listener = Listener::Up { op, pinging: false };
        s.backoff.reset();
        s.failing_since = None;
        s.epoch = None; // a new connection: nothing announced on it yet
        let sentinel = s.addr.clone();
        self.out.timers.set(
            TimerReason::Listener(i),
            after(now, self.cfg.health_check_interval),
        );
        self.out.emit(Event::ListenerUp { sentinel });
        if self.ready {
            // Events may have been missed while this listener was down: this sentinel is
            // asked first (a failover it leads shows in its answer's flags).
            self.recheck_asking_first(Some(i), DetectionPath::ListenerReconnect, false, now);
        }
    }

    pub(crate) fn listener_pong(&mut self, i: usize, now: Instant) {
        if let Listener::Up { pinging, .. } = &mut self.sentinels[i].listener {
            *pinging = false;
            self.out.timers.set(
                TimerReason::Listener(i),
                after(now, self.cfg.health_check_interval),
            );
        }
    }

    /// A listener failed: it reconnects at once if it was subscribed (a sentinel restarted, a
    /// connection reset: the first attempt is not delayed, so a failover that sentinel leads
    /// is heard), then after its jittered backoff.
    pub(crate) fn fail_listener(&mut self, i: usize, reason: String, close: bool, now: Instant) {
        let s = &mut self.sentinels[i];
        let op = s.op();
        let was_up = matches!(s.listener, Listener::Up { .. });
        if let Some(op) = op {
            self.out.ops.finish(op);
            if close {
                self.out.act(Action::CloseListener { op });
            }
        }
        let s = &mut self.sentinels[i];
        let since = *s.failing_since.get_or_insert(now);
        if !s.configured && now.saturating_duration_since(since) >= self.cfg.forget_sentinel_after {
            let reason = format!(
                "unreachable for {:?} (forget_sentinel_after): {reason}",
                now.saturating_duration_since(since)
            );
            return self.forget_sentinel(i, reason);
        }
        s.listener = Listener::Waiting;
        let retry_in = if was_up {
            Duration::ZERO
        } else {
            s.backoff.next_delay(&mut self.rng)
        };
        let sentinel = s.addr.clone();
        self.out
            .timers
            .set(TimerReason::Listener(i), after(now, retry_in));
        self.out.emit(Event::ListenerDown {
            sentinel,
            reason,
            retry_in,
        });
    }

    /// Stops listening to a learned sentinel and frees its slot.
    fn forget_sentinel(&mut self, i: usize, reason: String) {
        if let Some(op) = self.sentinels[i].op() {
            self.out.ops.finish(op);
            self.out.act(Action::CloseListener { op });
        }
        self.sentinels[i].listener = Listener::Forgotten;
        self.out.timers.cancel(TimerReason::Listener(i));
        self.order.retain(|&j| j != i);
        if let Some((op, _)) = self.refresh.take_if(|(_, from)| *from == i) {
            self.out.ops.finish(op);
        }
        let sentinel = self.sentinels[i].addr.clone();
        self.out.emit(Event::SentinelForgotten { sentinel, reason });
    }

    pub(crate) fn listener_timer(&mut self, i: usize, now: Instant) {
        let Some(s) = self.sentinels.get(i) else {
            return;
        };
        match s.listener {
            Listener::Forgotten => {}
            Listener::Waiting => self.start_listener(i, now),
            Listener::Connecting { .. } => {
                let reason = format!("no subscription within {:?}", self.cfg.connect_timeout);
                self.fail_listener(i, reason, true, now);
            }
            Listener::Up { op, pinging: false } => {
                self.sentinels[i].listener = Listener::Up { op, pinging: true };
                self.out
                    .timers
                    .set(TimerReason::Listener(i), after(now, self.cfg.query_timeout));
                self.out.act(Action::PingListener { op });
            }
            Listener::Up { pinging: true, .. } => {
                let reason = format!(
                    "health check: no PONG within {:?} after {:?} of silence",
                    self.cfg.query_timeout, self.cfg.health_check_interval
                );
                self.fail_listener(i, reason, true, now);
            }
        }
    }

    pub(crate) fn listener_message(
        &mut self,
        i: usize,
        channel: &[u8],
        payload: &[u8],
        now: Instant,
    ) {
        if let Listener::Up { pinging, .. } = &mut self.sentinels[i].listener {
            // Any traffic proves the connection alive.
            *pinging = false;
            self.out.timers.set(
                TimerReason::Listener(i),
                after(now, self.cfg.health_check_interval),
            );
        }
        let sentinel = self.sentinels[i].addr.clone();
        let ignored = |reason| Event::MessageIgnored {
            sentinel: sentinel.clone(),
            channel: String::from_utf8_lossy(channel).into_owned(),
            reason,
        };
        let message = match parse_message(channel, payload) {
            Ok(Some(m)) => m.nat(&self.cfg.nat),
            Ok(None) => return,
            Err(e) => return self.out.emit(ignored(IgnoreReason::Malformed(e.0))),
        };
        if let Some(other) = message.service().filter(|s| *s != self.cfg.service_name) {
            return self
                .out
                .emit(ignored(IgnoreReason::OtherService(other.to_owned())));
        }
        let tag = self.sentinels[i].epoch;
        let outcome = match message {
            Message::Epoch { epoch } => {
                self.sentinels[i].epoch = Some(tag.map_or(epoch, |t| t.max(epoch)));
                self.history.epoch_learned(&sentinel, epoch);
                return;
            }
            Message::SwitchMaster { old, new, .. } => {
                self.on_switch_master(old, new, &sentinel, tag, now)
            }
            Message::Failover {
                signal,
                channel,
                master,
                replica,
                ..
            } => self.on_failover_signal(signal, channel, master, replica, &sentinel, tag, now),
            // The replicas to watch changed: ask for them again.
            Message::Replicas { master, .. } if self.master.as_ref() == Some(&master) => {
                self.query_replicas();
                Ok(())
            }
            Message::Replicas { master, .. } => Err(IgnoreReason::NotOurMaster(master)),
        };
        if let Err(reason) = outcome {
            self.out.emit(ignored(reason));
        }
    }

    /// After a successful discovery: learn the sentinels this one knows.
    pub(crate) fn refresh_sentinels(&mut self, from: usize) {
        if !self.cfg.refresh_sentinels {
            return;
        }
        // A newer query supersedes one still in flight (its late reply is ignored).
        if let Some((old, _)) = self.refresh.take() {
            self.out.ops.finish(old);
        }
        let op = self.out.start(Pending::SentinelsQuery);
        self.refresh = Some((op, from));
        self.out.act(Action::QuerySentinels {
            op,
            sentinel: self.sentinels[from].addr.clone(),
            service: self.cfg.service_name.clone(),
        });
    }

    /// `SENTINEL SENTINELS` from sentinel `from`: forget learned sentinels it no longer lists,
    /// learn the new ones (making room, at `max_sentinels`, by forgetting the learned sentinel
    /// that has been unreachable the longest).
    pub(crate) fn sentinels_reply(
        &mut self,
        from: Option<usize>,
        reply: Result<Reply, String>,
        now: Instant,
    ) {
        // A failed refresh is harmless: the sentinels known so far are still used.
        let Ok(Ok(found)) = reply.map(|r| parse_sentinels_reply(&r)) else {
            return;
        };
        let found: Vec<Addr> = found.iter().map(|a| self.cfg.nat.map(a)).collect();
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
                self.forget_sentinel(i, format!("no longer listed by sentinel {from_addr}"));
            }
        }
        for addr in found {
            if self
                .sentinels
                .iter()
                .any(|s| s.addr == addr && !s.is_forgotten())
            {
                continue;
            }
            let live = self.sentinels.iter().filter(|s| !s.is_forgotten()).count();
            if live >= self.cfg.max_sentinels {
                let longest = (0..self.sentinels.len())
                    .filter(|&i| !self.sentinels[i].configured && !self.sentinels[i].is_forgotten())
                    .filter_map(|i| self.sentinels[i].failing_since.map(|t| (t, i)))
                    .min();
                let Some((_, i)) = longest else {
                    break; // every sentinel tracked is reachable: keep them
                };
                let reason = format!("unreachable, replaced by {addr} (max_sentinels)");
                self.forget_sentinel(i, reason);
            }
            let sentinel = Sentinel::new(addr.clone(), &self.cfg, false);
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
            self.out.emit(Event::SentinelAdded { sentinel: addr });
            self.start_listener(i, now);
        }
    }
}
