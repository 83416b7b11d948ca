//! [`Core`]: composes the parts (each owns its state and guards its own rules: the
//! sentinels' listeners, discovery, the switch, replica watches, the lost-write check,
//! configuration epochs, failover history), routes every input to the part that waits for it
//! through the table of pending operations, and carries what one part's outcome means for
//! the others. Imports run one way: the core uses the parts, no part knows the core.
//!
//! This module holds the public face, the routing and the lifecycle; `failover` drives the
//! switch with the other parts, `signals` says what sentinel messages and answers do to it.

mod failover;
mod signals;

use crate::action::{Action, Shutdown};
use crate::addr::Addr;
use crate::config::Config;
use crate::context::Context;
use crate::discovery::{Answer, Discovery, Failure, Ground};
use crate::epochs::{Epochs, Known};
use crate::event::{AppErrorKind, DetectionPath, DiscoveryError, Event, FatalError, IgnoreReason};
use crate::history::History;
use crate::input::{Input, IoError};
use crate::listeners::{Heard, Listeners};
use crate::lost::LostWrites;
use crate::op::{OpId, Pending};
use crate::parse::SentinelMessage;
use crate::pause_policy::PauseTimeoutPolicy;
use crate::reply::Reply;
use crate::switch::Switch;
use crate::timers::{TimerReason, Timers, after};
use crate::watches::Watches;
use std::time::{Duration, Instant};

/// The next deadline of the core and why it is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// When to call [`Core::handle_timeout`].
    pub at: Instant,
    /// What the deadline is for.
    pub reason: TimerReason,
}

/// The failover state machine. It owns every decision; the caller owns the I/O and the clock.
///
/// # Driving it
///
/// 1. Create it with [`Core::new`] and the current time. It immediately queues its first actions
///    (subscribe to every sentinel, ask the first one for the master).
/// 2. Drain [`Core::poll_event`] (log them, call hooks), then drain [`Core::poll_action`] and
///    start each action, in order. Events first: a [`Event::BeforeReset`] must be seen before the
///    [`Action::Activate`] queued with it runs. Starting an action only starts it: its outcome
///    is an input for step 4, also when it is known at once (as for `Activate`), never a call
///    into the core while draining.
/// 3. Wait until the earliest of: an I/O completion, an application error, or
///    [`Core::poll_timeout`]'s deadline.
/// 4. Feed what happened to [`Core::handle`] as an [`Input`] with the current time (for a
///    deadline, [`Core::handle_timeout`]), then go back to step 2.
///
/// Every completion carries the [`OpId`] of its action; the core ignores ids it no longer
/// waits for. Time only moves forward through the `now` arguments; the core never reads a
/// clock, never blocks and is fully deterministic: the same inputs give the same outputs.
/// After [`Action::Shutdown`] it ignores every input.
#[derive(Debug)]
pub struct Core {
    created: Instant,
    /// The configuration, actions, events, deadlines, and the table of pending operations.
    cx: Context,
    /// The sentinels and their listeners.
    listeners: Listeners,
    /// The master the application's connection points at (verified when it was chosen).
    master: Option<Addr>,
    /// What the core knows of configuration epochs: no configuration older than the one in
    /// use is believed or moved to.
    epochs: Epochs,
    /// Replication offsets, and the lost-write check after a switch.
    lost: LostWrites,
    /// A switch or fence in progress (startup counts as a switch from no master).
    switch: Option<Switch>,
    /// Asking the sentinels for the master; probes of the master in use.
    discovery: Discovery,
    /// Failovers announced recently (masters failing over, their candidates).
    history: History,
    /// Watch connections: on the replicas of the master in use and on the switch's candidate.
    watches: Watches,
    /// A master was verified once (startup is over).
    ready: bool,
    stopped: bool,
}

