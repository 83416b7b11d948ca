//! The switch, one at a time from the fence to `Resume`: what it waits for (its [`Phase`]:
//! the sentinels' answer, a failover's promotion, the verification of its target) and the
//! operations it has in flight. It guards its own rules (one target at a time, work for an
//! earlier target dropped, candidates only while no target is known); the core drives it with
//! the other parts (discovery, watches, the lost-write check).

use crate::action::Action;
use crate::addr::Addr;
use crate::context::Context;
use crate::epochs::Known;
use crate::event::DetectionPath;
use crate::op::{OpId, Ops, Pending};
use crate::timers::{TimerReason, Timers, after};
use std::time::Instant;

/// A switch or fence in progress. Work is fenced from its start until `Resume`.
#[derive(Debug)]
pub(crate) struct Switch {
    /// What detected it.
    pub(crate) path: DetectionPath,
    /// The sentinel whose message or answer started it, if one did.
    pub(crate) sentinel: Option<Addr>,
    pub(crate) started: Instant,
    /// The master in use when the switch started.
    pub(crate) old: Option<Addr>,
    phase: Phase,
    /// The master whose failover the fence waited for last.
    failing: Option<Addr>,
    /// What is known of the epoch of `failing` (re-verified when the fence is lifted): exact
    /// when a sentinel's answer named it.
    failing_epoch: Known,
    /// The last target, kept after it failed verification (it may be failing over in turn).
    last_target: Option<Addr>,
    /// Why the fence is being lifted (the failover was aborted, the fence timed out): the
    /// candidate gets one last poll, then the failing master is re-verified; reported if the
    /// switch ends on the master it began with.
    lifting: Option<String>,
    /// Fenced on a replica's closing alone (no sentinel announced a failover of the master
    /// yet): a candidate that is not master lifts the fence.
    watch_only: bool,
    /// The activation the runtime is executing (the prepared connection, its node): it
    /// completes whatever the switch decided meanwhile.
    activating: Option<(OpId, Addr)>,
    pub(crate) pause: Pause,
    pub(crate) handback: HandBack,
}

/// What the switch waits for.
#[derive(Debug)]
enum Phase {
    /// The sentinels' answer (discovery runs or is scheduled).
    Seeking,
    /// A failover's promotion (fenced on an early signal or a replica's closing; the fence
    /// timeout runs): the candidate, once one is named, is watched and polled.
    Awaiting(Option<Candidate>),
    /// The fence is being lifted and the candidate gets a last poll.
    LastCall(Candidate),
    /// The `ROLE` of the target, on a new broker connection (or on a probe, when it is the
    /// master in use).
    Verifying {
        target: Target,
        check: Option<Check>,
    },
    /// Nothing more of the target: the application's connection points at it, verified as
    /// master at `at`. The drain and the hand-back of lost writes may still run.
    Verified { target: Target, at: Instant },
}

/// The master the switch moves to.
#[derive(Debug, Clone)]
struct Target {
    addr: Addr,
    /// What is known of its configuration epoch.
    epoch: Known,
}

/// The check of the target in flight.
#[derive(Debug, Clone, Copy)]
enum Check {
    /// A new broker connection, answered with its `ROLE`.
    Connect(OpId),
    /// A `ROLE` probe of the master in use.
    Probe(OpId),
}

/// A replica expected to be promoted.
#[derive(Debug)]
struct Candidate {
    addr: Addr,
    /// What is known of the epoch of its promotion: `Announced` when a message that is not
    /// old news named it (or its watch saw it), `Unknown` when remembered from history.
    epoch: Known,
    /// The `ROLE` poll in flight.
    poll: Option<OpId>,
    /// A broker connection opened when its watch closed, before its `ROLE` was seen: a master
    /// reply makes it the target at once, anything else resumes the polls.
    connect: Option<OpId>,
    /// Found by its watch closing, not named by a sentinel.
    watched: Option<Watched>,
}

/// A candidate found by its watch closing: one that is not master is let go, not polled on.
#[derive(Debug, Clone, Copy)]
struct Watched {
    /// Its closing: one still unreachable `connect_timeout` later is let go.
    since: Instant,
    /// It already answered once that it is not master: a second answer, on a watch
    /// connection, lets it go.
    denied: bool,
}

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

