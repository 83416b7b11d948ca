//! The switch driven with the other parts: fence → pause workers ∥ find and verify the new
//! master (candidate `ROLE` polls and watches, a broker connection checked with `ROLE`) →
//! activate it (close everything to the old one) → check for lost writes and hand them back →
//! resume. The switch's own rules are in [`crate::switch`]; what sentinel messages do to it
//! is in `signals`.

use super::Core;
use crate::action::Action;
use crate::addr::Addr;
use crate::backoff::jitter;
use crate::epochs::Known;
use crate::event::{DetectionPath, DiscoveryError, Event, LostCommand};
use crate::input::{IoError, IoErrorKind};
use crate::lost::{Checked, FenceAnswer};
use crate::op::{OpId, Pending};
use crate::parse::{Role, is_rejection, parse_role};
use crate::reply::Reply;
use crate::switch::{Connected, HandBack, Pause, Step, Switch};
use crate::timers::{TimerReason, after};
use std::time::{Duration, Instant};

/// After a switch, the replicas of the new master are asked for after a delay drawn from
/// `[REPLICAS_AFTER_SWITCH / 2, REPLICAS_AFTER_SWITCH]`: about when the sentinels re-point
/// them (their leader notices the promotion within its 1 s `INFO` period), and spread over
/// half a second across a fleet of processes that switched together.
const REPLICAS_AFTER_SWITCH: Duration = Duration::from_secs(1);

impl Core {
    /// Fences (`early`: waiting for the promotion of a failover of the master in use), and
    /// starts draining the workers when `drain` is configured.
    pub(super) fn start_switch(
        &mut self,
        path: DetectionPath,
        sentinel: Option<Addr>,
        early: bool,
        signal: &str,
        now: Instant,
    ) {
        self.discovery.cancel_verify(&mut self.cx);
        // Without a drain, jobs in flight keep running: the fence holds their commands and
        // they go to the new master once it is active. A drain waits for them first.
        let pause = if self.cx.cfg.drain {
            Pause::Pending(self.cx.start(Pending::Pause))
        } else {
            Pause::NotNeeded
        };
        let old = self.master.clone();
        self.switch = Some(Switch::new(path, sentinel.clone(), old, early, pause, now));
        self.cx.act(Action::Fence);
        if let Some(master) = self.master.clone() {
            // The old master's replication offset at the fence (lost writes).
            self.lost.probe_fenced(master, now, &mut self.cx);
        }
        if let Pause::Pending(op) = pause {
            self.cx.act(Action::PauseWorkers { op });
            let deadline = after(now, self.cx.cfg.pause_timeout);
            self.cx.timers.set(TimerReason::PauseTimeout, deadline);
        }
        if early {
            let deadline = after(now, self.cx.cfg.fence_timeout);
            self.cx.timers.set(TimerReason::FenceTimeout, deadline);
        }
        if let Some(master) = self.master.clone() {
            self.cx.emit(Event::Fenced {
                master,
                path,
                sentinel,
                signal: signal.to_owned(),
            });
        }
    }

