//! The switch: fence → pause workers ∥ find and verify the new master → activate it (close
//! everything to the old one) → resume. Also early fencing on failover signals, candidate
//! `ROLE` polling, and lifting a fence when a failover aborts.

use crate::action::{Action, OpId};
use crate::addr::Addr;
use crate::event::{DetectionPath, DiscoveryError, Event, IgnoreReason};
use crate::machine::Core;
use crate::parse::{Role, Signal, parse_role};
use crate::reply::Reply;
use crate::timers::{TimerReason, after};
use std::time::Instant;

/// Signals about a transition that arrive this soon after it was first seen are copies of it
/// (every sentinel publishes its own within about 2 s of the promotion), not a new failover.
const LATE_SIGNAL_WINDOW: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether the workers still need to drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pause {
    /// No workers run yet (startup).
    NotNeeded,
    Pending(OpId),
    Done(Instant),
}

/// A switch or fence in progress. Work is fenced from its start until `Resume`.
#[derive(Debug)]
pub(crate) struct Switch {
    pub(crate) path: DetectionPath,
    pub(crate) sentinel: Option<Addr>,
    pub(crate) started: Instant,
    /// The master in use when the switch started.
    pub(crate) old: Option<Addr>,
    /// Fenced on an early signal and waiting for a promotion (the fence timeout runs).
    pub(crate) early: bool,
    /// The master whose failover the early fence waits for.
    pub(crate) failing: Option<Addr>,
    /// The last target, kept after it failed verification (it may be failing over in turn).
    pub(crate) last_target: Option<Addr>,
    /// Why the old master is being re-verified (failover aborted, fence timed out).
    pub(crate) lifting: Option<String>,
    /// The master to use, as a sentinel or a promoted candidate named it.
    pub(crate) target: Option<Addr>,
    /// The application's connection points at `target`, verified as master.
    pub(crate) verified: bool,
    pub(crate) connected_at: Option<Instant>,
    pub(crate) candidate: Option<Addr>,
    pub(crate) candidate_poll: Option<OpId>,
    pub(crate) connect: Option<(OpId, Addr)>,
    /// A `ROLE` check of `target` when it is the master already in use.
    pub(crate) probe: Option<(OpId, Addr)>,
    pub(crate) activating: Option<(OpId, Addr)>,
    pub(crate) pause: Pause,
}

impl Switch {
    fn new(
        path: DetectionPath,
        sentinel: Option<Addr>,
        old: Option<Addr>,
        pause: Pause,
        now: Instant,
    ) -> Self {
        Switch {
            path,
            sentinel,
            started: now,
            old,
            early: false,
            failing: None,
            last_target: None,
            lifting: None,
            target: None,
            verified: false,
            connected_at: None,
            candidate: None,
            candidate_poll: None,
            connect: None,
            probe: None,
            activating: None,
            pause,
        }
    }

    /// Startup: find the first master; nothing to pause.
    pub(crate) fn startup(now: Instant) -> Self {
        Self::new(DetectionPath::Startup, None, None, Pause::NotNeeded, now)
    }
}

impl Core {
    /// Fences and starts pausing the workers.
    pub(crate) fn start_switch(
        &mut self,
        path: DetectionPath,
        sentinel: Option<Addr>,
        early: bool,
        signal: &str,
        now: Instant,
    ) {
        self.cancel_verify_probe();
        let op = self.op();
        let mut sw = Switch::new(
            path,
            sentinel.clone(),
            self.master.clone(),
            Pause::Pending(op),
            now,
        );
        sw.early = early;
        sw.failing = if early { self.master.clone() } else { None };
        self.switch = Some(sw);
        self.push_action(Action::Fence);
        self.push_action(Action::PauseWorkers { op });
        self.timers.set(
            TimerReason::PauseTimeout,
            after(now, self.cfg.pause_timeout),
        );
        if early {
            self.timers.set(
                TimerReason::FenceTimeout,
                after(now, self.cfg.fence_timeout),
            );
        }
        if let Some(master) = self.master.clone() {
            self.emit(Event::Fenced {
                master,
                path,
                sentinel,
                signal: signal.to_owned(),
            });
        }
    }