/// What the switch needs next.
#[derive(Debug)]
pub(crate) enum Step {
    /// Nothing: it waits for an answer.
    Wait,
    /// Verify the target (it names it).
    Verify(Addr),
    /// Poll the candidate.
    Poll,
    /// Ask the sentinels.
    Discover(DetectionPath),
    /// The target is verified: resume once drained and handed back.
    Finish,
}

/// What the switch knows of a connection that answered.
#[derive(Debug)]
pub(crate) struct Connected {
    /// Its node.
    pub(crate) node: Addr,
    /// Opened to the candidate before its `ROLE` was seen as master.
    pub(crate) speculative: bool,
}

impl Switch {
    /// A fence, `early` when it waits for the promotion of a failover of `old` (the fence
    /// timeout runs), else it asks the sentinels.
    pub(crate) fn new(
        path: DetectionPath,
        sentinel: Option<Addr>,
        old: Option<Addr>,
        early: bool,
        pause: Pause,
        now: Instant,
    ) -> Self {
        Switch {
            path,
            sentinel,
            started: now,
            phase: if early {
                Phase::Awaiting(None)
            } else {
                Phase::Seeking
            },
            failing: if early { old.clone() } else { None },
            old,
            failing_epoch: Known::Unknown,
            last_target: None,
            lifting: None,
            watch_only: false,
            activating: None,
            pause,
            handback: HandBack::NotNeeded,
        }
    }

    /// Startup: find the first master; nothing to pause.
    pub(crate) fn startup(now: Instant) -> Self {
        Self::new(
            DetectionPath::Startup,
            None,
            None,
            false,
            Pause::NotNeeded,
            now,
        )
    }

    /// The master it moves to, once one is known.
    pub(crate) fn target(&self) -> Option<&Addr> {
        match &self.phase {
            Phase::Verifying { target, .. } | Phase::Verified { target, .. } => Some(&target.addr),
            _ => None,
        }
    }

    /// What is known of the target's epoch.
    pub(crate) fn target_epoch(&self) -> Known {
        match &self.phase {
            Phase::Verifying { target, .. } | Phase::Verified { target, .. } => target.epoch,
            _ => Known::Unknown,
        }
    }

    fn candidate(&self) -> Option<&Candidate> {
        match &self.phase {
            Phase::Awaiting(Some(c)) | Phase::LastCall(c) => Some(c),
            _ => None,
        }
    }

    fn candidate_mut(&mut self) -> Option<&mut Candidate> {
        match &mut self.phase {
            Phase::Awaiting(Some(c)) | Phase::LastCall(c) => Some(c),
            _ => None,
        }
    }

    /// The candidate it waits for, if any.
    pub(crate) fn awaited(&self) -> Option<&Addr> {
        self.candidate().map(|c| &c.addr)
    }

    /// What is known of the candidate's epoch.
    pub(crate) fn candidate_epoch(&self) -> Known {
        self.candidate().map_or(Known::Unknown, |c| c.epoch)
    }

    /// Whether its candidate was found by a watch closing (not named by a sentinel).
    pub(crate) fn candidate_watched(&self) -> bool {
        self.candidate().is_some_and(|c| c.watched.is_some())
    }

    /// When its watched candidate closed (`None` for one a sentinel named).
    pub(crate) fn watched_since(&self) -> Option<Instant> {
        Some(self.candidate()?.watched?.since)
    }

    /// Whether it waits for a failover's promotion (fenced early).
    pub(crate) fn is_awaiting(&self) -> bool {
        matches!(self.phase, Phase::Awaiting(_))
    }

    /// Whether it waits for the promotion of a failover of `master`.
    pub(crate) fn awaits_failover_of(&self, master: &Addr) -> bool {
        self.is_awaiting() && self.failing.as_ref() == Some(master)
    }

    /// The master whose failover it waited for last, if any.
    pub(crate) fn failing(&self) -> Option<&Addr> {
        self.failing.as_ref()
    }

    /// The failing master and what is known of its epoch.
    pub(crate) fn failing_with_epoch(&self) -> Option<(Addr, Known)> {
        self.failing.clone().map(|m| (m, self.failing_epoch))
    }

    /// The last target, also one that failed verification.
    pub(crate) fn last_target(&self) -> Option<&Addr> {
        self.last_target.as_ref()
    }

