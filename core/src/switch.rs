//! The switch: fence → pause workers ∥ find and verify the new master (candidate `ROLE` polls,
//! a broker connection checked with `ROLE`) → activate it (close everything to the old one) →
//! resume. What sentinel messages do to it lives in `signals`.

use crate::action::{Action, OpId};
use crate::addr::Addr;
use crate::backoff::jitter;
use crate::epochs::Known;
use crate::event::{DetectionPath, DiscoveryError, Event, LostCommand};
use crate::input::{IoError, IoErrorKind};
use crate::lost::FenceAnswer;
use crate::machine::Core;
use crate::parse::{Role, is_rejection, parse_role};
use crate::reply::Reply;
use crate::timers::{TimerReason, after};
use std::time::Instant;

/// Whether the workers still need to drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pause {
    /// No drain: startup (no workers run yet), or `drain` is off.
    NotNeeded,
    Pending(OpId),
    Done(Instant),
}

/// Whether the switch waits for the lost-write check (and hands writes back) before it
/// resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandBack {
    /// Nothing to wait for.
    NotNeeded,
    /// The check of the old master (alive at the fence) is under way.
    Checking,
    /// The application has the lost writes.
    Pending(OpId),
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
    /// What is known of the epoch of `failing` (re-verified when the fence is lifted): exact
    /// when a sentinel's answer named it.
    pub(crate) failing_epoch: Known,
    /// The last target, kept after it failed verification (it may be failing over in turn).
    pub(crate) last_target: Option<Addr>,
    /// Why the old master is being re-verified (failover aborted, fence timed out).
    pub(crate) lifting: Option<String>,
    /// The master to use, as a sentinel or a promoted candidate named it.
    pub(crate) target: Option<Addr>,
    /// What is known of the epoch of `target`.
    pub(crate) target_epoch: Known,
    /// What is known of the epoch of `candidate`: `Announced` when a message that is not old
    /// news named it, `Unknown` when remembered from history.
    pub(crate) candidate_epoch: Known,
    /// The application's connection points at `target`, verified as master.
    pub(crate) verified: bool,
    pub(crate) connected_at: Option<Instant>,
    pub(crate) candidate: Option<Addr>,
    pub(crate) candidate_poll: Option<OpId>,
    pub(crate) connect: Option<(OpId, Addr)>,
    /// `connect` goes to the candidate whose watch just closed, before its `ROLE` was seen as
    /// master: a master reply makes it the target at once, anything else resumes the polls.
    pub(crate) speculative: bool,
    /// A `ROLE` check of `target` when it is the master already in use.
    pub(crate) probe: Option<(OpId, Addr)>,
    /// Fenced on a replica's closing alone (no sentinel announced a failover of the master
    /// yet): a candidate that is not master lifts the fence.
    pub(crate) watch_only: bool,
    /// The candidate was found by its watch closing, not named by a sentinel: one that is not
    /// master is dropped, not polled again.
    pub(crate) candidate_from_watch: bool,
    /// That candidate already answered once that it is not master: a second answer, on a
    /// watch connection, lets it go.
    pub(crate) denied: bool,
    /// Since when the switch waits for that candidate (its closing): one still unreachable
    /// `connect_timeout` later is let go.
    pub(crate) candidate_since: Option<Instant>,
    /// The connection being activated, and its node.
    pub(crate) activating: Option<(OpId, Addr)>,
    pub(crate) pause: Pause,
    pub(crate) handback: HandBack,
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
            failing_epoch: Known::Unknown,
            last_target: None,
            lifting: None,
            target: None,
            target_epoch: Known::Unknown,
            candidate_epoch: Known::Unknown,
            verified: false,
            connected_at: None,
            candidate: None,
            candidate_poll: None,
            connect: None,
            speculative: false,
            probe: None,
            watch_only: false,
            candidate_from_watch: false,
            denied: false,
            candidate_since: None,
            activating: None,
            pause,
            handback: HandBack::NotNeeded,
        }
    }

    /// Startup: find the first master; nothing to pause.
    pub(crate) fn startup(now: Instant) -> Self {
        Self::new(DetectionPath::Startup, None, None, Pause::NotNeeded, now)
    }

    /// The path a promoted candidate is reported with: the replica watch when the switch began
    /// with a replica's closing, else the early signal.
    pub(crate) fn promotion_path(&self) -> DetectionPath {
        match self.path {
            DetectionPath::ReplicaWatch => DetectionPath::ReplicaWatch,
            _ => DetectionPath::EarlySignal,
        }
    }
}

