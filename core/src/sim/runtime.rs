//! The simulated runtime: executes the core's actions against the world and feeds the results
//! back, as a real shim would, with network latency and the injected faults.

use super::world::Health;
use super::{Due, Input, PauseBehaviour, Sim, Violation};
use crate::action::Action;
use crate::addr::Addr;
use crate::event::Event;
use crate::input::{Input as CoreInput, IoError};
use crate::op::OpId;
use crate::parse::{FailoverSignal, SentinelMessage, parse_message};
use crate::reply::Reply;
use std::time::Duration;

const REFUSED: &str = "connection refused";

impl Sim {
    /// Feeds one input to the core.
    pub(super) fn feed(&mut self, input: Input) -> Result<(), Violation> {
        self.stats.inputs += 1;
        let now = self.now;
        match input {
            Input::Subscribed(op) => {
                if self.subs.contains_key(&op) {
                    self.log(format!("in  subscribed {op}"));
                    self.core.handle(now, CoreInput::Subscribed { op });
                }
            }
            Input::Message(op, channel, payload, f) => {
                if !self.subs.contains_key(&op) {
                    return Ok(()); // the connection is gone
                }
                self.log(format!(
                    "in  message {op} {} {}",
                    String::from_utf8_lossy(&channel),
                    String::from_utf8_lossy(&payload)
                ));
                if channel == b"+new-epoch"
                    && let Some(e) = std::str::from_utf8(&payload)
                        .ok()
                        .and_then(|p| p.parse::<u64>().ok())
                {
                    let last = self.conn_epochs.entry(op).or_insert(e);
                    *last = (*last).max(e);
                }
                if let Some(f) = f {
                    self.note_signal(f, &channel, &payload);
                    // The core sees the epoch of a `+switch-master` when its connection
                    // announced it (`+new-epoch`) just before.
                    let epoch = self.world.failovers[f].epoch;
                    if channel == b"+switch-master" && self.conn_epochs.get(&op) == Some(&epoch) {
                        self.oracle.seen_config_epoch = self.oracle.seen_config_epoch.max(epoch);
                    }
                }
                self.note_reported(&channel, &payload);
                self.core.handle(
                    now,
                    CoreInput::Message {
                        op,
                        channel,
                        payload,
                    },
                );
            }
            Input::ListenerFailed(op, reason) => {
                self.log(format!("in  listener failed {op}: {reason}"));
                let error = IoError::unreachable(reason);
                self.core
                    .handle(now, CoreInput::ListenerFailed { op, error });
            }
            Input::Pong(op) => {
                if self.subs.contains_key(&op) {
                    self.core.handle(now, CoreInput::Pong { op });
                }
            }
            Input::SentinelReply(op, reply) => {
                self.log(format!("in  sentinel reply {op} {}", show(&reply)));
                if let Ok(Ok(crate::parse::MasterAnswer::Known(info))) =
                    reply.as_ref().map(crate::parse::parse_master_reply)
                {
                    let addr = self.core.config().nat.map(&info.addr);
                    self.oracle.reported.insert(addr);
                    let epoch = info.config_epoch.unwrap_or(0);
                    self.oracle.seen_config_epoch = self.oracle.seen_config_epoch.max(epoch);
                }
                self.core
                    .handle(now, CoreInput::SentinelReply { op, reply });
            }
            Input::NodeReply(op, reply) => {
                self.log(format!("in  node reply {op} {}", show(&reply)));
                self.core.handle(now, CoreInput::NodeReply { op, reply });
            }
            Input::Backlog(op, result) => {
                self.log(format!(
                    "in  backlog {op}: {}",
                    result
                        .as_ref()
                        .map_or_else(|e| e.to_string(), |b| format!("{} bytes", b.len()))
                ));
                self.core.handle(now, CoreInput::Backlog { op, result });
            }
            Input::HandedBack(op) => {
                self.log(format!("in  handed back {op}"));
                self.oracle.handed_back(op);
                self.core.handle(now, CoreInput::HandedBack { op });
            }
            Input::ResetDone(op) => {
                self.oracle.reset_done(op, true);
                self.core.handle(now, CoreInput::Activated { op });
            }
            Input::ResetFailed(op) => {
                self.log(format!("in  reset failed {op}"));
                self.oracle.reset_done(op, false);
                let reason = "no prepared connection (injected)".to_owned();
                self.core
                    .handle(now, CoreInput::ActivationFailed { op, reason });
            }
            Input::WatchClosed(op) => {
                self.log(format!("in  watch closed {op}"));
                let seen = self.note_promotion_close(op);
                self.core.handle(now, CoreInput::WatchClosed { op });
                if let Some(old) = seen
                    && !self.core.is_fenced()
                    && self.core.master() == Some(&old)
                {
                    let what = format!(
                        "a promotion closed the watch {op} on a replica of {old}, the master in \
                         use, and the core did not fence"
                    );
                    return Err(self.violation(what));
                }
            }
            Input::Paused(op) => {
                self.log(format!("in  paused {op}"));
                self.stats.pauses += 1;
                self.oracle.paused(op);
                self.core.handle(now, CoreInput::Paused { op });
            }
            Input::AppError(node, kind) => {
                self.log(format!("in  app error {kind:?} on {node}"));
                self.core.handle(now, CoreInput::AppError { node, kind });
            }
        }
        Ok(())
    }