impl Core {
    /// Creates the core and queues its first actions: subscribe to every configured sentinel and
    /// start discovering the master.
    pub fn new(cfg: Config, now: Instant) -> Self {
        let mut core = Core {
            listeners: Listeners::new(&cfg),
            created: now,
            master: None,
            epochs: Epochs::default(),
            lost: LostWrites::default(),
            switch: None,
            discovery: Discovery::new(&cfg),
            history: History::new(cfg.fence_timeout),
            watches: Watches::default(),
            ready: false,
            stopped: false,
            cx: Context::new(cfg),
        };
        if let Some(limit) = core.cx.cfg.startup_timeout {
            core.cx
                .timers
                .set(TimerReason::StartupDeadline, after(now, limit));
        }
        core.listeners.start_all(now, &mut core.cx);
        core.switch = Some(Switch::startup(now));
        core.drive_switch(now);
        core
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cx.cfg
    }

    /// The master the application's connection points at, once startup verified one.
    pub fn master(&self) -> Option<&Addr> {
        self.master.as_ref()
    }

    /// The configuration epoch of the master in use, when known.
    pub fn master_epoch(&self) -> Option<u64> {
        self.epochs.in_use()
    }

    /// What the core knows of configuration epochs (the simulator reports it with a broken
    /// rule).
    #[cfg(feature = "sim")]
    pub(crate) fn epochs(&self) -> &Epochs {
        &self.epochs
    }

    /// Whether work is fenced (startup, a failover announced, or a switch in progress).
    pub fn is_fenced(&self) -> bool {
        self.switch.is_some()
    }

    /// Whether the core stopped for good (after [`Action::Shutdown`]).
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The sentinels known to the core (configured, then learned), in table order.
    pub fn sentinels(&self) -> impl Iterator<Item = &Addr> {
        self.listeners.known()
    }

    /// The sentinels in discovery order: the one that answered last first.
    pub fn sentinels_by_preference(&self) -> impl Iterator<Item = &Addr> {
        self.listeners.by_preference()
    }

