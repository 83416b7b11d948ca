//! Discovery: ask the sentinels in order for the master, with a timeout per query; the one that
//! answered moves to the front; failed rounds back off. Also the steady-state `ROLE` probe of
//! the master in use after an application error.

use crate::action::Action;
use crate::addr::Addr;
use crate::epochs::Known;
use crate::event::{DetectionPath, DiscoveryError, Event};
use crate::input::{IoError, IoErrorKind};
use crate::machine::Core;
use crate::op::{OpId, Pending};
use crate::parse::{
    MasterAnswer, Role, is_rejection, master_offset, parse_master_reply, parse_role,
};
use crate::reply::Reply;
use crate::timers::{TimerReason, after};
use std::collections::VecDeque;
use std::time::Instant;

/// The discovery activity.
#[derive(Debug)]
pub(crate) enum Discovery {
    Idle,
    Running(Round),
    /// A retry is scheduled (`DiscoveryRetry` timer).
    Waiting {
        path: DetectionPath,
        verify: bool,
    },
}

/// One pass over the sentinels.
#[derive(Debug)]
pub(crate) struct Round {
    path: DetectionPath,
    /// Verify the answer with `ROLE` even when it is the master in use.
    verify: bool,
    queue: VecDeque<usize>,
    current: Option<(OpId, usize)>,
    failures: Vec<(Addr, String)>,
    unknown: Vec<Addr>,
    down: Option<(Addr, String)>,
    /// An answer naming another master at a configuration epoch not newer than the one in
    /// use: a sentinel that has not caught up.
    older: Option<Addr>,
    /// A sentinel could not be reached, or answered an error that may pass (the round's
    /// failure is not for good).
    transient: bool,
}

impl Core {
    /// Re-checks the master outside a switch (poll, listener reconnect, application error).
    /// Coalesces with a re-check already running or scheduled.
    pub(crate) fn start_recheck(&mut self, path: DetectionPath, verify: bool, now: Instant) {
        self.recheck_asking_first(None, path, verify, now);
    }

    /// [`Core::start_recheck`], asking sentinel `first` before the others (the one whose
    /// listener just came back: what it announced meanwhile was not heard), also when a
    /// round is already under way and has not asked it yet.
    pub(crate) fn recheck_asking_first(
        &mut self,
        first: Option<usize>,
        path: DetectionPath,
        verify: bool,
        now: Instant,
    ) {
        if self.switch.is_some() {
            return; // the switch in progress verifies its own target
        }
        match &mut self.discovery {
            Discovery::Idle => self.start_round(path, verify, first, now),
            Discovery::Running(round) => {
                round.verify |= verify;
                if let Some(i) = first
                    && round.queue.contains(&i)
                {
                    round.queue.retain(|&q| q != i);
                    round.queue.push_front(i);
                }
            }
            Discovery::Waiting { .. } => {}
        }
    }

    /// Starts a round unless one is running or scheduled.
    pub(crate) fn ensure_discovery(&mut self, path: DetectionPath, now: Instant) {
        if matches!(self.discovery, Discovery::Idle) {
            self.start_round(path, false, None, now);
        }
    }

    /// Starts a round over the sentinels in discovery order (`first`, if given, before them).
    fn start_round(
        &mut self,
        path: DetectionPath,
        verify: bool,
        first: Option<usize>,
        now: Instant,
    ) {
        let queue = first
            .into_iter()
            .chain(
                self.listeners
                    .order()
                    .iter()
                    .copied()
                    .filter(|&i| Some(i) != first),
            )
            .collect();
        self.set_discovery(Discovery::Running(Round {
            path,
            verify,
            queue,
            current: None,
            failures: Vec::new(),
            unknown: Vec::new(),
            down: None,
            older: None,
            transient: false,
        }));
        self.next_query(now);
    }