    /// A failover signal reached the core: from now on, writes to the old master count as a
    /// violation (when the core was using it, or was switching).
    fn note_signal(&mut self, f: usize, channel: &[u8], payload: &[u8]) {
        // Only early signals count: `+switch-master` comes after the promotion, so writes
        // before it reaches the core are the documented cost of missing the early signals.
        let relevant = matches!(
            parse_message(channel, payload),
            Ok(Some(SentinelMessage::Failover {
                signal: FailoverSignal::Failover | FailoverSignal::Candidate,
                ..
            }))
        );
        let old = &self.world.nodes[self.world.failovers[f].old].reachable;
        let using_old = self.core.master() == Some(old) || self.core.is_fenced();
        if relevant && using_old && self.world.failovers[f].signal_seen_at.is_none() {
            self.world.failovers[f].signal_seen_at = Some(self.now);
        }
    }

    /// A watch a promotion closed reaches the core: when it watched the promoted replica while
    /// that replica followed the master the core uses (and `watch_replicas` is on), the
    /// promotion is observable from now on, so writes the old master acknowledges after it
    /// count as lost (see `check_lost_write`), as after an early signal.
    /// Returns the old master when the promotion became observable with this closing.
    fn note_promotion_close(&mut self, op: OpId) -> Option<Addr> {
        let (f, follows) = self.promotion_closes.remove(&op)?;
        let old = self.world.failovers[f].old;
        let in_use = self.core.master().and_then(|m| self.world.node_at(m));
        if self.core.config().watch_replicas
            && follows == Some(old)
            && in_use == Some(old)
            && self.world.failovers[f].signal_seen_at.is_none()
        {
            self.world.failovers[f].signal_seen_at = Some(self.now);
            self.stats.promotions_seen_by_watch += 1;
            return Some(self.world.nodes[old].reachable.clone());
        }
        None
    }