    /// The next action for the runtime, in order.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.cx.next_action()
    }

    /// The next event to report, in order.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.cx.next_event()
    }

    /// The earliest deadline, with its reason. Stable until the next `handle_*` call; `None`
    /// once stopped.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Deadline> {
        if self.stopped {
            return None;
        }
        self.cx
            .timers
            .next()
            .map(|(at, reason)| Deadline { at, reason })
    }

    /// Handles every deadline at or before `now`. Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.input(now, |core| {
            while !core.stopped {
                let Some(reason) = core.cx.timers.pop_due(now) else {
                    break;
                };
                core.deadline(reason, now);
            }
        });
    }

    /// Handles one input: a completion of an action, a listener message, or an error the
    /// application saw (see [`Input`]). Ignored once stopped, and so is a completion of an
    /// operation the core no longer waits for.
    pub fn handle(&mut self, now: Instant, input: Input) {
        self.input(now, |core| core.route(input, now));
    }

    /// The one way in, for every input and deadline: the guard (nothing once stopped), the
    /// input, and the epilogue: the watch connections follow what the switch and the replica
    /// list want.
    fn input(&mut self, now: Instant, input: impl FnOnce(&mut Self)) {
        if self.stopped {
            return;
        }
        input(self);
        if !self.stopped {
            let candidate = self.switch.as_ref().and_then(Switch::awaited);
            let moving = self.switch.as_ref().is_some_and(|sw| sw.target().is_some());
            self.watches.tend(candidate, moving, now, &mut self.cx);
        }
    }

    /// A deadline is due.
    fn deadline(&mut self, reason: TimerReason, now: Instant) {
        match reason {
            TimerReason::StartupDeadline => self.startup_deadline(now),
            TimerReason::PauseTimeout => self.pause_timed_out(now),
            TimerReason::FenceTimeout => self.fence_timed_out(now),
            TimerReason::ConnectTimeout => self.connect_timed_out(now),
            TimerReason::RolePoll => self.role_poll_due(now),
            TimerReason::ProbeTimeout if self.discovery.verifying() => {
                let reason = format!("no ROLE answer within {:?}", self.cx.cfg.connect_timeout);
                self.verify_reply(Err(reason), now);
            }
            TimerReason::ProbeTimeout => self.switch_probe_timed_out(now),
            TimerReason::QueryTimeout => {
                if let Some(error) = self.discovery.query_timed_out(&mut self.cx) {
                    self.master_reply(Err(error), now);
                }
            }
            TimerReason::DiscoveryRetry => {
                let answer = self.discovery.retry_due(&self.listeners, now, &mut self.cx);
                self.discovery_answer(answer, now);
            }
            TimerReason::PeriodicCheck => self.periodic_check_due(now),
            TimerReason::Listener(i) => {
                self.listeners.deadline(i, now, &mut self.cx);
            }
            // The epilogue opens the watches due.
            TimerReason::WatchRetry => {}
            TimerReason::ReplicasQuery => self.query_replicas(),
            TimerReason::LostWrites => {
                let checked = self.lost.timed_out(now, &mut self.cx);
                self.lost_checked(checked, now);
            }
            TimerReason::HandBack => self.handed_back(false, now),
        }
    }

    /// Routes an input to the part that waits for it (the table of pending operations says
    /// which).
    fn route(&mut self, input: Input, now: Instant) {
        let pending = input.op().and_then(|op| self.cx.ops.get(op));
        match (input, pending) {
            (Input::Subscribed { op }, Some(Pending::Listener(i))) => {
                let up = self.listeners.subscribed(i, op, now, &mut self.cx);
                if up && self.ready {
                    // Events may have been missed while this listener was down: this sentinel
                    // is asked first (a failover it leads shows in its answer's flags).
                    self.recheck(Some(i), DetectionPath::ListenerReconnect, false, now);
                }
            }
            (
                Input::Message {
                    channel, payload, ..
                },
                Some(Pending::Listener(i)),
            ) => {
                let heard = self
                    .listeners
                    .message(i, &channel, &payload, now, &mut self.cx);
                if let Some(heard) = heard {
                    self.heard(heard, &channel, now);
                }
            }
            (Input::Pong { .. }, Some(Pending::Listener(i))) => {
                self.listeners.alive(i, now, &mut self.cx);
            }
            (Input::ListenerFailed { error, .. }, Some(Pending::Listener(i))) => {
                let reason = error.message().to_owned();
                self.listeners.failed(i, reason, false, now, &mut self.cx);
            }
            (Input::SentinelReply { op, reply }, Some(Pending::ReplicasQuery)) => {
                self.cx.ops.finish(op);
                let reply = reply.map_err(String::from);
                let in_use = self.master.as_ref();
                self.watches
                    .replicas_reply(reply, in_use, &self.listeners, &mut self.cx);
            }
            (Input::SentinelReply { op, reply }, Some(Pending::SentinelsQuery)) => {
                self.cx.ops.finish(op);
                let reply = reply.map_err(String::from);
                self.listeners.sentinels_reply(reply, now, &mut self.cx);
            }
            (Input::SentinelReply { op, reply }, Some(Pending::MasterQuery)) => {
                self.cx.ops.finish(op);
                self.master_reply(reply, now);
            }
            // A late answer decides nothing, but the configuration it names existed.
            (Input::SentinelReply { reply, .. }, _) => {
                Discovery::late_reply(reply, &mut self.epochs, &self.cx);
            }
            (Input::NodeReply { op, reply }, Some(what)) => self.node_reply(op, what, reply, now),
            (Input::Backlog { op, result }, Some(Pending::BacklogRead)) => {
                self.cx.ops.finish(op);
                let checked = self.lost.backlog_read(result, &mut self.cx);
                self.lost_checked(checked, now);
            }
            (
                Input::WatchClosed { op },
                Some(Pending::Watch | Pending::CandidatePoll { watch: true }),
            ) => self.watch_closed(op, now),
            (Input::Activated { op }, Some(Pending::Activation)) => {
                self.cx.ops.finish(op);
                self.reset_done(now);
            }
            (Input::ActivationFailed { op, reason }, Some(Pending::Activation)) => {
                self.cx.ops.finish(op);
                self.reset_failed(&reason, now);
            }
            (Input::Paused { op }, Some(Pending::Pause)) => {
                self.cx.ops.finish(op);
                self.workers_paused(now);
            }
            (Input::HandedBack { op }, Some(Pending::HandBack)) => {
                self.cx.ops.finish(op);
                self.handed_back(true, now);
            }
            (Input::AppError { node, kind }, _) => self.app_error(&node, kind, now),
            // Not (or no longer) waited for.
            _ => {}
        }
    }

    /// A data node answered a `ROLE` or an `INFO replication` (or the attempt failed), for
    /// `what`.
    fn node_reply(&mut self, op: OpId, what: Pending, reply: Result<Reply, IoError>, now: Instant) {
        match what {
            Pending::Watch => {
                self.watch_answered(op, reply.as_ref().ok(), now);
            }
            Pending::CandidatePoll { watch } => {
                if watch {
                    self.watch_answered(op, reply.as_ref().ok(), now);
                    if reply.is_err() {
                        // The candidate's watch could not be opened, or it was closed before
                        // its `ROLE` answer: by the promotion itself (Sentinel closes every
                        // client connection of the replica it promotes), or the candidate is
                        // down. Connect at once: the `ROLE` reply of that connection decides.
                        return self.candidate_watch_closed(now);
                    }
                }
                // Still the poll the switch waits for (the watch's answer may have moved it on).
                if matches!(self.cx.ops.get(op), Some(Pending::CandidatePoll { .. })) {
                    self.candidate_polled(&reply, now);
                }
            }
            Pending::FenceProbe => {
                self.cx.ops.finish(op);
                self.lost.fence_reply(reply.as_ref().ok());
            }
            Pending::LostInfo => {
                self.cx.ops.finish(op);
                let reply = reply.as_ref().ok();
                let checked = self.lost.info_reply(reply, now, &mut self.cx);
                self.lost_checked(checked, now);
            }
            Pending::LostRole => {
                self.cx.ops.finish(op);
                let reply = reply.as_ref().ok();
                let checked = self.lost.role_reply(reply, now, &mut self.cx);
                self.lost_checked(checked, now);
            }
            Pending::VerifyProbe => self.verify_reply(reply.map_err(String::from), now),
            Pending::StaleCheck => {
                self.cx.ops.finish(op);
                let reply = reply.map_err(String::from);
                let answer = self.discovery.stale_reply(
                    reply,
                    &mut self.epochs,
                    &self.listeners,
                    now,
                    &mut self.cx,
                );
                self.discovery_answer(answer, now);
            }
            Pending::Connect => self.connect_reply(op, &reply, now),
            Pending::SwitchProbe => {
                self.cx.ops.finish(op);
                self.switch_probe_reply(&reply, now);
            }
            Pending::Unwanted => {
                self.cx.ops.finish(op);
                if reply.is_ok() {
                    // A prepared connection nobody waits for any more.
                    self.cx.act(Action::Discard { op });
                }
            }
            _ => {}
        }
    }

    /// Re-checks the master outside a switch (poll, listener reconnect, application error),
    /// asking sentinel `first` before the others; coalesces with a round already running or
    /// scheduled. A switch in progress verifies its own target.
    fn recheck(&mut self, first: Option<usize>, path: DetectionPath, verify: bool, now: Instant) {
        if self.switch.is_some() {
            return;
        }
        let answer =
            self.discovery
                .recheck(first, path, verify, &self.listeners, now, &mut self.cx);
        self.discovery_answer(answer, now);
    }

    /// Starts a round of discovery unless one is running or scheduled.
    fn ensure_discovery(&mut self, path: DetectionPath, now: Instant) {
        let answer = self
            .discovery
            .ensure(path, &self.listeners, now, &mut self.cx);
        self.discovery_answer(answer, now);
    }

    /// The answer to discovery's current query.
    fn master_reply(&mut self, reply: Result<Reply, IoError>, now: Instant) {
        let ground = Ground {
            sentinels: &self.listeners,
            in_use: self.master.as_ref(),
            switching: self.switch.is_some(),
        };
        let answer = self
            .discovery
            .reply(reply, ground, &mut self.epochs, now, &mut self.cx);
        self.discovery_answer(answer, now);
    }

    /// What a round of discovery came to.
    fn discovery_answer(&mut self, answer: Answer, now: Instant) {
        match answer {
            Answer::Pending => {}
            Answer::Found {
                sentinel,
                addr,
                epoch,
                path,
                verify,
            } => self.discovered(sentinel, addr, epoch, path, verify, now),
            Answer::Failing {
                master,
                path,
                sentinel,
                signal,
            } => self.fence_failing_master(master, path, sentinel, &signal, now),
            Answer::Failed(failure) => self.round_failed(failure, now),
        }
    }

    /// Sentinel `i` names `addr`.
    fn discovered(
        &mut self,
        i: usize,
        addr: Addr,
        epoch: Known,
        path: DetectionPath,
        verify: bool,
        now: Instant,
    ) {
        if self.switch.is_none() {
            // Otherwise the switch resets the backoff when it completes: a master the sentinels
            // name but that fails verification (a wrong password, say) is retried with a
            // growing delay, not at the first delay forever.
            self.discovery.succeeded();
        }
        self.listeners.answered(i, &mut self.cx);
        let sentinel = self.listeners.addr(i).clone();
        if self.switch.is_some() {
            return self.discovered_during_switch(addr, epoch, path, sentinel, now);
        }
        if self.master.as_ref() == Some(&addr) {
            if verify {
                self.discovery.verify(addr, now, &mut self.cx);
            } else {
                self.cx.emit(Event::MasterConfirmed { master: addr, path });
            }
            return;
        }
        if self.follow_failover(&addr, epoch, &sentinel, now) {
            return;
        }
        self.start_switch(path, Some(sentinel.clone()), false, "discovery", now);
        self.set_target(addr, epoch, path, Some(sentinel), now);
    }

    /// No sentinel named a usable master: a stale answer is checked against the master in
    /// use; startup stops at an error retrying will not fix (`startup_fail_fast`); else the
    /// sentinels are asked again after the backoff.
    fn round_failed(&mut self, failure: Failure, now: Instant) {
        if let DiscoveryError::StaleAnswer { master } = &failure.error {
            let in_use = self.master.as_ref();
            self.discovery
                .check_stale(master, in_use, &self.epochs, now, &mut self.cx);
        }
        if failure.permanent && self.fails_fast() {
            return self.startup_refused(failure.error, now);
        }
        self.discovery.retry_after(failure, now, &mut self.cx);
    }

    /// The steady-state probe answered (or timed out): a demoted master fences.
    fn verify_reply(&mut self, reply: Result<Reply, String>, now: Instant) {
        if self
            .discovery
            .verify_reply(reply, &mut self.lost, now, &mut self.cx)
        {
            self.start_switch(DetectionPath::AppError, None, false, "ROLE", now);
            self.drive_switch(now);
        }
    }

    /// A message about the service: what it means for the master in use and the switch.
    fn heard(&mut self, heard: Heard, channel: &[u8], now: Instant) {
        let Heard {
            sentinel,
            tag,
            message,
        } = heard;
        let outcome = match message {
            SentinelMessage::Epoch { epoch } => {
                self.history.epoch_learned(&sentinel, epoch);
                return;
            }
            SentinelMessage::SwitchMaster { old, new, .. } => {
                self.on_switch_master(old, new, &sentinel, tag, now)
            }
            SentinelMessage::Failover {
                signal,
                channel,
                master,
                replica,
                ..
            } => self.on_failover_signal(signal, channel, master, replica, &sentinel, tag, now),
            // The replicas to watch changed: ask for them again.
            SentinelMessage::Replicas { master, .. } if self.master.as_ref() == Some(&master) => {
                self.query_replicas();
                Ok(())
            }
            SentinelMessage::Replicas { master, .. } => Err(IgnoreReason::NotOurMaster(master)),
            SentinelMessage::Unused => return,
        };
        if let Err(reason) = outcome {
            self.cx.emit(Event::MessageIgnored {
                sentinel,
                channel: String::from_utf8_lossy(channel).into_owned(),
                reason,
            });
        }
    }

    /// The server closed the watch connection `op` (or it broke). Sentinel closes every client
    /// connection of the replica it promotes or re-points: the candidate's closing means it
    /// was just promoted (its `ROLE` is asked at once); an unexpected closing of a replica of
    /// the master in use fences and asks its `ROLE` (see `watches`).
    fn watch_closed(&mut self, op: OpId, now: Instant) {
        let Some((node, unexpected)) = self.watches.gone(op, self.master.as_ref(), &mut self.cx)
        else {
            return;
        };
        if self.is_candidate(&node) {
            return self.candidate_watch_closed(now);
        }
        self.watches.rewatch_now(&node);
        if unexpected && self.cx.cfg.watch_replicas {
            let _ = self.replica_closed(node, now);
        }
    }

    /// Whether the switch waits for `node` as its candidate.
    fn is_candidate(&self, node: &Addr) -> bool {
        self.switch.as_ref().and_then(Switch::awaited) == Some(node)
    }

    /// The `ROLE` answer of the watch `op` (`None`: it failed). A replica of the master in
    /// use that says master now was promoted since: as if its watch had closed.
    fn watch_answered(&mut self, op: OpId, reply: Option<&Reply>, now: Instant) {
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
    fn query_replicas(&mut self) {
        self.cx.timers.cancel(TimerReason::ReplicasQuery);
        self.watches
            .query(self.master.as_ref(), &self.listeners, &mut self.cx);
    }

    fn app_error(&mut self, node: &Addr, kind: AppErrorKind, now: Instant) {
        if self.switch.is_some() || self.master.as_ref() != Some(node) {
            return;
        }
        match kind {
            AppErrorKind::ReadOnly => {
                self.start_switch(DetectionPath::AppError, None, false, "READONLY", now);
                self.drive_switch(now);
            }
            AppErrorKind::Io | AppErrorKind::Timeout => {
                self.recheck(None, DetectionPath::AppError, true, now);
            }
        }
    }

    fn periodic_check_due(&mut self, now: Instant) {
        if let Some(every) = self.cx.cfg.periodic_check {
            self.cx
                .timers
                .set(TimerReason::PeriodicCheck, after(now, every));
        }
        self.recheck(None, DetectionPath::Poll, false, now);
    }

    /// Arms the periodic check (once ready).
    fn arm_periodic_check(&mut self, now: Instant) {
        if let Some(every) = self.cx.cfg.periodic_check
            && !self.cx.timers.is_set(TimerReason::PeriodicCheck)
        {
            self.cx
                .timers
                .set(TimerReason::PeriodicCheck, after(now, every));
        }
    }

    /// Whether startup stops at the first error retrying will not fix (`startup_fail_fast`,
    /// before the first verified master).
    fn fails_fast(&self) -> bool {
        self.cx.cfg.startup_fail_fast && !self.ready
    }

    /// Startup found an error retrying will not fix: stop with it.
    fn startup_refused(&mut self, error: DiscoveryError, now: Instant) {
        self.discovery.refused(error.clone());
        let waited = now.saturating_duration_since(self.created);
        self.stop(
            Shutdown::Fail(FatalError::StartupRefused { waited, error }),
            now,
        );
    }

    fn startup_deadline(&mut self, now: Instant) {
        if self.ready {
            return;
        }
        let error = FatalError::StartupTimedOut {
            waited: now.saturating_duration_since(self.created),
            last: self.discovery.last_error().cloned(),
        };
        self.stop(Shutdown::Fail(error), now);
    }

    /// How long work has been fenced, at `now`.
    fn fenced_for(&self, now: Instant) -> Duration {
        self.switch
            .as_ref()
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s.started))
    }

    fn pause_timed_out(&mut self, now: Instant) {
        let waited = self.fenced_for(now);
        self.cx.emit(Event::PauseTimedOut { waited });
        self.cx.act(Action::StopWorkers {
            grace: self.cx.cfg.stop_grace,
        });
        let shutdown = match self.cx.cfg.on_pause_timeout {
            PauseTimeoutPolicy::Exit { code } => Shutdown::Exit { code },
            PauseTimeoutPolicy::Fail => Shutdown::Fail(FatalError::PauseTimedOut { waited }),
        };
        self.stop(shutdown, now);
    }

    fn stop(&mut self, shutdown: Shutdown, now: Instant) {
        let error = match &shutdown {
            Shutdown::Fail(e) => e.clone(),
            Shutdown::Exit { .. } => FatalError::PauseTimedOut {
                waited: self.fenced_for(now),
            },
        };
        self.cx.emit(Event::Stopped { error });
        self.cx.act(Action::Shutdown(shutdown));
        self.stopped = true;
        self.cx.timers = Timers::default();
        self.watches.clear(); // the runtime closes every connection at shutdown
    }
}