    /// Why the fence is being lifted, if it is.
    pub(crate) fn lifting(&self) -> Option<&str> {
        self.lifting.as_deref()
    }

    /// No longer a fence on a closing alone (a sentinel announced the failover, a watch
    /// proved the promotion, or the fence is lifted). Returns whether it was one.
    pub(crate) fn take_watch_only(&mut self) -> bool {
        std::mem::take(&mut self.watch_only)
    }

    /// Fenced on a replica's closing alone.
    pub(crate) fn set_watch_only(&mut self) {
        self.watch_only = true;
    }

    /// The path a promoted candidate is reported with: the replica watch when the switch began
    /// with a replica's closing, else the early signal.
    pub(crate) fn promotion_path(&self) -> DetectionPath {
        match self.path {
            DetectionPath::ReplicaWatch => DetectionPath::ReplicaWatch,
            _ => DetectionPath::EarlySignal,
        }
    }

    /// Whether an answer naming `addr` is waited out: fenced early on a failover of `addr`
    /// (the master failing, or `in_use`), the promotion is expected, unless the answer names
    /// `addr` at an epoch above the failover's (`superseded`: a newer configuration, the
    /// failover is over). A replica's closing waits for that replica's answer: sentinels that
    /// still name the master in use may not have heard of its promotion yet.
    pub(crate) fn waits_out(&self, addr: &Addr, in_use: Option<&Addr>, superseded: bool) -> bool {
        let failing = self.failing.as_ref().or(in_use);
        self.is_awaiting()
            && failing == Some(addr)
            && (!superseded || self.watch_only || self.candidate_watched())
    }

    /// What it needs next (`timers`: a candidate poll is not sent while the next one is
    /// scheduled).
    pub(crate) fn next_step(&self, timers: &Timers) -> Step {
        match &self.phase {
            Phase::Verified { .. } => Step::Finish,
            Phase::Verifying { check: Some(_), .. } => Step::Wait,
            Phase::Verifying { .. } if self.activating.is_some() => Step::Wait,
            Phase::Verifying { target, .. } => Step::Verify(target.addr.clone()),
            // Candidate polls are bounded by the fence timeout (or end the lifting).
            Phase::Awaiting(Some(c)) | Phase::LastCall(c) => {
                if c.connect.is_none() && c.poll.is_none() && !timers.is_set(TimerReason::RolePoll)
                {
                    Step::Poll
                } else {
                    Step::Wait
                }
            }
            Phase::Awaiting(None) => Step::Wait,
            Phase::Seeking => Step::Discover(self.path),
        }
    }

    /// Moves to `addr` (at `epoch`) and drops the work aimed at any other address (a late
    /// answer to it is discarded or ignored by its id); returns false when `addr` is the
    /// target already (an exact epoch is kept).
    pub(crate) fn retarget(&mut self, addr: &Addr, epoch: Known, cx: &mut Context) -> bool {
        if let Phase::Verifying { target, .. } | Phase::Verified { target, .. } = &mut self.phase
            && target.addr == *addr
        {
            if let Known::Exact(_) = epoch {
                target.epoch = epoch;
            }
            return false;
        }
        self.set_phase(
            Phase::Verifying {
                target: Target {
                    addr: addr.clone(),
                    epoch,
                },
                check: None,
            },
            &mut cx.ops,
        );
        self.last_target = Some(addr.clone());
        for t in [
            TimerReason::ConnectTimeout,
            TimerReason::ProbeTimeout,
            TimerReason::RolePoll,
            TimerReason::FenceTimeout,
        ] {
            cx.timers.cancel(t);
        }
        true
    }

    /// Replaces the phase; the operations of the old one are no longer waited for (a
    /// connection is discarded when it answers, a watch opened by a poll stays a watch).
    fn set_phase(&mut self, next: Phase, ops: &mut Ops) {
        match std::mem::replace(&mut self.phase, next) {
            Phase::Verifying {
                check: Some(Check::Connect(op)),
                ..
            } => ops.repurpose(op, Pending::Unwanted),
            Phase::Verifying {
                check: Some(Check::Probe(op)),
                ..
            } => ops.finish(op),
            Phase::Awaiting(Some(c)) | Phase::LastCall(c) => c.drop_ops(ops),
            _ => {}
        }
    }