    /// Sets the master the switch moves to (and drops work aimed at any other address).
    pub(super) fn set_target(
        &mut self,
        addr: Addr,
        epoch: Known,
        path: DetectionPath,
        sentinel: Option<Addr>,
        now: Instant,
    ) {
        // Never to a configuration older than the one in use, nor without news to a master
        // that a newer configuration replaced: ask the sentinels instead.
        if self.epochs.refuses(&addr, epoch, self.master.as_ref()) {
            let path = self.switch.as_ref().map_or(path, |sw| sw.path);
            if self.switch.as_ref().is_some_and(|sw| sw.target().is_none()) {
                self.ensure_discovery(path, now);
            }
            return;
        }
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        if !sw.retarget(&addr, epoch, &mut self.cx) {
            return;
        }
        if self.master.as_ref() != Some(&addr) {
            self.cx.emit(Event::SwitchDetected {
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
    pub(super) fn drive_switch(&mut self, now: Instant) {
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        match sw.next_step(&self.cx.timers) {
            Step::Wait => {}
            Step::Verify(target) => {
                let in_use = self.master.as_ref() == Some(&target);
                sw.verify(in_use, now, &mut self.cx);
            }
            Step::Poll => self.role_poll_due(now),
            Step::Discover(path) => self.ensure_discovery(path, now),
            Step::Finish => self.try_finish(now),
        }
    }

    /// A discovery answer while switching. Events and promoted candidates take precedence, and
    /// during an early fence the old master's name is expected (sentinels report it until the
    /// failover ends) and proves nothing.
    pub(super) fn discovered_during_switch(
        &mut self,
        addr: Addr,
        epoch: Known,
        path: DetectionPath,
        sentinel: Addr,
        now: Instant,
    ) {
        let Some(sw) = self.switch.as_ref() else {
            return;
        };
        // An answer naming it at an epoch above the failover's is a newer configuration: the
        // failover is over.
        let superseded = match epoch {
            Known::Exact(e) => !self.history.is_failing(&addr, Some(e), now),
            Known::Announced(_) | Known::Unknown => false,
        };
        if sw.target().is_some() || sw.waits_out(&addr, self.master.as_ref(), superseded) {
            return self.drive_switch(now);
        }
        if self.follow_failover(&addr, epoch, &sentinel, now) {
            return;
        }
        self.set_target(addr, epoch, path, Some(sentinel), now);
    }

    /// The `ROLE` reply of the switch's broker connection `op` (or its failure).
    pub(super) fn connect_reply(&mut self, op: OpId, reply: &Result<Reply, IoError>, now: Instant) {
        let Some(Connected {
            node: target,
            speculative,
        }) = self.switch.as_mut().and_then(Switch::take_connect)
        else {
            return;
        };
        self.cx.timers.cancel(TimerReason::ConnectTimeout);
        match role_of(reply) {
            Ok(Role::Master) => {
                if speculative {
                    self.adopt_candidate(&target, now);
                }
                let Some(sw) = self.switch.as_mut() else {
                    return;
                };
                // An answer that came while connecting may name a newer configuration
                // than the target's: a deposed master still says master until the
                // sentinels reconfigure it. Ask the sentinels instead.
                let (epoch, path) = (sw.target_epoch(), sw.path);
                if self.epochs.refuses(&target, epoch, self.master.as_ref()) {
                    self.cx.ops.finish(op);
                    self.cx.act(Action::Discard { op });
                    self.ensure_discovery(path, now);
                    let reason = "a sentinel named a newer configuration".to_owned();
                    self.verification_failed(target, reason, now);
                    return;
                }
                sw.activate(op, target.clone(), &mut self.cx.ops);
                let old = self.master.clone();
                self.cx.emit(Event::BeforeReset {
                    old: old.clone(),
                    new: target.clone(),
                });
                // Writes still reaching the deposed master (other processes whose fence
                // comes later) wait there instead of being lost; a master this process
                // paused and moves back to is unpaused first.
                self.lost.deposing(old.as_ref(), &target, now, &mut self.cx);
                // Held commands go out at `Resume`, after lost writes were handed back;
                // with a drain, now (jobs in flight wait on them, the pause on the jobs).
                self.cx.act(Action::Activate {
                    op,
                    node: target,
                    old,
                    release: self.cx.cfg.drain,
                });
            }
            other => {
                self.cx.ops.finish(op);
                if reply.is_ok() {
                    self.cx.act(Action::Discard { op });
                }
                if speculative {
                    self.candidate_not_promoted(target, other, now);
                } else if is_refusal(reply) && self.fails_fast() {
                    let error = DiscoveryError::VerificationFailed {
                        node: target,
                        reason: describe(other),
                    };
                    self.startup_refused(error, now);
                } else {
                    self.verification_failed(target, describe(other), now);
                }
            }
        }
    }

    /// The `ROLE` reply of the switch's probe of the master in use as its target.
    pub(super) fn switch_probe_reply(&mut self, reply: &Result<Reply, IoError>, now: Instant) {
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        let Some((_, target)) = sw.take_probe() else {
            return;
        };
        self.cx.timers.cancel(TimerReason::ProbeTimeout);
        match role_of(reply) {
            Ok(Role::Master) => {
                sw.verified(now);
                self.drive_switch(now);
            }
            other => self.verification_failed(target, describe(other), now),
        }
    }

    /// The `ROLE` reply of the candidate's poll.
    pub(super) fn candidate_polled(&mut self, reply: &Result<Reply, IoError>, now: Instant) {
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        sw.drop_poll(&mut self.cx.ops);
        match (role_of(reply), sw.awaited().cloned()) {
            (Ok(Role::Master), Some(candidate)) => {
                let (sentinel, epoch, path) = (
                    sw.sentinel.clone(),
                    sw.candidate_epoch(),
                    sw.promotion_path(),
                );
                self.note_watched_promotion(&candidate, now);
                self.set_target(candidate, epoch, path, sentinel, now);
            }
            _ if sw.lifting().is_some() => {
                sw.drop_candidate(&mut self.cx.ops);
                self.lift_to_master(now);
            }
            (other, Some(candidate)) => self.candidate_not_promoted(candidate, other, now),
            (_, None) => {}
        }
    }

    /// `node` is not a master to use (`reason`): the early phase is over, and the sentinels
    /// are asked again after a delay.
    fn verification_failed(&mut self, node: Addr, reason: String, now: Instant) {
        self.cx.emit(Event::VerificationFailed {
            node: node.clone(),
            reason: reason.clone(),
        });
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        sw.verification_failed(&node, &mut self.cx.ops);
        let path = sw.path;
        if self.discovery.is_idle() {
            let error = DiscoveryError::VerificationFailed { node, reason };
            self.discovery
                .schedule_retry(path, false, error, now, &mut self.cx);
        }
        self.drive_switch(now);
    }

    /// The broker connection got no `ROLE` answer within `connect_timeout`.
    pub(super) fn connect_timed_out(&mut self, now: Instant) {
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        let Some(Connected { node, speculative }) = sw.connect_timed_out(&mut self.cx.ops) else {
            return;
        };
        let reason = format!("no ROLE answer within {:?}", self.cx.cfg.connect_timeout);
        if speculative {
            self.candidate_not_promoted(node, Err(reason), now);
        } else {
            self.verification_failed(node, reason, now);
        }
    }

    /// The switch's probe got no `ROLE` answer within `connect_timeout`.
    pub(super) fn switch_probe_timed_out(&mut self, now: Instant) {
        if let Some((op, node)) = self.switch.as_mut().and_then(Switch::take_probe) {
            self.cx.ops.finish(op);
            let reason = format!("no ROLE answer within {:?}", self.cx.cfg.connect_timeout);
            self.verification_failed(node, reason, now);
        }
    }

    /// Polls the candidate's `ROLE` (also when the previous poll got no answer in time).
    pub(super) fn role_poll_due(&mut self, now: Instant) {
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        let Some(node) = sw.awaited().cloned() else {
            return;
        };
        if sw.lifting().is_some() && sw.polling() {
            // The candidate did not answer the last poll before lifting: give up on it.
            sw.drop_candidate(&mut self.cx.ops);
            return self.lift_to_master(now);
        }
        // While no watch connection is open on the candidate, each poll opens one: its `ROLE`
        // reply is the poll, and its closing announces the promotion.
        let watched = self.watches.answered_on(&node).is_some();
        let Some((op, node)) = sw.poll(!watched, &mut self.cx) else {
            return;
        };
        let deadline = after(now, self.cx.cfg.connect_timeout);
        self.cx.timers.set(TimerReason::RolePoll, deadline);
        if watched {
            self.cx.act(Action::PollRole { op, node });
        } else {
            self.watches.open(op, node, &mut self.cx);
        }
    }

    /// A watched replica of the master in use closed its connections (or says master now):
    /// it was promoted, or re-pointed, or restarted. Fences at once, unless a switch already
    /// has a target or a candidate (then returns false), and asks the replica's `ROLE` on a new
    /// connection: master means a promotion (switch to it), anything else lifts a fence begun
    /// here. The replica is watched again either way.
    pub(super) fn replica_closed(&mut self, node: Addr, now: Instant) -> bool {
        if self.switch.is_none() {
            let signal = format!("replica {node} closed its connections");
            self.start_switch(DetectionPath::ReplicaWatch, None, true, &signal, now);
            if let Some(sw) = self.switch.as_mut() {
                sw.set_watch_only();
            }
        }
        let in_use = self.master.clone();
        let Some(sw) = self.switch.as_mut() else {
            return false;
        };
        // Fenced (a heard `+odown`, an application error, ...) and no candidate named: this
        // replica's closing names it.
        if !sw.await_promotion(in_use, now, &mut self.cx) {
            return false;
        }
        // Its `ROLE` said replica of the master in use after that master was activated (the
        // watches start anew at every activation): a master now was promoted since, by a
        // configuration newer than the one in use.
        sw.name_candidate(node, Known::Announced(None), true, now, &mut self.cx);
        self.candidate_watch_closed(now);
        true
    }

    /// The candidate's watch connection closed: it was probably just promoted. Open the broker
    /// connection to it at once; its `ROLE` reply decides (a poll still in flight may have been
    /// answered before the promotion, and connecting directly saves a round of connection,
    /// `ROLE` and connection again on a node that every process reaches at this moment).
    pub(super) fn candidate_watch_closed(&mut self, now: Instant) {
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        if sw.awaited().is_none() || sw.connecting_to_candidate() {
            return;
        }
        if sw.lifting().is_some() {
            sw.drop_poll(&mut self.cx.ops);
            self.cx.timers.cancel(TimerReason::RolePoll);
            return self.role_poll_due(now);
        }
        sw.connect_to_candidate(now, &mut self.cx);
    }

    /// The candidate's `ROLE` (asked when its watch closed, or polled) is not master, or it
    /// could not be asked. A candidate only a watch's closing named is let go once it
    /// answered otherwise twice, or stayed unreachable for `connect_timeout` since the fence
    /// (a replica restarted or killed, not promoted: a promoted one answers): a fence on that
    /// closing alone is lifted, one the sentinels announced goes on without it. One that
    /// answers it replicates from another listed replica than the master in use was re-pointed
    /// by a failover to that replica, which becomes the candidate. Until then, and for a
    /// candidate a sentinel named, it is polled again at the poll interval (and watched).
    fn candidate_not_promoted(&mut self, node: Addr, answer: Result<Role, String>, now: Instant) {
        if let Ok(Role::Replica { master: Some(of) }) = &answer {
            let of = self.cx.cfg.nat.map(of);
            if self.master.as_ref() != Some(&of)
                && self.watches.is_listed(&of)
                && let Some(sw) = self.switch.as_mut()
                && sw.candidate_watched()
            {
                sw.repoint_candidate(of);
                self.cx.timers.cancel(TimerReason::RolePoll);
                return self.role_poll_due(now);
            }
        }
        let asked = answer.is_ok();
        let why = describe(answer);
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        if asked && sw.candidate_watched() && !sw.candidate_denied() {
            // Once more, on a watch connection of its own (the first answer came on the
            // connection opened for the switch), before letting it go.
            self.cx.timers.cancel(TimerReason::RolePoll);
            return self.role_poll_due(now);
        }
        let given_up = sw.watched_since().is_some_and(|since| {
            asked || now.saturating_duration_since(since) >= self.cx.cfg.connect_timeout
        });
        if !given_up {
            let next = jitter(self.cx.cfg.role_poll_interval, &mut self.cx.rng);
            return self.cx.timers.set(TimerReason::RolePoll, after(now, next));
        }
        sw.drop_candidate(&mut self.cx.ops);
        if sw.take_watch_only() {
            let reason = format!("replica {node} closed its connections but is not master: {why}");
            let _ = self.lift_fence(reason, now);
        }
    }

    /// The candidate a speculative connection to `node` found promoted becomes the target
    /// (what a promoted `ROLE` poll does, the connection already open).
    fn adopt_candidate(&mut self, node: &Addr, now: Instant) {
        self.note_watched_promotion(node, now);
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        let (path, sentinel) = (sw.promotion_path(), sw.sentinel.clone());
        sw.adopt_candidate(node, &mut self.cx);
        if self.master.as_ref() != Some(node) {
            self.cx.emit(Event::SwitchDetected {
                old: self.master.clone(),
                new: node.clone(),
                sentinel,
                path,
            });
        }
    }

    /// A candidate found by its watch closing says master: a promotion of a replica of the
    /// master in use, by a configuration newer than the one in use. Remembered as a failover
    /// of that master, so that sentinels still naming it (they learn of the promotion about a
    /// second later) are not believed while it counts.
    fn note_watched_promotion(&mut self, candidate: &Addr, now: Instant) {
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        let failing = sw.failing().cloned().or_else(|| self.master.clone());
        if let (true, Some(failing)) = (sw.candidate_watched(), failing) {
            let floor = self.epochs.above_in_use();
            self.history.promoted(&failing, candidate, floor, now);
            // A promotion, proven: no longer a fence on a closing alone.
            sw.take_watch_only();
        }
    }

    /// The runtime could not activate the prepared connection: do not use its node before it
    /// is verified again.
    pub(super) fn reset_failed(&mut self, reason: &str, now: Instant) {
        let Some(node) = self.switch.as_mut().and_then(Switch::take_activation) else {
            return;
        };
        self.verification_failed(node, format!("activation failed: {reason}"), now);
    }

    /// The runtime activated the prepared connection: the application's connection points at
    /// its node. Writes the old master acknowledged after the promotion are looked for.
    pub(super) fn reset_done(&mut self, now: Instant) {
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        let Some(node) = sw.take_activation() else {
            return;
        };
        let known = sw.activated(&node, now);
        self.epochs.moved(self.master.as_ref(), &node, known);
        let old = self.master.replace(node.clone());
        if let Some(old) = &old {
            self.history.moved(old, &node);
        }
        if old.as_ref() != Some(&node) {
            self.watches.forget_replicas(&mut self.cx);
        }
        self.cx.emit(Event::AfterReset {
            old: old.clone(),
            new: node.clone(),
        });
        if let Some(old) = old.filter(|o| *o != node) {
            // An old master alive at the fence may have acknowledged writes after the
            // promotion: they are handed back before the switch resumes. One that failed the
            // fence's poll (dead) or leaves it unanswered past `query_timeout` (frozen) holds
            // nothing readable: its check does not hold the switch up.
            let wait = match self.lost.fence_answer(&old) {
                FenceAnswer::Master => true,
                FenceAnswer::Pending(sent) if after(sent, self.cx.cfg.query_timeout) > now => {
                    let give_up = after(sent, self.cx.cfg.query_timeout);
                    self.cx.timers.set(TimerReason::HandBack, give_up);
                    true
                }
                FenceAnswer::Pending(_) | FenceAnswer::Other => false,
            };
            if wait && let Some(sw) = self.switch.as_mut() {
                sw.hold_for_lost_writes(&mut self.cx.ops);
            }
            self.lost.check(old, node, now, &mut self.cx);
        }
        self.drive_switch(now);
    }

    /// The workers drained.
    pub(super) fn workers_paused(&mut self, now: Instant) {
        if let Some(sw) = self.switch.as_mut()
            && let Pause::Pending(_) = sw.pause
        {
            sw.pause = Pause::Done(now);
            self.cx.timers.cancel(TimerReason::PauseTimeout);
            self.drive_switch(now);
        }
    }

    /// The lost-write check is over, if it is.
    pub(super) fn lost_checked(&mut self, checked: Option<Checked>, now: Instant) {
        if let Some(Checked { old, commands }) = checked {
            self.lost_check_done(&old, commands.as_deref(), now);
        }
    }

    /// The lost-write check is over; `commands` are what it read back, if anything. A switch
    /// waiting for it hands them to the application, or resumes.
    fn lost_check_done(&mut self, old: &Addr, commands: Option<&[LostCommand]>, now: Instant) {
        let new = self.master.clone();
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        if sw.handback != HandBack::Checking {
            return;
        }
        match (commands.filter(|c| !c.is_empty()), new) {
            (Some(commands), Some(new)) => {
                let op = self.cx.start(Pending::HandBack);
                sw.handback = HandBack::Pending(op);
                let deadline = after(now, self.cx.cfg.fence_timeout);
                self.cx.timers.set(TimerReason::HandBack, deadline);
                self.cx.act(Action::HandBack {
                    op,
                    old: old.clone(),
                    new,
                    commands: commands.to_vec(),
                });
            }
            _ => {
                sw.handback = HandBack::NotNeeded;
                self.drive_switch(now);
            }
        }
    }

    /// The application is done with the lost writes (`answered_by_app`), or the hand-back
    /// deadline passed and the switch resumes anyway: the application took longer than
    /// `fence_timeout`, or the old master left the fence's poll unanswered past
    /// `query_timeout`.
    pub(super) fn handed_back(&mut self, answered_by_app: bool, now: Instant) {
        let old = self.switch.as_ref().and_then(|sw| sw.old.clone());
        let answered = old.is_some_and(|o| self.lost.fence_answer(&o) == FenceAnswer::Master);
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        match (sw.handback, answered_by_app) {
            (HandBack::Pending(_), true) => {}
            // The application's answer is no longer waited for.
            (HandBack::Pending(op), false) => self.cx.ops.finish(op),
            // The old master answered meanwhile: the check goes on (bounded on its own).
            (HandBack::Checking, false) if !answered => {}
            _ => return,
        }
        sw.handback = HandBack::NotNeeded;
        self.cx.timers.cancel(TimerReason::HandBack);
        self.drive_switch(now);
    }

    /// Resumes once the target is verified, the workers drained and lost writes handed back.
    fn try_finish(&mut self, now: Instant) {
        let Some(sw) = self.switch.as_ref() else {
            return;
        };
        let Some(connected) = sw.verified_at() else {
            return;
        };
        if matches!(sw.pause, Pause::Pending(_)) || sw.handback != HandBack::NotNeeded {
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
            TimerReason::HandBack,
        ] {
            self.cx.timers.cancel(t);
        }
        self.cx.act(Action::Resume);
        // The replicas of the master in use, to watch: at once at startup and when a fence is
        // lifted; after a switch, once the sentinels have had time to re-point them (their
        // `ROLE` would name the old master, and their re-pointing closes a watch opened now)
        // and at a moment of this process's own, so that a fleet of processes that switched
        // together does not ask the sentinels and connect to the replicas together. Sentinel
        // announces each re-pointing, which asks at once.
        match &sw.old {
            Some(old) if *old != new => {
                let delay = jitter(REPLICAS_AFTER_SWITCH, &mut self.cx.rng);
                let at = after(now, delay);
                self.cx.timers.set(TimerReason::ReplicasQuery, at);
            }
            _ => self.query_replicas(),
        }
        // A discovery started or scheduled while looking for this master is moot now (a late
        // reply is ignored by its id).
        self.discovery.settled(&mut self.cx);
        let since = |t: Instant| t.saturating_duration_since(sw.started);
        let total = since(now);
        if sw.old.as_ref() == Some(&new) {
            let reason = sw.lifting().unwrap_or("master re-verified").to_owned();
            self.cx.emit(Event::FenceLifted {
                master: new.clone(),
                reason,
                held: total,
            });
        } else {
            self.cx.emit(Event::SwitchCompleted {
                old: sw.old.clone(),
                new: new.clone(),
                path: sw.path,
                to_paused: match sw.pause {
                    Pause::Done(at) => Some(since(at)),
                    _ => None,
                },
                to_connected: since(connected),
                total,
            });
        }
        if !self.ready {
            self.ready = true;
            self.cx.timers.cancel(TimerReason::StartupDeadline);
            self.cx.emit(Event::Ready {
                master: new,
                elapsed: now.saturating_duration_since(self.created),
            });
            self.arm_periodic_check(now);
        }
    }
}

/// The role a `ROLE` reply tells, or why there is none.
fn role_of(reply: &Result<Reply, IoError>) -> Result<Role, String> {
    match reply {
        Ok(r) => parse_role(r).map_err(|m| m.0),
        Err(e) => Err(e.message().to_owned()),
    }
}

/// Whether the node refuses us (authentication, permissions): retrying the same way will not
/// help.
fn is_refusal(reply: &Result<Reply, IoError>) -> bool {
    match reply {
        Err(e) => e.kind() == IoErrorKind::Rejected,
        Ok(r) => matches!(parse_role(r), Ok(Role::Error(e)) if is_rejection(&e)),
    }
}

fn describe(role: Result<Role, String>) -> String {
    match role {
        Ok(role) => format!("ROLE says {role}"),
        Err(e) => e,
    }
}