    fn next_query(&mut self, now: Instant) {
        let Discovery::Running(round) = &mut self.discovery else {
            return;
        };
        let next = std::iter::from_fn(|| round.queue.pop_front())
            .find(|&i| !self.listeners.is_forgotten(i));
        let Some(i) = next else {
            return self.round_failed(now);
        };
        let op = self.cx.start(Pending::MasterQuery);
        round.current = Some((op, i));
        self.cx.timers.set(
            TimerReason::QueryTimeout,
            after(now, self.cx.cfg.query_timeout),
        );
        self.cx.act(Action::QueryMaster {
            op,
            sentinel: self.listeners.addr(i).clone(),
            service: self.cx.cfg.service_name.clone(),
        });
    }

    pub(crate) fn query_timed_out(&mut self, now: Instant) {
        let reason = format!("no answer within {:?}", self.cx.cfg.query_timeout);
        if let Discovery::Running(Round {
            current: Some((op, _)),
            ..
        }) = self.discovery
        {
            self.cx.ops.finish(op);
            self.master_reply(Err(IoError::unreachable(reason)), now);
        }
    }

    /// A late answer decides nothing, but the configuration it names existed.
    pub(crate) fn late_master_reply(&mut self, reply: Result<Reply, IoError>) {
        if let Ok(Ok(MasterAnswer::Known(info))) = reply.as_ref().map(parse_master_reply)
            && let Some(c) = info.config_epoch
        {
            self.epochs.named(&self.cx.cfg.nat.map(&info.addr), c);
        }
    }

    /// The answer to the round's current query.
    pub(crate) fn master_reply(&mut self, reply: Result<Reply, IoError>, now: Instant) {
        let Discovery::Running(round) = &mut self.discovery else {
            return;
        };
        let Some((_, i)) = round.current.take() else {
            return;
        };
        self.cx.timers.cancel(TimerReason::QueryTimeout);
        let sentinel = self.listeners.addr(i).clone();
        let answer = reply.map(|r| parse_master_reply(&r).map_err(|m| m.0));
        match answer {
            Err(e) => {
                round.transient |= e.kind() == IoErrorKind::Unreachable;
                round.failures.push((sentinel, e.message().to_owned()));
            }
            Ok(Err(e)) => {
                round.transient = true; // a malformed answer: maybe a sentinel being upgraded
                round.failures.push((sentinel, e));
            }
            Ok(Ok(MasterAnswer::Error(e))) => {
                round.transient |= !is_rejection(&e);
                round.failures.push((sentinel, e));
            }
            Ok(Ok(MasterAnswer::UnknownName)) => round.unknown.push(sentinel),
            Ok(Ok(MasterAnswer::Known(info))) => {
                let addr = self.cx.cfg.nat.map(&info.addr);
                let epoch = info.config_epoch;
                // A sentinel naming an older configuration has not caught up: not believed.
                // One naming the master in use tells its epoch.
                if let Some(c) = epoch {
                    self.epochs.named(&addr, c);
                }
                let older =
                    epoch.is_some_and(|c| self.epochs.older(&addr, c, self.master.as_ref()));
                if let Some(c) = epoch
                    && self.master.as_ref() == Some(&addr)
                    && !older
                {
                    self.epochs.confirmed(c);
                }
                // A failover of the master in use is under way (this sentinel leads it, or agreed
                // the master is down): fence early, as its events would have, and wait for the
                // promotion (replica watches, candidates, `+switch-master`).
                let failing = info
                    .flags
                    .iter()
                    .any(|f| f == "o_down" || f == "failover_in_progress");
                if older {
                    round.older.get_or_insert(addr);
                } else if failing
                    && self.cx.cfg.early_fencing
                    && self.switch.is_none()
                    && self.master.as_ref() == Some(&addr)
                {
                    let path = round.path;
                    self.set_discovery(Discovery::Idle);
                    let signal = format!("SENTINEL MASTER flags {}", info.flags.join(","));
                    return self.fence_failing_master(addr, path, sentinel, &signal, now);
                } else if !info.is_up() || failing && self.master.as_ref() != Some(&addr) {
                    // A master being failed over is not one to move to: the sentinels will
                    // name its successor.
                    round.down = Some((addr, info.flags.join(",")));
                } else {
                    let (path, verify) = (round.path, round.verify);
                    let known = epoch.map_or(Known::Unknown, Known::Exact);
                    return self.discovered(i, addr, known, path, verify, now);
                }
            }
        }
        self.next_query(now);
    }