    /// Starts the check of the target: a `ROLE` probe when it is the master in use
    /// (`in_use`), else a new broker connection.
    pub(crate) fn verify(&mut self, in_use: bool, now: Instant, cx: &mut Context) {
        let Phase::Verifying { target, check } = &mut self.phase else {
            return;
        };
        let node = target.addr.clone();
        let deadline = after(now, cx.cfg.connect_timeout);
        if in_use {
            let op = cx.start(Pending::SwitchProbe);
            *check = Some(Check::Probe(op));
            cx.timers.set(TimerReason::ProbeTimeout, deadline);
            cx.act(Action::PollRole { op, node });
        } else {
            let op = cx.start(Pending::Connect);
            *check = Some(Check::Connect(op));
            cx.timers.set(TimerReason::ConnectTimeout, deadline);
            cx.act(Action::Connect { op, node });
        }
    }

    /// The broker connection in flight answered (or timed out): it is no longer waited for.
    pub(crate) fn take_connect(&mut self) -> Option<Connected> {
        match &mut self.phase {
            Phase::Verifying { target, check } if matches!(check, Some(Check::Connect(_))) => {
                *check = None;
                Some(Connected {
                    node: target.addr.clone(),
                    speculative: false,
                })
            }
            Phase::Awaiting(Some(c)) | Phase::LastCall(c) => c.connect.take().map(|_| Connected {
                node: c.addr.clone(),
                speculative: true,
            }),
            _ => None,
        }
    }

    /// The connection in flight timed out: discarded if it answers later.
    pub(crate) fn connect_timed_out(&mut self, ops: &mut Ops) -> Option<Connected> {
        let op = match &self.phase {
            Phase::Verifying {
                check: Some(Check::Connect(op)),
                ..
            } => *op,
            Phase::Awaiting(Some(c)) | Phase::LastCall(c) => c.connect?,
            _ => return None,
        };
        ops.repurpose(op, Pending::Unwanted);
        self.take_connect()
    }

    /// The probe in flight answered: it is no longer waited for. Returns its node.
    pub(crate) fn take_probe(&mut self) -> Option<(OpId, Addr)> {
        let Phase::Verifying { target, check } = &mut self.phase else {
            return None;
        };
        let Some(Check::Probe(op)) = *check else {
            return None;
        };
        *check = None;
        Some((op, target.addr.clone()))
    }

    /// The target says master on the application's connection (or on a probe, as the master
    /// in use) at `now`.
    pub(crate) fn verified(&mut self, now: Instant) {
        if let Phase::Verifying { target, .. } = &self.phase {
            let target = target.clone();
            self.phase = Phase::Verified { target, at: now };
        }
    }

    /// When the target was verified, if it is.
    pub(crate) fn verified_at(&self) -> Option<Instant> {
        match self.phase {
            Phase::Verified { at, .. } => Some(at),
            _ => None,
        }
    }

    /// `node` failed verification: it is no longer the target, and the early phase is over
    /// (from here the sentinels are asked again).
    pub(crate) fn verification_failed(&mut self, node: &Addr, ops: &mut Ops) {
        match &self.phase {
            Phase::Verifying { target, .. } | Phase::Verified { target, .. }
                if target.addr != *node => {}
            _ => self.set_phase(Phase::Seeking, ops),
        }
        self.lifting = None;
    }

    /// The candidate a speculative connection to `node` found promoted becomes the target
    /// (what a promoted `ROLE` poll does, the connection already open).
    pub(crate) fn adopt_candidate(&mut self, node: &Addr, cx: &mut Context) {
        let target = Target {
            addr: node.clone(),
            epoch: self.candidate_epoch(),
        };
        self.set_phase(
            Phase::Verifying {
                target,
                check: None,
            },
            &mut cx.ops,
        );
        self.last_target = Some(node.clone());
        for t in [TimerReason::RolePoll, TimerReason::FenceTimeout] {
            cx.timers.cancel(t);
        }
    }

    /// The connection `op` to `node` said master: the runtime activates it (an activation
    /// still under way is no longer waited for).
    pub(crate) fn activate(&mut self, op: OpId, node: Addr, ops: &mut Ops) {
        ops.repurpose(op, Pending::Activation);
        if let Some((old, _)) = self.activating.replace((op, node)) {
            ops.finish(old);
        }
    }