    /// Sets the master the switch moves to (and drops work aimed at any other address).
    pub(crate) fn set_target(
        &mut self,
        addr: Addr,
        path: DetectionPath,
        sentinel: Option<Addr>,
        now: Instant,
    ) {
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        if sw.target.as_ref() == Some(&addr) {
            return;
        }
        sw.target = Some(addr.clone());
        sw.last_target = Some(addr.clone());
        sw.verified = false;
        sw.early = false;
        sw.connect = None; // a late result is discarded through `open_connects`
        sw.probe = None;
        sw.candidate_poll = None;
        for t in [
            TimerReason::ConnectTimeout,
            TimerReason::ProbeTimeout,
            TimerReason::RolePoll,
            TimerReason::FenceTimeout,
        ] {
            self.timers.cancel(t);
        }
        if self.master.as_ref() != Some(&addr) {
            self.emit(Event::SwitchDetected {
                old: self.master.clone(),
                new: addr,
                sentinel,
                path,
            });
        }
        self.drive_switch(now);
    }

    /// Starts whatever the switch needs next: verify the target, poll the candidate, or
    /// discover; finishes when verified and paused.
    pub(crate) fn drive_switch(&mut self, now: Instant) {
        let Some(sw) = self.switch.as_ref() else {
            return;
        };
        if let Some(target) = sw.target.clone() {
            if sw.verified {
                return self.try_finish(now);
            }
            if sw.connect.is_some() || sw.probe.is_some() || sw.activating.is_some() {
                return;
            }
            let op = self.op();
            let deadline = after(now, self.cfg.connect_timeout);
            let in_use = self.master.as_ref() == Some(&target);
            let Some(sw) = self.switch.as_mut() else {
                return;
            };
            if in_use {
                sw.probe = Some((op, target.clone()));
                self.timers.set(TimerReason::ProbeTimeout, deadline);
                self.push_action(Action::PollRole { op, node: target });
            } else {
                sw.connect = Some((op, target.clone()));
                self.open_connects.insert(op);
                self.timers.set(TimerReason::ConnectTimeout, deadline);
                self.push_action(Action::Connect { op, node: target });
            }
        } else if sw.candidate.is_some() && (sw.early || sw.lifting.is_some()) {
            // Candidate polls are bounded by the fence timeout (or end the lifting).
            if sw.candidate_poll.is_none() && !self.timers.is_set(TimerReason::RolePoll) {
                self.role_poll_due(now);
            }
        } else if !sw.early {
            let path = sw.path;
            self.ensure_discovery(path, now);
        }
    }

    /// A discovery answer while switching. Events and promoted candidates take precedence, and
    /// during an early fence the old master's name is expected (sentinels report it until the
    /// failover ends) and proves nothing.
    pub(crate) fn discovered_during_switch(
        &mut self,
        addr: Addr,
        path: DetectionPath,
        sentinel: Addr,
        now: Instant,
    ) {
        let Some(sw) = self.switch.as_ref() else {
            return;
        };
        let failing = sw.failing.as_ref().or(self.master.as_ref());
        if sw.target.is_some() || (sw.early && failing == Some(&addr)) {
            return self.drive_switch(now);
        }
        if self.follow_failover(&addr, &sentinel, now) {
            return;
        }
        self.set_target(addr, path, Some(sentinel), now);
    }

    /// Returns whether the reply belonged to the switch.
    pub(crate) fn switch_node_reply(
        &mut self,
        op: OpId,
        reply: &Result<Reply, String>,
        now: Instant,
    ) -> bool {
        let Some(sw) = self.switch.as_mut() else {
            return false;
        };
        let role = || match reply {
            Ok(r) => parse_role(r).map_err(|m| m.0),
            Err(e) => Err(e.clone()),
        };
        if let Some((_, target)) = sw.connect.take_if(|(c, _)| *c == op) {
            self.timers.cancel(TimerReason::ConnectTimeout);
            match role() {
                Ok(Role::Master) => {
                    sw.activating = Some((op, target.clone()));
                    let old = self.master.clone();
                    self.emit(Event::BeforeReset {
                        old: old.clone(),
                        new: target.clone(),
                    });
                    self.push_action(Action::Activate {
                        op,
                        node: target,
                        old,
                    });
                }
                other => {
                    if reply.is_ok() {
                        self.push_action(Action::Discard { op });
                    }
                    self.verification_failed(target, describe(other), now);
                }
            }
            return true;
        }
        if let Some((_, target)) = sw.probe.take_if(|(p, _)| *p == op) {
            self.timers.cancel(TimerReason::ProbeTimeout);
            match role() {
                Ok(Role::Master) => {
                    sw.verified = true;
                    sw.connected_at = Some(now);
                    self.drive_switch(now);
                }
                other => self.verification_failed(target, describe(other), now),
            }
            return true;
        }
        if sw.candidate_poll == Some(op) {
            sw.candidate_poll = None;
            match (role(), sw.candidate.clone()) {
                (Ok(Role::Master), Some(candidate)) => {
                    let sentinel = sw.sentinel.clone();
                    self.set_target(candidate, DetectionPath::EarlySignal, sentinel, now);
                }
                _ if sw.lifting.is_some() => {
                    sw.candidate = None;
                    self.lift_to_master(now);
                }
                _ => self.timers.set(
                    TimerReason::RolePoll,
                    after(now, self.cfg.role_poll_interval),
                ),
            }
            return true;
        }
        false
    }