impl Core {
    /// Fences, and starts draining the workers when `drain` is configured.
    pub(crate) fn start_switch(
        &mut self,
        path: DetectionPath,
        sentinel: Option<Addr>,
        early: bool,
        signal: &str,
        now: Instant,
    ) {
        self.cancel_verify_probe();
        // Without a drain, jobs in flight keep running: the fence holds their commands and
        // they go to the new master once it is active. A drain waits for them first.
        let pause = if self.cfg.drain {
            Pause::Pending(self.op())
        } else {
            Pause::NotNeeded
        };
        let mut sw = Switch::new(path, sentinel.clone(), self.master.clone(), pause, now);
        sw.early = early;
        sw.failing = if early { self.master.clone() } else { None };
        self.switch = Some(sw);
        self.push_action(Action::Fence);
        if let Some(master) = self.master.clone() {
            // The old master's replication offset at the fence (lost writes).
            self.probe_fenced_master(master, now);
        }
        if let Pause::Pending(op) = pause {
            self.push_action(Action::PauseWorkers { op });
            self.timers.set(
                TimerReason::PauseTimeout,
                after(now, self.cfg.pause_timeout),
            );
        }
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
        epoch: Known,
        path: DetectionPath,
        sentinel: Option<Addr>,
        now: Instant,
    ) {
        // Never to a configuration older than the one in use, nor without news to a master
        // that a newer configuration replaced: ask the sentinels instead.
        if self.epochs.refuses(&addr, epoch, self.master.as_ref()) {
            let path = self.switch.as_ref().map_or(path, |sw| sw.path);
            if self.switch.as_ref().is_some_and(|sw| sw.target.is_none()) {
                self.ensure_discovery(path, now);
            }
            return;
        }
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        if sw.target.as_ref() == Some(&addr) {
            if let Known::Exact(_) = epoch {
                sw.target_epoch = epoch;
            }
            return;
        }
        sw.target = Some(addr.clone());
        sw.target_epoch = epoch;
        sw.last_target = Some(addr.clone());
        sw.verified = false;
        sw.early = false;
        sw.connect = None; // a late result is discarded through `open_connects`
        sw.speculative = false;
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
            if sw.connect.is_none()
                && sw.candidate_poll.is_none()
                && !self.timers.is_set(TimerReason::RolePoll)
            {
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
        epoch: Known,
        path: DetectionPath,
        sentinel: Addr,
        now: Instant,
    ) {
        let Some(sw) = self.switch.as_ref() else {
            return;
        };
        let failing = sw.failing.as_ref().or(self.master.as_ref());
        // Fenced early on `addr`: wait for the promotion, unless the answer names it at an
        // epoch above the failover's (a newer configuration: the failover is over).
        let superseded = match epoch {
            Known::Exact(e) => !self.history.is_failing(&addr, Some(e), now),
            Known::Announced(_) | Known::Unknown => false,
        };
        // A replica's closing waits for that replica's answer: sentinels that still name the
        // master in use may not have heard of its promotion yet.
        let waiting = !superseded || sw.watch_only || sw.candidate_from_watch;
        if sw.target.is_some() || (sw.early && failing == Some(&addr) && waiting) {
            return self.drive_switch(now);
        }
        if self.follow_failover(&addr, epoch, &sentinel, now) {
            return;
        }
        self.set_target(addr, epoch, path, Some(sentinel), now);
    }

    /// Returns whether the reply belonged to the switch.
    pub(crate) fn switch_node_reply(
        &mut self,
        op: OpId,
        reply: &Result<Reply, IoError>,
        now: Instant,
    ) -> bool {
        let Some(sw) = self.switch.as_mut() else {
            return false;
        };
        let role = || match reply {
            Ok(r) => parse_role(r).map_err(|m| m.0),
            Err(e) => Err(e.message().to_owned()),
        };
        // The node refuses us (authentication, permissions): retrying the same way will not
        // help.
        let refused = match reply {
            Err(e) => e.kind() == IoErrorKind::Rejected,
            Ok(r) => matches!(parse_role(r), Ok(Role::Error(e)) if is_rejection(&e)),
        };
        if let Some((_, target)) = sw.connect.take_if(|(c, _)| *c == op) {
            self.timers.cancel(TimerReason::ConnectTimeout);
            let speculative = std::mem::take(&mut sw.speculative);
            match role() {
                Ok(Role::Master) => {
                    if speculative {
                        self.adopt_candidate(target.clone(), now);
                    }
                    let Some(sw) = self.switch.as_mut() else {
                        return true;
                    };
                    // An answer that came while connecting may name a newer configuration
                    // than the target's: a deposed master still says master until the
                    // sentinels reconfigure it. Ask the sentinels instead.
                    let (epoch, path) = (sw.target_epoch, sw.path);
                    if self.epochs.refuses(&target, epoch, self.master.as_ref()) {
                        self.push_action(Action::Discard { op });
                        self.ensure_discovery(path, now);
                        let reason = "a sentinel named a newer configuration".to_owned();
                        self.verification_failed(target, reason, now);
                        return true;
                    }
                    let Some(sw) = self.switch.as_mut() else {
                        return true;
                    };
                    sw.activating = Some((op, target.clone()));
                    let old = self.master.clone();
                    self.emit(Event::BeforeReset {
                        old: old.clone(),
                        new: target.clone(),
                    });
                    // Writes still reaching the deposed master (other processes whose fence
                    // comes later) wait there instead of being lost; a master this process
                    // paused and moves back to is unpaused first.
                    let (pause, unpause) = self.lost.deposing(
                        old.as_ref(),
                        &target,
                        self.cfg.deposed_pause,
                        self.cfg.query_timeout,
                        now,
                    );
                    for action in [pause, unpause].into_iter().flatten() {
                        self.push_action(action);
                    }
                    // Held commands go out at `Resume`, after lost writes were handed back;
                    // with a drain, now (jobs in flight wait on them, the pause on the jobs).
                    self.push_action(Action::Activate {
                        op,
                        node: target,
                        old,
                        release: self.cfg.drain,
                    });
                }
                other => {
                    if reply.is_ok() {
                        self.push_action(Action::Discard { op });
                    }
                    if speculative {
                        self.candidate_not_promoted(target, other, now);
                    } else if refused && self.fails_fast() {
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
                    let (sentinel, epoch, path) =
                        (sw.sentinel.clone(), sw.candidate_epoch, sw.promotion_path());
                    self.note_watched_promotion(&candidate, now);
                    self.set_target(candidate, epoch, path, sentinel, now);
                }
                _ if sw.lifting.is_some() => {
                    sw.candidate = None;
                    self.lift_to_master(now);
                }
                (other, Some(candidate)) => self.candidate_not_promoted(candidate, other, now),
                (_, None) => {}
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
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        let speculative = std::mem::take(&mut sw.speculative);
        if let Some((_, node)) = sw.connect.take() {
            if speculative {
                let reason = format!("no ROLE answer within {:?}", self.cfg.connect_timeout);
                return self.candidate_not_promoted(node, Err(reason), now);
            }
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
        // While no watch connection is open on the candidate, each poll opens one: its `ROLE`
        // reply is the poll, and its closing announces the promotion.
        if self.watches.answered_on(&node).is_some() {
            self.push_action(Action::PollRole { op, node });
        } else {
            self.open_watch(op, node);
        }
    }

    /// The candidate's watch connection closed: it was probably just promoted. Open the broker
    /// connection to it at once; its `ROLE` reply decides (a poll still in flight may have been
    /// answered before the promotion, and connecting directly saves a round of connection,
    /// `ROLE` and connection again on a node that every process reaches at this moment).
    pub(crate) fn candidate_watch_closed(&mut self, now: Instant) {
        let op = self.op();
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        let (None, Some(candidate), None) = (&sw.target, sw.candidate.clone(), &sw.connect) else {
            return;
        };
        if sw.lifting.is_some() {
            sw.candidate_poll = None;
            self.timers.cancel(TimerReason::RolePoll);
            return self.role_poll_due(now);
        }
        sw.candidate_poll = None;
        sw.connect = Some((op, candidate.clone()));
        sw.speculative = true;
        self.timers.cancel(TimerReason::RolePoll);
        self.open_connects.insert(op);
        self.timers.set(
            TimerReason::ConnectTimeout,
            after(now, self.cfg.connect_timeout),
        );
        self.push_action(Action::Connect {
            op,
            node: candidate,
        });
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
            let of = self.cfg.nat.map(of);
            if self.master.as_ref() != Some(&of)
                && self.is_listed_replica(&of)
                && let Some(sw) = self.switch.as_mut()
                && sw.candidate_from_watch
            {
                sw.candidate = Some(of);
                sw.denied = false;
                self.timers.cancel(TimerReason::RolePoll);
                return self.role_poll_due(now);
            }
        }
        let asked = answer.is_ok();
        let why = describe(answer);
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        if asked && sw.candidate_from_watch && !std::mem::replace(&mut sw.denied, true) {
            // Once more, on a watch connection of its own (the first answer came on the
            // connection opened for the switch), before letting it go.
            self.timers.cancel(TimerReason::RolePoll);
            return self.role_poll_due(now);
        }
        let since = sw.candidate_since.unwrap_or(sw.started);
        let given_up = asked || now.saturating_duration_since(since) >= self.cfg.connect_timeout;
        if !(sw.candidate_from_watch && given_up) {
            let next = jitter(self.cfg.role_poll_interval, &mut self.rng);
            return self.timers.set(TimerReason::RolePoll, after(now, next));
        }
        sw.candidate = None;
        sw.candidate_from_watch = false;
        if std::mem::take(&mut sw.watch_only) {
            let reason = format!("replica {node} closed its connections but is not master: {why}");
            let _ = self.lift_fence(reason, now);
        }
    }

    /// The candidate a speculative connection found promoted becomes the target (what a
    /// promoted `ROLE` poll does, the connection already open).
    fn adopt_candidate(&mut self, candidate: Addr, now: Instant) {
        self.note_watched_promotion(&candidate, now);
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        sw.target = Some(candidate.clone());
        sw.target_epoch = sw.candidate_epoch;
        sw.last_target = Some(candidate.clone());
        sw.early = false;
        let (path, sentinel) = (sw.promotion_path(), sw.sentinel.clone());
        for t in [TimerReason::RolePoll, TimerReason::FenceTimeout] {
            self.timers.cancel(t);
        }
        if self.master.as_ref() != Some(&candidate) {
            self.emit(Event::SwitchDetected {
                old: self.master.clone(),
                new: candidate,
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
        let Some(sw) = self.switch.as_ref() else {
            return;
        };
        let failing = sw.failing.clone().or_else(|| self.master.clone());
        if let (true, Some(failing)) = (sw.candidate_from_watch, failing) {
            let floor = self.epochs.above_in_use();
            self.history.promoted(&failing, candidate, floor, now);
            // A promotion, proven: no longer a fence on a closing alone.
            if let Some(sw) = self.switch.as_mut() {
                sw.watch_only = false;
            }
        }
    }

    /// The runtime could not activate the prepared connection `op`: do not use its node
    /// before it is verified again.
    pub(crate) fn reset_failed(&mut self, op: OpId, reason: &str, now: Instant) {
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        let Some((_, node)) = sw.activating.take_if(|(a, _)| *a == op) else {
            return;
        };
        self.verification_failed(node, format!("activation failed: {reason}"), now);
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
        let known = if sw.verified {
            sw.target_epoch
        } else {
            Known::Unknown
        };
        self.epochs.moved(self.master.as_ref(), &node, known);
        let old = self.master.replace(node.clone());
        if let Some(old) = &old {
            self.history.moved(old, &node);
        }
        if old.as_ref() != Some(&node) {
            self.forget_replicas();
        }
        self.emit(Event::AfterReset {
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
                FenceAnswer::Pending(sent) if after(sent, self.cfg.query_timeout) > now => {
                    let give_up = after(sent, self.cfg.query_timeout);
                    self.timers.set(TimerReason::HandBack, give_up);
                    true
                }
                FenceAnswer::Pending(_) | FenceAnswer::Other => false,
            };
            if wait && let Some(sw) = self.switch.as_mut() {
                sw.handback = HandBack::Checking;
            }
            self.check_lost_writes(old, node, now);
        }
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

    /// The lost-write check is over; `commands` are what it read back, if anything. A switch
    /// waiting for it hands them to the application, or resumes.
    pub(crate) fn lost_check_done(
        &mut self,
        old: &Addr,
        commands: Option<&[LostCommand]>,
        now: Instant,
    ) {
        let op = self.op();
        let new = self.master.clone();
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        if sw.handback != HandBack::Checking {
            return;
        }
        match (commands.filter(|c| !c.is_empty()), new) {
            (Some(commands), Some(new)) => {
                sw.handback = HandBack::Pending(op);
                self.timers
                    .set(TimerReason::HandBack, after(now, self.cfg.fence_timeout));
                self.push_action(Action::HandBack {
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

    /// The application is done with the lost writes (`None`: the hand-back deadline, and the
    /// switch resumes anyway: the application took longer than `fence_timeout`, or the old
    /// master left the fence's poll unanswered past `query_timeout`).
    pub(crate) fn handed_back(&mut self, op: Option<OpId>, now: Instant) {
        let old = self.switch.as_ref().and_then(|sw| sw.old.clone());
        let answered = old.is_some_and(|o| self.lost.fence_answer(&o) == FenceAnswer::Master);
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        match (sw.handback, op) {
            (HandBack::Pending(p), Some(op)) if p == op => {}
            (HandBack::Pending(_), None) => {}
            // The old master answered meanwhile: the check goes on (bounded on its own).
            (HandBack::Checking, None) if !answered => {}
            _ => return,
        }
        sw.handback = HandBack::NotNeeded;
        self.timers.cancel(TimerReason::HandBack);
        self.drive_switch(now);
    }

    fn try_finish(&mut self, now: Instant) {
        let Some(sw) = self.switch.as_ref() else {
            return;
        };
        if !sw.verified
            || matches!(sw.pause, Pause::Pending(_))
            || sw.handback != HandBack::NotNeeded
        {
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
            self.timers.cancel(t);
        }
        self.push_action(Action::Resume);
        // The replicas of the master in use, to watch (anew after a switch).
        self.query_replicas();
        // A discovery started or scheduled while looking for this master is moot now (a late
        // reply is ignored by its id).
        if !matches!(self.discovery, crate::discovery::Discovery::Idle) {
            self.discovery = crate::discovery::Discovery::Idle;
            self.timers.cancel(TimerReason::DiscoveryRetry);
            self.timers.cancel(TimerReason::QueryTimeout);
        }
        self.discovery_backoff.reset();
        self.last_discovery_error = None;
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
}

fn describe(role: Result<Role, String>) -> String {
    match role {
        Ok(role) => format!("ROLE says {role}"),
        Err(e) => e,
    }
}
