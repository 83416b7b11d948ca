//! The switch: fence → pause workers ∥ find and verify the new master (candidate `ROLE` polls,
//! a broker connection checked with `ROLE`) → activate it (close everything to the old one) →
//! resume. What sentinel messages do to it lives in `signals`.

use crate::action::Action;
use crate::addr::Addr;
use crate::backoff::jitter;
use crate::epochs::Known;
use crate::event::{DetectionPath, DiscoveryError, Event, LostCommand};
use crate::input::{IoError, IoErrorKind};
use crate::lost::{Checked, FenceAnswer};
use crate::machine::Core;
use crate::op::{OpId, Ops, Pending};
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

    /// Stops waiting for the broker connection in flight: it is discarded when it answers.
    pub(crate) fn drop_connect(&mut self, ops: &mut Ops) {
        if let Some((op, _)) = self.connect.take() {
            ops.repurpose(op, Pending::Unwanted);
        }
        self.speculative = false;
    }

    /// Stops waiting for the check of the master in use.
    pub(crate) fn drop_probe(&mut self, ops: &mut Ops) {
        if let Some((op, _)) = self.probe.take() {
            ops.finish(op);
        }
    }

    /// Stops waiting for the candidate's poll (a watch connection it opened stays a watch).
    pub(crate) fn drop_poll(&mut self, ops: &mut Ops) {
        if let Some(op) = self.candidate_poll.take() {
            ops.poll_dropped(op);
        }
    }

    /// The candidate the switch waits for, if it waits for one (no target yet).
    pub(crate) fn awaited(&self) -> Option<&Addr> {
        self.candidate.as_ref().filter(|_| self.target.is_none())
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
        self.discovery.cancel_verify(&mut self.cx);
        // Without a drain, jobs in flight keep running: the fence holds their commands and
        // they go to the new master once it is active. A drain waits for them first.
        let pause = if self.cx.cfg.drain {
            Pause::Pending(self.cx.start(Pending::Pause))
        } else {
            Pause::NotNeeded
        };
        let mut sw = Switch::new(path, sentinel.clone(), self.master.clone(), pause, now);
        sw.early = early;
        sw.failing = if early { self.master.clone() } else { None };
        self.switch = Some(sw);
        self.cx.act(Action::Fence);
        if let Some(master) = self.master.clone() {
            // The old master's replication offset at the fence (lost writes).
            self.lost.probe_fenced(master, now, &mut self.cx);
        }
        if let Pause::Pending(op) = pause {
            self.cx.act(Action::PauseWorkers { op });
            self.cx.timers.set(
                TimerReason::PauseTimeout,
                after(now, self.cx.cfg.pause_timeout),
            );
        }
        if early {
            self.cx.timers.set(
                TimerReason::FenceTimeout,
                after(now, self.cx.cfg.fence_timeout),
            );
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
        sw.drop_connect(&mut self.cx.ops);
        sw.drop_probe(&mut self.cx.ops);
        sw.drop_poll(&mut self.cx.ops);
        for t in [
            TimerReason::ConnectTimeout,
            TimerReason::ProbeTimeout,
            TimerReason::RolePoll,
            TimerReason::FenceTimeout,
        ] {
            self.cx.timers.cancel(t);
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
            let deadline = after(now, self.cx.cfg.connect_timeout);
            let in_use = self.master.as_ref() == Some(&target);
            let op = self.cx.start(if in_use {
                Pending::SwitchProbe
            } else {
                Pending::Connect
            });
            let Some(sw) = self.switch.as_mut() else {
                return;
            };
            if in_use {
                sw.probe = Some((op, target.clone()));
                self.cx.timers.set(TimerReason::ProbeTimeout, deadline);
                self.cx.act(Action::PollRole { op, node: target });
            } else {
                sw.connect = Some((op, target.clone()));
                self.cx.timers.set(TimerReason::ConnectTimeout, deadline);
                self.cx.act(Action::Connect { op, node: target });
            }
        } else if sw.candidate.is_some() && (sw.early || sw.lifting.is_some()) {
            // Candidate polls are bounded by the fence timeout (or end the lifting).
            if sw.connect.is_none()
                && sw.candidate_poll.is_none()
                && !self.cx.timers.is_set(TimerReason::RolePoll)
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

    /// The `ROLE` reply of the switch's broker connection `op` (or its failure).
    pub(crate) fn connect_reply(&mut self, op: OpId, reply: &Result<Reply, IoError>, now: Instant) {
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        let Some((_, target)) = sw.connect.take() else {
            return;
        };
        self.cx.timers.cancel(TimerReason::ConnectTimeout);
        let speculative = std::mem::take(&mut sw.speculative);
        match role_of(reply) {
            Ok(Role::Master) => {
                if speculative {
                    self.adopt_candidate(target.clone(), now);
                }
                let Some(sw) = self.switch.as_mut() else {
                    return;
                };
                // An answer that came while connecting may name a newer configuration
                // than the target's: a deposed master still says master until the
                // sentinels reconfigure it. Ask the sentinels instead.
                let (epoch, path) = (sw.target_epoch, sw.path);
                if self.epochs.refuses(&target, epoch, self.master.as_ref()) {
                    self.cx.ops.finish(op);
                    self.cx.act(Action::Discard { op });
                    self.ensure_discovery(path, now);
                    let reason = "a sentinel named a newer configuration".to_owned();
                    self.verification_failed(target, reason, now);
                    return;
                }
                let Some(sw) = self.switch.as_mut() else {
                    return;
                };
                self.cx.ops.repurpose(op, Pending::Activation);
                if let Some((old, _)) = sw.activating.replace((op, target.clone())) {
                    // An activation still under way is no longer waited for.
                    self.cx.ops.finish(old);
                }
                let old = self.master.clone();
                self.cx.emit(Event::BeforeReset {
                    old: old.clone(),
                    new: target.clone(),
                });
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

    /// The `ROLE` reply of the switch's check of the master in use as its target.
    pub(crate) fn switch_probe_reply(&mut self, reply: &Result<Reply, IoError>, now: Instant) {
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        let Some((_, target)) = sw.probe.take() else {
            return;
        };
        self.cx.timers.cancel(TimerReason::ProbeTimeout);
        match role_of(reply) {
            Ok(Role::Master) => {
                sw.verified = true;
                sw.connected_at = Some(now);
                self.drive_switch(now);
            }
            other => self.verification_failed(target, describe(other), now),
        }
    }

    /// The `ROLE` reply of the candidate's poll `op`.
    pub(crate) fn candidate_polled(
        &mut self,
        op: OpId,
        reply: &Result<Reply, IoError>,
        now: Instant,
    ) {
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        debug_assert_eq!(sw.candidate_poll, Some(op));
        sw.drop_poll(&mut self.cx.ops);
        match (role_of(reply), sw.candidate.clone()) {
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
    }

    fn verification_failed(&mut self, node: Addr, reason: String, now: Instant) {
        self.cx.emit(Event::VerificationFailed {
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
        sw.drop_poll(&mut self.cx.ops);
        sw.lifting = None;
        sw.early = false;
        let path = sw.path;
        if self.discovery.is_idle() {
            let error = DiscoveryError::VerificationFailed { node, reason };
            self.discovery
                .schedule_retry(path, false, error, now, &mut self.cx);
        }
        self.drive_switch(now);
    }

    pub(crate) fn connect_timed_out(&mut self, now: Instant) {
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        let speculative = sw.speculative;
        if let Some((_, node)) = sw.connect.clone() {
            sw.drop_connect(&mut self.cx.ops);
            if speculative {
                let reason = format!("no ROLE answer within {:?}", self.cx.cfg.connect_timeout);
                return self.candidate_not_promoted(node, Err(reason), now);
            }
            let reason = format!("no ROLE answer within {:?}", self.cx.cfg.connect_timeout);
            self.verification_failed(node, reason, now);
        }
    }

    pub(crate) fn switch_probe_timed_out(&mut self, now: Instant) {
        if let Some((op, node)) = self.switch.as_mut().and_then(|s| s.probe.take()) {
            self.cx.ops.finish(op);
            let reason = format!("no ROLE answer within {:?}", self.cx.cfg.connect_timeout);
            self.verification_failed(node, reason, now);
        }
    }

    /// Polls the candidate's `ROLE` (also when the previous poll got no answer in time).
    pub(crate) fn role_poll_due(&mut self, now: Instant) {
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        let (None, Some(node)) = (&sw.target, sw.candidate.clone()) else {
            return;
        };
        if sw.lifting.is_some() && sw.candidate_poll.is_some() {
            // The candidate did not answer the last poll before lifting: give up on it.
            sw.candidate = None;
            sw.drop_poll(&mut self.cx.ops);
            return self.lift_to_master(now);
        }
        sw.drop_poll(&mut self.cx.ops);
        // While no watch connection is open on the candidate, each poll opens one: its `ROLE`
        // reply is the poll, and its closing announces the promotion.
        let watched = self.watches.answered_on(&node).is_some();
        let op = self.cx.start(Pending::CandidatePoll { watch: !watched });
        sw.candidate_poll = Some(op);
        self.cx.timers.set(
            TimerReason::RolePoll,
            after(now, self.cx.cfg.connect_timeout),
        );
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
    pub(crate) fn replica_closed(&mut self, node: Addr, now: Instant) -> bool {
        let signal = format!("replica {node} closed its connections");
        match self.switch.as_ref() {
            None => {
                self.start_switch(DetectionPath::ReplicaWatch, None, true, &signal, now);
                if let Some(sw) = self.switch.as_mut() {
                    sw.watch_only = true;
                }
            }
            // Fenced (a heard `+odown`, an application error, ...) and no candidate named:
            // this replica's closing names it.
            Some(sw) if sw.target.is_none() && sw.candidate.is_none() => {}
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
            self.cx.timers.set(
                TimerReason::FenceTimeout,
                after(now, self.cx.cfg.fence_timeout),
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
        self.cx.timers.cancel(TimerReason::RolePoll);
        self.candidate_watch_closed(now);
        true
    }

    /// Whether the switch waits for `node` as its candidate.
    pub(crate) fn is_candidate(&self, node: &Addr) -> bool {
        self.switch.as_ref().and_then(Switch::awaited) == Some(node)
    }

    /// The `ROLE` answer of the watch `op` (`None`: it failed). A replica of the master in
    /// use that says master now was promoted since: as if its watch had closed.
    pub(crate) fn watch_answered(&mut self, op: OpId, reply: Option<&Reply>, now: Instant) {
        let candidate = self.switch.as_ref().and_then(Switch::awaited);
        let promoted = self.watches.answered(
            op,
            reply,
            self.master.as_ref(),
            candidate,
            now,
            &mut self.cx,
        );
        if let Some(node) = promoted
            && !self.replica_closed(node.clone(), now)
        {
            self.watches.retry(&node, now, &mut self.cx);
        }
    }

    /// Asks the sentinels for the replicas of the master in use, to watch them.
    pub(crate) fn query_replicas(&mut self) {
        self.watches
            .query(self.master.as_ref(), &self.listeners, &mut self.cx);
    }

    /// The candidate's watch connection closed: it was probably just promoted. Open the broker
    /// connection to it at once; its `ROLE` reply decides (a poll still in flight may have been
    /// answered before the promotion, and connecting directly saves a round of connection,
    /// `ROLE` and connection again on a node that every process reaches at this moment).
    pub(crate) fn candidate_watch_closed(&mut self, now: Instant) {
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        let (None, Some(candidate), None) = (&sw.target, sw.candidate.clone(), &sw.connect) else {
            return;
        };
        if sw.lifting.is_some() {
            sw.drop_poll(&mut self.cx.ops);
            self.cx.timers.cancel(TimerReason::RolePoll);
            return self.role_poll_due(now);
        }
        sw.drop_poll(&mut self.cx.ops);
        let op = self.cx.start(Pending::Connect);
        sw.connect = Some((op, candidate.clone()));
        sw.speculative = true;
        self.cx.timers.cancel(TimerReason::RolePoll);
        self.cx.timers.set(
            TimerReason::ConnectTimeout,
            after(now, self.cx.cfg.connect_timeout),
        );
        self.cx.act(Action::Connect {
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
            let of = self.cx.cfg.nat.map(of);
            if self.master.as_ref() != Some(&of)
                && self.watches.is_listed(&of)
                && let Some(sw) = self.switch.as_mut()
                && sw.candidate_from_watch
            {
                sw.candidate = Some(of);
                sw.denied = false;
                self.cx.timers.cancel(TimerReason::RolePoll);
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
            self.cx.timers.cancel(TimerReason::RolePoll);
            return self.role_poll_due(now);
        }
        let since = sw.candidate_since.unwrap_or(sw.started);
        let given_up = asked || now.saturating_duration_since(since) >= self.cx.cfg.connect_timeout;
        if !(sw.candidate_from_watch && given_up) {
            let next = jitter(self.cx.cfg.role_poll_interval, &mut self.cx.rng);
            return self.cx.timers.set(TimerReason::RolePoll, after(now, next));
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
            self.cx.timers.cancel(t);
        }
        if self.master.as_ref() != Some(&candidate) {
            self.cx.emit(Event::SwitchDetected {
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

    /// The runtime could not activate the prepared connection: do not use its node before it
    /// is verified again.
    pub(crate) fn reset_failed(&mut self, reason: &str, now: Instant) {
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        let Some((_, node)) = sw.activating.take() else {
            return;
        };
        self.verification_failed(node, format!("activation failed: {reason}"), now);
    }

    pub(crate) fn reset_done(&mut self, now: Instant) {
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        let Some((_, node)) = sw.activating.take() else {
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
                if let HandBack::Pending(op) = sw.handback {
                    // A hand-back of an earlier activation is no longer waited for.
                    self.cx.ops.finish(op);
                }
                sw.handback = HandBack::Checking;
            }
            self.lost.check(old, node, now, &mut self.cx);
        }
        self.drive_switch(now);
    }

    pub(crate) fn workers_paused(&mut self, now: Instant) {
        if let Some(sw) = self.switch.as_mut()
            && let Pause::Pending(_) = sw.pause
        {
            sw.pause = Pause::Done(now);
            self.cx.timers.cancel(TimerReason::PauseTimeout);
            self.drive_switch(now);
        }
    }

    /// The lost-write check is over, if it is.
    pub(crate) fn lost_checked(&mut self, checked: Option<Checked>, now: Instant) {
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
                self.cx
                    .timers
                    .set(TimerReason::HandBack, after(now, self.cx.cfg.fence_timeout));
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

    /// The application is done with the lost writes (`answered`), or the hand-back deadline
    /// passed and the switch resumes anyway: the application took longer than
    /// `fence_timeout`, or the old master left the fence's poll unanswered past
    /// `query_timeout`.
    pub(crate) fn handed_back(&mut self, answered_by_app: bool, now: Instant) {
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
        let Some(mut sw) = self.switch.take() else {
            return;
        };
        sw.drop_connect(&mut self.cx.ops);
        sw.drop_probe(&mut self.cx.ops);
        sw.drop_poll(&mut self.cx.ops);
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
        // The replicas of the master in use, to watch (anew after a switch).
        self.query_replicas();
        // A discovery started or scheduled while looking for this master is moot now (a late
        // reply is ignored by its id).
        self.discovery.settled(&mut self.cx);
        let total = now.saturating_duration_since(sw.started);
        if sw.old.as_ref() == Some(&new) {
            let reason = sw
                .lifting
                .unwrap_or_else(|| "master re-verified".to_owned());
            self.cx.emit(Event::FenceLifted {
                master: new.clone(),
                reason,
                held: total,
            });
        } else {
            let since = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(sw.started));
            self.cx.emit(Event::SwitchCompleted {
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