    fn verification_failed(&mut self, node: Addr, reason: String, now: Instant) {
        self.emit(Event::VerificationFailed {
            node: node.clone(),
            reason: reason.clone(),
        });
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        if sw.target.as_ref() == Some(&node) {
            sw.target = None;
            sw.verified = false;
        }
        // The early phase is over: from here the sentinels are asked again (after a delay).
        sw.candidate = None;
        sw.candidate_poll = None;
        sw.lifting = None;
        sw.early = false;
        let path = sw.path;
        if matches!(self.discovery, crate::discovery::Discovery::Idle) {
            let error = DiscoveryError::VerificationFailed { node, reason };
            self.schedule_discovery_retry(path, false, error, now);
        }
        self.drive_switch(now);
    }

    pub(crate) fn connect_timed_out(&mut self, now: Instant) {
        if let Some((_, node)) = self.switch.as_mut().and_then(|s| s.connect.take()) {
            let reason = format!("no ROLE answer within {:?}", self.cfg.connect_timeout);
            self.verification_failed(node, reason, now);
        }
    }

    pub(crate) fn switch_probe_timed_out(&mut self, now: Instant) {
        if let Some((_, node)) = self.switch.as_mut().and_then(|s| s.probe.take()) {
            let reason = format!("no ROLE answer within {:?}", self.cfg.connect_timeout);
            self.verification_failed(node, reason, now);
        }
    }

    /// Polls the candidate's `ROLE` (also when the previous poll got no answer in time).
    pub(crate) fn role_poll_due(&mut self, now: Instant) {
        let op = self.op();
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        let (None, Some(node)) = (&sw.target, sw.candidate.clone()) else {
            return;
        };
        if sw.lifting.is_some() && sw.candidate_poll.is_some() {
            // The candidate did not answer the last poll before lifting: give up on it.
            sw.candidate = None;
            sw.candidate_poll = None;
            return self.lift_to_master(now);
        }
        sw.candidate_poll = Some(op);
        self.timers
            .set(TimerReason::RolePoll, after(now, self.cfg.connect_timeout));
        self.push_action(Action::PollRole { op, node });
    }

    pub(crate) fn reset_done(&mut self, op: OpId, now: Instant) {
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        let Some((_, node)) = sw.activating.take_if(|(a, _)| *a == op) else {
            return;
        };
        sw.verified = sw.target.as_ref() == Some(&node);
        if sw.verified {
            sw.connected_at = Some(now);
        }
        let old = self.master.replace(node.clone());
        self.stale.remove(&node);
        self.failing.remove(&node);
        if let Some(o) = old.clone().filter(|o| *o != node) {
            self.failing.remove(&o); // its failover is over for us
            self.note_completed(o, node.clone(), now);
        }
        if let Some(o) = old.clone().filter(|o| *o != node) {
            self.mark_stale(o, now);
        }
        self.emit(Event::AfterReset { old, new: node });
        self.drive_switch(now);
    }

    pub(crate) fn workers_paused(&mut self, op: OpId, now: Instant) {
        if let Some(sw) = self.switch.as_mut()
            && sw.pause == Pause::Pending(op)
        {
            sw.pause = Pause::Done(now);
            self.timers.cancel(TimerReason::PauseTimeout);
            self.drive_switch(now);
        }
    }