    /// Drains events then actions, checking each against the oracles and executing actions.
    pub(super) fn drain(&mut self) -> Result<(), Violation> {
        loop {
            while let Some(e) = self.core.poll_event() {
                self.log(format!("event {e:?}"));
                if let Event::SwitchCompleted {
                    old: Some(_), path, ..
                } = &e
                {
                    self.stats.switches += 1;
                    if *path == crate::event::DetectionPath::ReplicaWatch {
                        self.stats.replica_watch_switches += 1;
                    }
                }
                if let Event::WritesLost { commands, .. } = &e {
                    self.stats.writes_lost_events += 1;
                    self.stats.writes_handed_back += u64::from(commands.is_some());
                    if let Err(what) = self.check_writes_lost(&e) {
                        return Err(self.violation(what));
                    }
                }
                if let Err(what) = self.oracle.event(&e, self.now) {
                    return Err(self.violation(what));
                }
            }
            let Some(a) = self.core.poll_action() else {
                return Ok(());
            };
            self.stats.actions += 1;
            // Never back to a configuration older than one the core already saw.
            if let Action::Activate { node, .. } = &a
                && let Some(n) = self.world.node_at(node)
                && self.world.nodes[n].config_epoch < self.oracle.seen_config_epoch
            {
                let what = format!(
                    "activate {node} (configuration epoch {}) after the core saw epoch {}",
                    self.world.nodes[n].config_epoch, self.oracle.seen_config_epoch
                );
                return Err(self.violation(what));
            }
            match &a {
                Action::Watch { .. } => self.stats.watches += 1,
                Action::HandBack { .. } => self.stats.handbacks += 1,
                _ => {}
            }
            if let Action::PollRole { node, .. }
            | Action::Watch { node, .. }
            | Action::Connect { node, .. } = &a
                && let Some(f) = self.world.failovers.last()
                && !f.done
                && self.world.nodes[f.candidate].reachable == *node
            {
                self.stats.role_requests += 1;
            }
            self.log(format!("act {a:?}"));
            if let Err(what) = self.oracle.action(&a, self.now) {
                return Err(self.violation(what));
            }
            self.execute(a);
        }
    }