    /// The activation completed (or failed): returns its node.
    pub(crate) fn take_activation(&mut self) -> Option<Addr> {
        self.activating.take().map(|(_, node)| node)
    }

    /// The application's connection points at `node` now: the target is verified if it is
    /// `node`. Returns what is known of `node`'s epoch.
    pub(crate) fn activated(&mut self, node: &Addr, now: Instant) -> Known {
        match &self.phase {
            Phase::Verifying { target, .. } | Phase::Verified { target, .. }
                if target.addr == *node =>
            {
                let target = target.clone();
                let epoch = target.epoch;
                self.phase = Phase::Verified { target, at: now };
                epoch
            }
            _ => Known::Unknown,
        }
    }

    /// The lost-write check of the old master holds the resume (a hand-back of an earlier
    /// activation is no longer waited for).
    pub(crate) fn hold_for_lost_writes(&mut self, ops: &mut Ops) {
        if let HandBack::Pending(op) = self.handback {
            ops.finish(op);
        }
        self.handback = HandBack::Checking;
    }

    /// Fences early anew: `failing` (what is known of its epoch: `known`), the master the
    /// switch used or moved to, announced its own failover. Everything aimed at a target or
    /// a candidate is dropped; the fence timeout runs again.
    pub(crate) fn refence(&mut self, failing: Addr, known: Known, now: Instant, cx: &mut Context) {
        self.set_phase(Phase::Awaiting(None), &mut cx.ops);
        self.failing_epoch = known;
        self.failing = Some(failing);
        self.lifting = None;
        self.watch_only = false;
        for t in [
            TimerReason::ProbeTimeout,
            TimerReason::ConnectTimeout,
            TimerReason::RolePoll,
        ] {
            cx.timers.cancel(t);
        }
        cx.timers
            .set(TimerReason::FenceTimeout, after(now, cx.cfg.fence_timeout));
    }

    /// A replica of `in_use`, the master in use, closed its connections: a switch that was
    /// looking for the master (an application error, a discovery), or re-verifying the
    /// master in use to lift its fence (the closing may be its successor's promotion, so the
    /// re-verification no longer lifts anything), now waits for that promotion, as after an
    /// early signal (the fence timeout runs). Returns false when it has another target or a
    /// candidate already.
    pub(crate) fn await_promotion(
        &mut self,
        in_use: Option<Addr>,
        now: Instant,
        cx: &mut Context,
    ) -> bool {
        match &self.phase {
            Phase::Seeking => {}
            Phase::Awaiting(None) => return true,
            Phase::Verifying { target, check } if Some(&target.addr) == in_use.as_ref() => {
                if let Some(Check::Probe(_)) = check {
                    cx.timers.cancel(TimerReason::ProbeTimeout);
                }
                self.set_phase(Phase::Seeking, &mut cx.ops);
                self.lifting = None;
            }
            Phase::Verified { target, .. } if Some(&target.addr) == in_use.as_ref() => {
                self.phase = Phase::Seeking;
                self.lifting = None;
            }
            _ => return false,
        }
        self.phase = Phase::Awaiting(None);
        self.failing = in_use;
        cx.timers
            .set(TimerReason::FenceTimeout, after(now, cx.cfg.fence_timeout));
        true
    }

    /// The fence stops waiting for a promotion (it is lifted): the candidate, if any, gets a
    /// last poll. Returns false when it was not waiting.
    pub(crate) fn lift(&mut self, reason: String, cx: &mut Context) -> bool {
        let Phase::Awaiting(candidate) = &mut self.phase else {
            return false;
        };
        let candidate = candidate.take();
        self.lifting = Some(reason);
        cx.timers.cancel(TimerReason::FenceTimeout);
        self.phase = match candidate {
            Some(mut c) => {
                c.drop_poll(&mut cx.ops);
                cx.timers.cancel(TimerReason::RolePoll);
                Phase::LastCall(c)
            }
            None => Phase::Seeking,
        };
        true
    }

    /// Lifting with a promotion seen on the failing master: the sentinels tell where the
    /// master went.
    pub(crate) fn stop_lifting(&mut self) {
        if let Phase::Awaiting(None) = self.phase {
            self.phase = Phase::Seeking;
        }
        self.lifting = None;
    }