    fn discovered(
        &mut self,
        i: usize,
        addr: Addr,
        epoch: Known,
        path: DetectionPath,
        verify: bool,
        now: Instant,
    ) {
        self.set_discovery(Discovery::Idle);
        if self.switch.is_none() {
            // Otherwise the switch resets the backoff when it completes: a master the sentinels
            // name but that fails verification (a wrong password, say) is retried with a
            // growing delay, not at the first delay forever.
            self.discovery_backoff.reset();
            self.last_discovery_error = None;
        }
        self.listeners.answered(i, &mut self.cx);
        let sentinel = self.listeners.addr(i).clone();
        if self.switch.is_some() {
            return self.discovered_during_switch(addr, epoch, path, sentinel, now);
        }
        if self.master.as_ref() == Some(&addr) {
            if verify {
                self.start_verify_probe(addr, now);
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

    fn round_failed(&mut self, now: Instant) {
        let Discovery::Running(round) = self.set_discovery(Discovery::Idle) else {
            return;
        };
        let permanent = round.down.is_none() && round.older.is_none() && !round.transient;
        let error = if let Some((master, flags)) = round.down {
            DiscoveryError::MasterDown { master, flags }
        } else if let Some(master) = round.older {
            self.check_stale(&master, now);
            DiscoveryError::StaleAnswer { master }
        } else if !round.unknown.is_empty() {
            DiscoveryError::MasterNameUnknown {
                service: self.cx.cfg.service_name.clone(),
                sentinels: round.unknown,
            }
        } else {
            DiscoveryError::SentinelsUnreachable {
                failures: round.failures,
            }
        };
        if permanent && self.fails_fast() {
            return self.startup_refused(error, now);
        }
        // Reported when it changes: the same answer again (a master flagged down until the
        // sentinels fail over, sentinels that have not caught up) is a state being waited
        // out, not news at every retry.
        let repeated = self.last_discovery_error.as_ref() == Some(&error);
        let retry_in = self.schedule_discovery_retry(round.path, round.verify, error.clone(), now);
        if !repeated {
            self.cx.emit(Event::DiscoveryFailed { error, retry_in });
        }
    }

    /// Schedules the next round after the discovery backoff; returns the delay.
    pub(crate) fn schedule_discovery_retry(
        &mut self,
        path: DetectionPath,
        verify: bool,
        error: DiscoveryError,
        now: Instant,
    ) -> std::time::Duration {
        self.last_discovery_error = Some(error);
        let retry_in = self.discovery_backoff.next_delay(&mut self.cx.rng);
        self.set_discovery(Discovery::Waiting { path, verify });
        self.cx
            .timers
            .set(TimerReason::DiscoveryRetry, after(now, retry_in));
        retry_in
    }

    /// Replaces the discovery activity; a query the old round still waited for is no longer
    /// waited for (its late answer only tells an epoch). Returns the old activity.
    pub(crate) fn set_discovery(&mut self, next: Discovery) -> Discovery {
        let old = std::mem::replace(&mut self.discovery, next);
        if let Discovery::Running(Round {
            current: Some((op, _)),
            ..
        }) = old
        {
            self.cx.ops.finish(op);
        }
        old
    }

    pub(crate) fn discovery_retry_due(&mut self, now: Instant) {
        if let Discovery::Waiting { path, verify } = self.discovery {
            self.start_round(path, verify, None, now);
        }
    }

    /// The sentinels name `named`, which the core took for replaced at an unknown epoch (the
    /// switch that replaced it had no epoch: a replica's watch saw the promotion). The master
    /// in use tells: if it replicates from `named` now, a newer configuration made it so.
    fn check_stale(&mut self, named: &Addr, now: Instant) {
        let pending = self
            .stale_check
            .as_ref()
            .is_some_and(|(.., sent)| now < after(*sent, self.cx.cfg.connect_timeout));
        if pending || !self.epochs.replaced_at_unknown(named) {
            return;
        }
        let Some(in_use) = self.master.clone() else {
            return;
        };
        if let Some((old, ..)) = self.stale_check.take() {
            self.cx.ops.finish(old);
        }
        let op = self.cx.start(Pending::StaleCheck);
        self.stale_check = Some((op, named.clone(), now));
        self.cx.act(Action::PollRole { op, node: in_use });
    }

    /// The master in use answered the stale check: replicating from the master the sentinels
    /// name proves their answer newer (Sentinel reconfigures a deposed master as a replica of
    /// the master of its newest configuration), so it is believed from now on, and asked for
    /// again at once.
    pub(crate) fn stale_check_reply(&mut self, reply: Result<Reply, String>, now: Instant) {
        let Some((_, named, _)) = self.stale_check.take() else {
            return;
        };
        let role = reply.and_then(|r| parse_role(&r).map_err(|m| m.0));
        let Ok(Role::Replica { master: Some(of) }) = role else {
            return;
        };
        if self.cx.cfg.nat.map(&of) != named {
            return;
        }
        self.epochs.overruled(&named);
        if let Discovery::Waiting { path, verify } = self.discovery {
            self.cx.timers.cancel(TimerReason::DiscoveryRetry);
            self.start_round(path, verify, None, now);
        }
    }

    fn start_verify_probe(&mut self, node: Addr, now: Instant) {
        if let Some((old, _)) = self.verify_probe.take() {
            self.cx.ops.finish(old);
        }
        let op = self.cx.start(Pending::VerifyProbe);
        self.verify_probe = Some((op, node.clone()));
        self.cx.timers.set(
            TimerReason::ProbeTimeout,
            after(now, self.cx.cfg.connect_timeout),
        );
        self.cx.act(Action::PollRole { op, node });
    }

    /// Drops a steady-state probe (a switch takes over).
    pub(crate) fn cancel_verify_probe(&mut self) {
        if let Some((op, _)) = self.verify_probe.take() {
            self.cx.ops.finish(op);
            self.cx.timers.cancel(TimerReason::ProbeTimeout);
        }
    }

    pub(crate) fn verify_probe_reply(&mut self, reply: Result<Reply, String>, now: Instant) {
        let Some((_, node)) = self.verify_probe.take() else {
            return;
        };
        self.cx.timers.cancel(TimerReason::ProbeTimeout);
        if let Some(offset) = reply.as_ref().ok().and_then(master_offset) {
            self.lost.observed(&node, offset);
        }
        let role = reply.and_then(|r| parse_role(&r).map_err(|m| m.0));
        match role {
            Ok(Role::Master) => self.cx.emit(Event::MasterConfirmed {
                master: node,
                path: DetectionPath::AppError,
            }),
            Ok(role @ Role::Replica { .. }) => {
                // Demoted: fence and find the new master.
                let reason = format!("ROLE says {role}");
                self.cx.emit(Event::VerificationFailed { node, reason });
                self.start_switch(DetectionPath::AppError, None, false, "ROLE", now);
                self.drive_switch(now);
            }
            Ok(other) => self.probe_failed(node, format!("ROLE says {other}"), now),
            Err(e) => self.probe_failed(node, e, now),
        }
    }

    fn probe_failed(&mut self, node: Addr, reason: String, now: Instant) {
        self.cx.emit(Event::VerificationFailed {
            node: node.clone(),
            reason: reason.clone(),
        });
        let error = DiscoveryError::VerificationFailed { node, reason };
        self.schedule_discovery_retry(DetectionPath::AppError, true, error, now);
    }

    pub(crate) fn probe_timed_out(&mut self, now: Instant) {
        if let Some((op, _)) = self.verify_probe {
            self.cx.ops.finish(op);
            let reason = format!("no ROLE answer within {:?}", self.cx.cfg.connect_timeout);
            self.verify_probe_reply(Err(reason), now);
        } else {
            self.switch_probe_timed_out(now);
        }
    }
}