    fn execute(&mut self, a: Action) {
        match a {
            Action::Subscribe { op, sentinel } => match self.sentinel(&sentinel) {
                Some((s, Health::Up)) => {
                    self.subs.insert(op, s);
                    // The confirmation is the connection's first reply: messages follow it.
                    let d = self.latency() + self.latency();
                    self.fifo.insert(op, self.now + d);
                    self.schedule(d, Due::Input(Input::Subscribed(op)));
                }
                Some((_, Health::Hung)) => {}
                _ => self.reply_later(Input::ListenerFailed(op, REFUSED.into())),
            },
            Action::PingListener { op } => {
                if let Some(&s) = self.subs.get(&op)
                    && self.world.sentinels[s].health == Health::Up
                {
                    self.reply_later(Input::Pong(op));
                }
            }
            Action::CloseListener { op } => {
                self.subs.remove(&op);
            }
            Action::QueryMaster {
                op,
                sentinel,
                service,
            } => match self.sentinel(&sentinel) {
                Some((s, Health::Up)) => {
                    let reply = self.world.master_reply(s, &service, self.now);
                    let slow = self.rng.between(Duration::ZERO, self.slow_replies);
                    let d = self.latency() + self.latency() + slow;
                    self.schedule(d, Due::Input(Input::SentinelReply(op, Ok(reply))));
                }
                Some((_, Health::Hung)) => {}
                _ => self.reply_later(Input::SentinelReply(op, Err(IoError::unreachable(REFUSED)))),
            },
            Action::QueryReplicas { op, sentinel, .. } => match self.sentinel(&sentinel) {
                Some((s, Health::Up)) => {
                    let reply = self.world.replicas_reply(s, self.now);
                    for n in &self.world.nodes {
                        let reported = self.core.config().nat.map(&n.announced);
                        self.oracle.reported.insert(reported);
                    }
                    self.reply_later(Input::SentinelReply(op, Ok(reply)));
                }
                Some((_, Health::Hung)) => {}
                _ => self.reply_later(Input::SentinelReply(op, Err(IoError::unreachable(REFUSED)))),
            },
            Action::QuerySentinels { op, sentinel, .. } => match self.sentinel(&sentinel) {
                Some((s, Health::Up)) => {
                    let reply = self.world.sentinels_reply(s);
                    self.reply_later(Input::SentinelReply(op, Ok(reply)));
                }
                Some((_, Health::Hung)) => {}
                _ => self.reply_later(Input::SentinelReply(op, Err(IoError::unreachable(REFUSED)))),
            },
            Action::QueryReplication { op, node } => match self.world.node_at(&node) {
                Some(n) => match self.world.nodes[n].health {
                    Health::Up => {
                        let reply = self.world.replication_reply(n);
                        self.reply_later(Input::NodeReply(op, Ok(reply)));
                    }
                    Health::Hung => {}
                    Health::Down => {
                        self.reply_later(Input::NodeReply(op, Err(IoError::unreachable(REFUSED))))
                    }
                },
                None => self.reply_later(Input::NodeReply(op, Err(IoError::unreachable(REFUSED)))),
            },
            Action::ReadBacklog {
                op,
                node,
                replid,
                offset,
                bytes,
            } => match self.world.node_at(&node) {
                Some(n) => match self.world.nodes[n].health {
                    Health::Up => {
                        let result = self
                            .world
                            .backlog(n, &replid, offset, bytes)
                            .ok_or_else(|| IoError::rejected("PSYNC answered +FULLRESYNC"));
                        self.reply_later(Input::Backlog(op, result));
                    }
                    Health::Hung => {}
                    Health::Down => {
                        self.reply_later(Input::Backlog(op, Err(IoError::unreachable(REFUSED))))
                    }
                },
                None => self.reply_later(Input::Backlog(op, Err(IoError::unreachable(REFUSED)))),
            },
            Action::PollRole { op, node } => {
                if let Some(reply) = self.role(&node) {
                    self.reply_later(Input::NodeReply(op, reply));
                }
            }
            Action::Connect { op, node } => {
                let reply = if self.connect_failures > 0 {
                    self.connect_failures -= 1;
                    Some(Err(IoError::unreachable(format!("{REFUSED} (injected)"))))
                } else if self.connect_to_replica > 0
                    && let Some(replica) = (0..self.world.nodes.len()).find(|&n| {
                        !self.world.nodes[n].master && self.world.nodes[n].health == Health::Up
                    })
                {
                    // The connection lands on a replica (a stale address, a NAT mix-up).
                    self.connect_to_replica -= 1;
                    Some(Ok(self.world.role_reply(replica)))
                } else {
                    self.role(&node)
                };
                if let Some(reply) = reply {
                    if let Ok(r) = &reply {
                        self.prepared.insert(op);
                        if crate::parse::parse_role(r) == Ok(crate::parse::Role::Master) {
                            self.oracle.connect_verified(op, node);
                        }
                    }
                    self.reply_later(Input::NodeReply(op, reply));
                }
            }
            Action::Watch { op, node } => {
                let reply = self.role(&node);
                if let (Some(Ok(_)), Some(n)) = (&reply, self.world.node_at(&node)) {
                    let follows =
                        (!self.world.nodes[n].master).then_some(self.world.nodes[n].following);
                    self.watches.insert(op, (n, follows));
                }
                if let Some(reply) = reply {
                    self.reply_later(Input::NodeReply(op, reply));
                }
            }
            Action::Unwatch { op } => {
                self.watches.remove(&op);
            }
            Action::Activate { op, .. } if self.activate_failures > 0 => {
                self.activate_failures -= 1;
                self.prepared.remove(&op);
                self.schedule(Duration::ZERO, Due::Input(Input::ResetFailed(op)));
            }
            Action::Activate {
                op, node, release, ..
            } => {
                self.prepared.remove(&op);
                self.app.node = Some(node);
                // Held commands go to the new master now (a drain), or at `Resume`.
                self.app.held = !release;
                self.app.blocked_until = None;
                self.schedule(Duration::ZERO, Due::Input(Input::ResetDone(op)));
            }
            // The application re-applies what it may (the simulated world keeps no data: the
            // oracles check what was handed back) in a few round trips.
            Action::HandBack { op, .. } => {
                let d = self.latency() * 4;
                self.schedule(d, Due::Input(Input::HandedBack(op)));
            }
            Action::Discard { op } => {
                self.prepared.remove(&op);
            }
            Action::PauseWrites { node, duration } => {
                if let Some(n) = self.world.node_at(&node)
                    && self.world.nodes[n].health == Health::Up
                {
                    self.world.nodes[n].writes_paused_until = Some(self.now + duration);
                }
            }
            Action::UnpauseWrites { node } => {
                if let Some(n) = self.world.node_at(&node)
                    && self.world.nodes[n].health == Health::Up
                {
                    self.world.nodes[n].writes_paused_until = None;
                }
            }
            Action::Fence => self.app.held = true,
            Action::PauseWorkers { op } => {
                if let PauseBehaviour::Takes(d) = self.pause {
                    self.schedule(d, Due::Input(Input::Paused(op)));
                }
            }
            Action::Resume => self.app.held = false,
            Action::StopWorkers { .. } | Action::Shutdown(_) => {}
        }
    }