    /// `node` is the candidate (`epoch`: what is known of its promotion's; `watched`: found
    /// by its watch closing at `now`), instead of any other; the next poll is sent when the
    /// switch is driven.
    pub(crate) fn name_candidate(
        &mut self,
        node: Addr,
        epoch: Known,
        watched: bool,
        now: Instant,
        cx: &mut Context,
    ) {
        let candidate = Candidate {
            addr: node,
            epoch,
            poll: None,
            connect: None,
            watched: watched.then_some(Watched {
                since: now,
                denied: false,
            }),
        };
        if let Phase::Awaiting(c) = &mut self.phase
            && let Some(old) = c.replace(candidate)
        {
            old.drop_ops(&mut cx.ops);
        }
        cx.timers.cancel(TimerReason::RolePoll);
    }

    /// The watched candidate replicates from `of`, another listed replica: a failover
    /// re-pointed it to `of`, which becomes the candidate.
    pub(crate) fn repoint_candidate(&mut self, of: Addr) {
        if let Some(c) = self.candidate_mut() {
            c.addr = of;
            if let Some(w) = &mut c.watched {
                w.denied = false;
            }
        }
    }

    /// The watched candidate answered it is not master: returns whether it had already.
    pub(crate) fn candidate_denied(&mut self) -> bool {
        self.candidate_mut()
            .and_then(|c| c.watched.as_mut())
            .is_some_and(|w| std::mem::replace(&mut w.denied, true))
    }

    /// The candidate is let go (its poll is no longer waited for).
    pub(crate) fn drop_candidate(&mut self, ops: &mut Ops) {
        match &self.phase {
            Phase::Awaiting(Some(_)) => self.set_phase(Phase::Awaiting(None), ops),
            Phase::LastCall(_) => self.set_phase(Phase::Seeking, ops),
            _ => {}
        }
    }

    /// The candidate's poll in flight, if any.
    pub(crate) fn polling(&self) -> bool {
        self.candidate().is_some_and(|c| c.poll.is_some())
    }

    /// Whether a broker connection to the candidate is in flight.
    pub(crate) fn connecting_to_candidate(&self) -> bool {
        self.candidate().is_some_and(|c| c.connect.is_some())
    }

    /// Stops waiting for the candidate's poll (a watch connection it opened stays a watch).
    pub(crate) fn drop_poll(&mut self, ops: &mut Ops) {
        if let Some(c) = self.candidate_mut() {
            c.drop_poll(ops);
        }
    }

    /// Polls the candidate with `op` (`watch`: on a watch connection of its own); the poll
    /// in flight, if any, is no longer waited for. Returns the candidate.
    pub(crate) fn poll(&mut self, watch: bool, cx: &mut Context) -> Option<(OpId, Addr)> {
        let c = self.candidate_mut()?;
        c.drop_poll(&mut cx.ops);
        let op = cx.start(Pending::CandidatePoll { watch });
        c.poll = Some(op);
        Some((op, c.addr.clone()))
    }

    /// Opens a broker connection to the candidate at once (its watch closed: it was probably
    /// just promoted; the `ROLE` reply of that connection decides).
    pub(crate) fn connect_to_candidate(&mut self, now: Instant, cx: &mut Context) {
        let Some(c) = self.candidate_mut() else {
            return;
        };
        c.drop_poll(&mut cx.ops);
        let op = cx.start(Pending::Connect);
        c.connect = Some(op);
        let node = c.addr.clone();
        cx.timers.cancel(TimerReason::RolePoll);
        cx.timers.set(
            TimerReason::ConnectTimeout,
            after(now, cx.cfg.connect_timeout),
        );
        cx.act(Action::Connect { op, node });
    }
}

impl Candidate {
    fn drop_poll(&mut self, ops: &mut Ops) {
        if let Some(op) = self.poll.take() {
            ops.poll_dropped(op);
        }
    }

    /// The candidate is no longer followed: its poll is not waited for, a connection to it
    /// is discarded when it answers.
    fn drop_ops(mut self, ops: &mut Ops) {
        self.drop_poll(ops);
        if let Some(op) = self.connect.take() {
            ops.repurpose(op, Pending::Unwanted);
        }
    }
}