    fn try_finish(&mut self, now: Instant) {
        let Some(sw) = self.switch.as_ref() else {
            return;
        };
        if !sw.verified || matches!(sw.pause, Pause::Pending(_)) {
            return;
        }
        let Some(sw) = self.switch.take() else {
            return;
        };
        let Some(new) = self.master.clone() else {
            return;
        };
        for t in [
            TimerReason::PauseTimeout,
            TimerReason::FenceTimeout,
            TimerReason::ConnectTimeout,
            TimerReason::RolePoll,
            TimerReason::ProbeTimeout,
        ] {
            self.timers.cancel(t);
        }
        self.push_action(Action::Resume);
        // A discovery started or scheduled while looking for this master is moot now (a late
        // reply is ignored by its id).
        if !matches!(self.discovery, crate::discovery::Discovery::Idle) {
            self.discovery = crate::discovery::Discovery::Idle;
            self.timers.cancel(TimerReason::DiscoveryRetry);
            self.timers.cancel(TimerReason::QueryTimeout);
            self.discovery_backoff.reset();
        }
        let total = now.saturating_duration_since(sw.started);
        if sw.old.as_ref() == Some(&new) {
            let reason = sw
                .lifting
                .unwrap_or_else(|| "master re-verified".to_owned());
            self.emit(Event::FenceLifted {
                master: new.clone(),
                reason,
                held: total,
            });
        } else {
            let since = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(sw.started));
            self.emit(Event::SwitchCompleted {
                old: sw.old,
                new: new.clone(),
                path: sw.path,
                to_paused: match sw.pause {
                    Pause::Done(at) => since(Some(at)),
                    _ => None,
                },
                to_connected: since(sw.connected_at).unwrap_or(total),
                total,
            });
        }
        if !self.ready {
            self.ready = true;
            self.timers.cancel(TimerReason::StartupDeadline);
            self.emit(Event::Ready {
                master: new,
                elapsed: now.saturating_duration_since(self.created),
            });
            self.arm_periodic_check(now);
        }
    }

    /// `+switch-master` for our service (addresses already NAT-mapped).
    pub(crate) fn on_switch_master(
        &mut self,
        old: Addr,
        new: Addr,
        sentinel: &Addr,
        now: Instant,
    ) -> Result<(), IgnoreReason> {
        // A late message of an earlier failover can name as new a master that is itself being
        // failed over right now: never move to it.
        // Likewise a late `+switch-master` of an earlier failover names a master that was
        // replaced moments ago (a fail-back needs it demoted and promoted again first).
        // A fail-back whose early signals we saw (`old` failing over to `new`) is consistent.
        // ... unless `new` was announced as failing after that (newer news wins).
        let announced = self.is_failing(&old, now)
            && self.failing.get(&old).is_some_and(|(since, candidate)| {
                candidate.as_ref() == Some(&new)
                    && self.failing.get(&new).is_none_or(|(s, _)| s < since)
            });
        if !announced && (self.is_failing(&new, now) || self.superseded(&old, &new, now)) {
            return Err(IgnoreReason::Late(new));
        }
        self.failing.remove(&old);
        if old != new {
            self.mark_stale(old.clone(), now);
            self.note_completed(old, new.clone(), now);
        }
        self.stale.remove(&new);
        let already = self.master.as_ref() == Some(&new)
            || self
                .switch
                .as_ref()
                .is_some_and(|sw| sw.target.as_ref() == Some(&new));
        if already {
            return Err(IgnoreReason::Duplicate);
        }
        if self.switch.is_none() {
            let s = Some(sentinel.clone());
            self.start_switch(DetectionPath::Event, s, false, "+switch-master", now);
        }
        self.set_target(new, DetectionPath::Event, Some(sentinel.clone()), now);
        Ok(())
    }

    /// An early failover signal, a candidate announcement, or an abort for our service, about
    /// `master` (the failing master, NAT-mapped).
    pub(crate) fn on_failover_signal(
        &mut self,
        signal: Signal,
        channel: String,
        master: Addr,
        replica: Option<Addr>,
        sentinel: &Addr,
        now: Instant,
    ) -> Result<(), IgnoreReason> {
        if let Some(c) = &replica
            && self.is_failing(c, now)
        {
            return Err(IgnoreReason::Late(c.clone()));
        }
        self.note_failing(signal, &master, replica.as_ref(), now);
        if !self.cfg.early_fencing {
            return Ok(());
        }
        if signal == Signal::Abort {
            let waiting = self
                .switch
                .as_ref()
                .is_some_and(|sw| sw.early && sw.failing.as_ref() == Some(&master));
            return if waiting {
                self.lift_fence(channel, now)
            } else {
                Err(IgnoreReason::NotOurMaster(master))
            };
        }
        let in_use = self.master.as_ref() == Some(&master);
        let fenced_now = match self.switch.as_ref() {
            None if in_use => {
                let s = Some(sentinel.clone());
                self.start_switch(DetectionPath::EarlySignal, s, true, &channel, now);
                true
            }
            // Already fenced for this master's failover: only a candidate is news.
            Some(sw) if sw.early && sw.failing.as_ref() == Some(&master) => false,
            // The master we are moving to (or tried to, or use, or wait for as candidate) is
            // failing over in turn.
            Some(sw)
                if sw.target.as_ref() == Some(&master)
                    || (sw.target.is_none()
                        && (in_use
                            || sw.last_target.as_ref() == Some(&master)
                            || sw.candidate.as_ref() == Some(&master))) =>
            {
                self.refence(master.clone(), sentinel, &channel, now);
                true
            }
            _ => return Err(IgnoreReason::NotOurMaster(master)),
        };
        let Some(sw) = self.switch.as_mut() else {
            return Ok(());
        };
        match replica {
            Some(c)
                if signal == Signal::Candidate
                    && sw.target.is_none()
                    && sw.candidate.as_ref() != Some(&c) =>
            {
                sw.candidate = Some(c.clone());
                sw.candidate_poll = None;
                self.timers.cancel(TimerReason::RolePoll);
                self.emit(Event::CandidateNamed {
                    candidate: c,
                    sentinel: Some(sentinel.clone()),
                });
                self.drive_switch(now);
                Ok(())
            }
            _ if fenced_now => Ok(()),
            _ => Err(IgnoreReason::Duplicate),
        }
    }

    /// A master the switch uses or moves to announced its own failover: wait for its successor.
    fn refence(&mut self, failing: Addr, sentinel: &Addr, channel: &str, now: Instant) {
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        sw.target = None;
        sw.failing = Some(failing.clone());
        sw.verified = false;
        sw.early = true;
        sw.lifting = None;
        sw.candidate = None;
        sw.candidate_poll = None;
        sw.connect = None;
        sw.probe = None;
        for t in [
            TimerReason::ProbeTimeout,
            TimerReason::ConnectTimeout,
            TimerReason::RolePoll,
        ] {
            self.timers.cancel(t);
        }
        self.timers.set(
            TimerReason::FenceTimeout,
            after(now, self.cfg.fence_timeout),
        );
        self.push_action(Action::Fence);
        self.emit(Event::Fenced {
            master: failing,
            path: DetectionPath::EarlySignal,
            sentinel: Some(sentinel.clone()),
            signal: channel.to_owned(),
        });
    }

    /// The failover was aborted (or the fence timed out). If a candidate was named, poll it
    /// once more (a late abort must not undo a promotion); then re-verify the master in use and
    /// lift the fence if it still is master.
    fn lift_fence(&mut self, reason: String, now: Instant) -> Result<(), IgnoreReason> {
        let Some(sw) = self.switch.as_mut() else {
            return Err(IgnoreReason::Duplicate);
        };
        if !sw.early || sw.target.is_some() {
            return Err(IgnoreReason::Duplicate);
        }
        sw.early = false;
        sw.lifting = Some(reason);
        self.timers.cancel(TimerReason::FenceTimeout);
        if sw.candidate.is_some() {
            sw.candidate_poll = None;
            self.timers.cancel(TimerReason::RolePoll);
            self.role_poll_due(now);
        } else {
            self.lift_to_master(now);
        }
        Ok(())
    }

    /// Verifies the master whose failover was announced (normally the one in use) as the
    /// switch's target, or discovers when there is none.
    fn lift_to_master(&mut self, now: Instant) {
        let Some(sw) = self.switch.as_ref() else {
            return;
        };
        let (path, sentinel) = (sw.path, sw.sentinel.clone());
        match sw.failing.clone().or_else(|| self.master.clone()) {
            Some(m) => self.set_target(m, path, sentinel, now),
            None => self.drive_switch(now),
        }
    }

    /// Remembers which masters are failing over (and their candidate), for discovery answers
    /// that name one of them later.
    fn note_failing(
        &mut self,
        signal: Signal,
        master: &Addr,
        replica: Option<&Addr>,
        now: Instant,
    ) {
        let ttl = self.cfg.fence_timeout;
        self.failing
            .retain(|_, (since, _)| now.saturating_duration_since(*since) < ttl);
        if signal == Signal::Abort {
            self.failing.remove(master);
            return;
        }
        // Late signals of a failover that already completed do not announce a new one.
        let late = match replica {
            Some(c) => self.completed_recently(master, c, now),
            None => self.replaced_recently(master, now),
        };
        if late {
            return;
        }
        let entry = self.failing.entry(master.clone()).or_insert((now, None));
        entry.0 = now;
        if signal == Signal::Candidate {
            entry.1 = replica.cloned();
        }
    }

    /// Records that the master moved from `old` to `new` (a switch, or a `+switch-master`).
    pub(crate) fn note_completed(&mut self, old: Addr, new: Addr, now: Instant) {
        let ttl = self.cfg.stale_master_ttl;
        self.completed
            .retain(|_, at| now.saturating_duration_since(*at) < ttl);
        self.completed.entry((old, new)).or_insert(now);
    }

    /// Whether the transition `old → new` was seen and `new` was replaced after it: a message
    /// announcing `old → new` again is a late copy.
    fn superseded(&self, old: &Addr, new: &Addr, now: Instant) -> bool {
        let Some(at) = self
            .completed
            .get(&(old.clone(), new.clone()))
            .filter(|at| now.saturating_duration_since(**at) < LATE_SIGNAL_WINDOW)
        else {
            return false;
        };
        self.completed
            .iter()
            .any(|((from, _), later)| from == new && later > at)
    }

    /// Whether `old → new` was seen recently and `old` has not become master again since (so a
    /// signal of `old` failing over to `new` belongs to that transition).
    fn completed_recently(&self, old: &Addr, new: &Addr, now: Instant) -> bool {
        let Some(at) = self
            .completed
            .get(&(old.clone(), new.clone()))
            .filter(|at| now.saturating_duration_since(**at) < LATE_SIGNAL_WINDOW)
        else {
            return false;
        };
        !self
            .completed
            .iter()
            .any(|((_, to), later)| to == old && later > at)
    }

    /// Whether sentinels announced a failover of `addr` within the fence timeout.
    fn is_failing(&self, addr: &Addr, now: Instant) -> bool {
        self.failing.get(addr).is_some_and(|(since, _)| {
            now.saturating_duration_since(*since) < self.cfg.fence_timeout
        })
    }

    /// Whether `addr` was replaced (by a `+switch-master` or a switch) within the late-signal
    /// window.
    pub(crate) fn replaced_recently(&self, addr: &Addr, now: Instant) -> bool {
        self.stale
            .get(addr)
            .and_then(|until| until.checked_sub(self.cfg.stale_master_ttl))
            .is_some_and(|at| now.saturating_duration_since(at) < LATE_SIGNAL_WINDOW)
    }

    /// A discovery answer names a master whose failover was announced recently: do not use it;
    /// fence early on it and follow its candidate instead. Returns whether it did.
    pub(crate) fn follow_failover(&mut self, addr: &Addr, sentinel: &Addr, now: Instant) -> bool {
        if !self.is_failing(addr, now) {
            return false;
        }
        // A candidate that was replaced since, or is failing over itself, is not followed.
        let candidate = self
            .failing
            .get(addr)
            .and_then(|(_, c)| c.clone())
            .filter(|c| !self.stale.contains_key(c) && !self.is_failing(c, now));
        if self.switch.is_none() {
            let s = Some(sentinel.clone());
            self.start_switch(
                DetectionPath::EarlySignal,
                s,
                true,
                "discovery during failover",
                now,
            );
        }
        self.refence(addr.clone(), sentinel, "discovery during failover", now);
        if let (Some(sw), Some(c)) = (self.switch.as_mut(), candidate) {
            sw.candidate = Some(c.clone());
            self.emit(Event::CandidateNamed {
                candidate: c,
                sentinel: Some(sentinel.clone()),
            });
        }
        self.drive_switch(now);
        true
    }

    pub(crate) fn fence_timed_out(&mut self, now: Instant) {
        if let Some(sw) = &self.switch
            && let Some(master) = sw.failing.clone().or_else(|| self.master.clone())
        {
            let waited = now.saturating_duration_since(sw.started);
            self.emit(Event::FenceExpired { master, waited });
        }
        let reason = format!("no promotion within {:?}", self.cfg.fence_timeout);
        let _ = self.lift_fence(reason, now);
    }
}

fn describe(role: Result<Role, String>) -> String {
    match role {
        Ok(role) => format!("ROLE says {role}"),
        Err(e) => e,
    }
}