    /// A sentinel as the process sees it: one it is cut off from refuses.
    fn sentinel(&self, addr: &Addr) -> Option<(usize, Health)> {
        self.world.sentinel_at(addr).map(|s| {
            let sentinel = &self.world.sentinels[s];
            (
                s,
                if sentinel.heard {
                    sentinel.health
                } else {
                    Health::Down
                },
            )
        })
    }

    /// The `ROLE` answer of a node, `None` when it hangs.
    fn role(&self, node: &Addr) -> Option<Result<Reply, IoError>> {
        match self.world.node_at(node) {
            Some(n) => match self.world.nodes[n].health {
                Health::Up => Some(Ok(self.world.role_reply(n))),
                Health::Hung => None,
                Health::Down => Some(Err(IoError::unreachable(REFUSED))),
            },
            None => Some(Err(IoError::unreachable(REFUSED))),
        }
    }

    fn reply_later(&mut self, input: Input) {
        let d = self.latency() + self.latency();
        self.schedule(d, Due::Input(input));
    }

    /// A reported loss is real: the offsets are ones the two nodes had, and the new master
    /// was promoted no further than the offset reported for it.
    fn check_writes_lost(&self, e: &Event) -> Result<(), String> {
        let Event::WritesLost {
            old,
            new,
            old_offset,
            new_offset,
            bytes,
            commands,
            ..
        } = e
        else {
            return Ok(());
        };
        let (Some(o), Some(n)) = (self.world.node_at(old), self.world.node_at(new)) else {
            return Err(format!(
                "lost writes reported for unknown nodes {old}, {new}"
            ));
        };
        let promoted = self
            .world
            .failovers
            .iter()
            .rev()
            .find(|f| f.candidate == n && f.promoted_at.is_some())
            .map(|f| f.promoted_offset);
        if old_offset.checked_sub(*new_offset) != Some(*bytes)
            || *old_offset
                > self.world.nodes[o]
                    .offset
                    .max(self.world.nodes[o].peak_offset)
            || promoted.is_none_or(|p| p > *new_offset)
        {
            return Err(format!(
                "lost writes reported that did not happen: {e:?} (old at {}, new promoted at {promoted:?})",
                self.world.nodes[o].offset
            ));
        }
        // Handed back: exactly the writes between the two offsets, when the old master still
        // held them.
        let (old_node, new_node) = (&self.world.nodes[o], &self.world.nodes[n]);
        let readable = old_node.health == Health::Up
            && old_node.master
            && new_node.replid2 == Some(old_node.replid)
            && old_node.offset >= *old_offset;
        match commands {
            Some(c) => {
                let expected: Vec<Vec<Vec<u8>>> = (new_offset + 1..=*old_offset)
                    .map(|k| vec![b"SET".to_vec(), b"w".to_vec(), k.to_string().into_bytes()])
                    .collect();
                let read: Vec<Vec<Vec<u8>>> = c.iter().map(|c| c.args.clone()).collect();
                if read != expected {
                    return Err(format!(
                        "lost writes handed back are not the writes lost: {read:?} for offsets \
                         {new_offset} -> {old_offset}"
                    ));
                }
            }
            None if readable => {
                return Err(format!(
                    "lost writes reported without their commands while the old master held \
                     them: {e:?}"
                ));
            }
            None => {}
        }
        Ok(())
    }

    /// Open prepared connections (for leak checks).
    pub fn prepared_connections(&self) -> impl Iterator<Item = &OpId> {
        self.prepared.iter()
    }
}

/// A reply as text, for the trace.
fn show(reply: &Result<Reply, IoError>) -> String {
    fn one(r: &Reply) -> String {
        match r {
            Reply::Data(d) => String::from_utf8_lossy(d).into_owned(),
            Reply::Array(items) => {
                let inner: Vec<String> = items.iter().map(one).collect();
                format!("[{}]", inner.join(" "))
            }
            other => format!("{other:?}"),
        }
    }
    match reply {
        Ok(r) => one(r),
        Err(e) => format!("error: {e}"),
    }
}
