//! Discovery: ask the sentinels in order for the master, with a timeout per query; the one that
//! answered moves to the front; failed rounds back off. Also the steady-state `ROLE` probe of
//! the master in use after an application error, and the stale check (the master in use tells
//! whether an answer naming a master taken for replaced is newer).

use crate::action::Action;
use crate::addr::Addr;
use crate::backoff::Backoff;
use crate::config::Config;
use crate::context::Context;
use crate::epochs::{Epochs, Known};
use crate::event::{DetectionPath, DiscoveryError, Event};
use crate::input::{IoError, IoErrorKind};
use crate::listeners::Listeners;
use crate::lost::LostWrites;
use crate::op::{OpId, Pending};
use crate::parse::{
    MasterAnswer, Role, is_rejection, master_offset, parse_master_reply, parse_role,
};
use crate::reply::Reply;
use crate::timers::{TimerReason, after};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Asking the sentinels for the master, and checking the master in use.
#[derive(Debug)]
pub(crate) struct Discovery {
    activity: Activity,
    backoff: Backoff,
    /// Why the last round failed, until a master is verified.
    last_error: Option<DiscoveryError>,
    /// A `ROLE` probe of the master in use (steady-state verification), if any.
    verify_probe: Option<(OpId, Addr)>,
    /// A `ROLE` probe of the master in use after the sentinels named a master the core took
    /// for replaced (its bound unknown), that master, and when the probe was sent (one
    /// unanswered after `connect_timeout` no longer blocks the next).
    stale_check: Option<(OpId, Addr, Instant)>,
}

/// The discovery activity.
#[derive(Debug)]
enum Activity {
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
struct Round {
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

/// What discovery reads of the rest of the core to judge an answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ground<'a> {
    /// The sentinel table (addresses, discovery order).
    pub(crate) sentinels: &'a Listeners,
    /// The master in use.
    pub(crate) in_use: Option<&'a Addr>,
    /// A switch (or fence) is in progress.
    pub(crate) switching: bool,
}

/// What a round came to.
#[derive(Debug)]
pub(crate) enum Answer {
    /// Nothing yet: the next sentinel is asked (or no round runs).
    Pending,
    /// Sentinel `sentinel` (an index) names `addr`, a master that is up.
    Found {
        sentinel: usize,
        addr: Addr,
        epoch: Known,
        path: DetectionPath,
        verify: bool,
    },
    /// A sentinel's flags say the master in use is being failed over (`early_fencing`, no
    /// switch in progress): fence as its first signal would have.
    Failing {
        master: Addr,
        path: DetectionPath,
        sentinel: Addr,
        signal: String,
    },
    /// Every sentinel was asked; none named a usable master.
    Failed(Failure),
}

/// A failed round.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) path: DetectionPath,
    pub(crate) verify: bool,
    pub(crate) error: DiscoveryError,
    /// Retrying will not fix it (every sentinel refused, or none knows the service).
    pub(crate) permanent: bool,
}

impl Discovery {
    /// Idle, with the retry backoff of the configuration.
    pub(crate) fn new(cfg: &Config) -> Self {
        Self {
            activity: Activity::Idle,
            backoff: Backoff::new(cfg.retry_delay, cfg.max_retry_delay, cfg.backoff_factor),
            last_error: None,
            verify_probe: None,
            stale_check: None,
        }
    }

    /// Whether no round runs and none is scheduled.
    pub(crate) fn is_idle(&self) -> bool {
        matches!(self.activity, Activity::Idle)
    }

    /// Why the last round failed, until a master is verified.
    pub(crate) fn last_error(&self) -> Option<&DiscoveryError> {
        self.last_error.as_ref()
    }

    /// Startup stops with `error`.
    pub(crate) fn refused(&mut self, error: DiscoveryError) {
        self.last_error = Some(error);
    }

    /// A master was found and verified: the next failure starts the backoff anew.
    pub(crate) fn succeeded(&mut self) {
        self.backoff.reset();
        self.last_error = None;
    }

    /// A switch completed: a round started or scheduled while looking for its master is moot
    /// (a late reply is ignored by its id), and the backoff starts anew.
    pub(crate) fn settled(&mut self, cx: &mut Context) {
        if !self.is_idle() {
            self.set(Activity::Idle, cx);
            cx.timers.cancel(TimerReason::DiscoveryRetry);
            cx.timers.cancel(TimerReason::QueryTimeout);
        }
        self.succeeded();
    }

    /// Replaces the activity; a query the old round still waited for is no longer waited for
    /// (its late answer only tells an epoch). Returns the old activity.
    fn set(&mut self, next: Activity, cx: &mut Context) -> Activity {
        let old = std::mem::replace(&mut self.activity, next);
        if let Activity::Running(Round {
            current: Some((op, _)),
            ..
        }) = old
        {
            cx.ops.finish(op);
        }
        old
    }

    /// Re-checks the master (outside a switch: poll, listener reconnect, application error),
    /// asking sentinel `first` before the others (the one whose listener just came back: what
    /// it announced meanwhile was not heard), also when a round is already under way and has
    /// not asked it yet. Coalesces with a round already running or scheduled.
    pub(crate) fn recheck(
        &mut self,
        first: Option<usize>,
        path: DetectionPath,
        verify: bool,
        sentinels: &Listeners,
        now: Instant,
        cx: &mut Context,
    ) -> Answer {
        match &mut self.activity {
            Activity::Idle => return self.start(path, verify, first, sentinels, now, cx),
            Activity::Running(round) => {
                round.verify |= verify;
                if let Some(i) = first
                    && round.queue.contains(&i)
                {
                    round.queue.retain(|&q| q != i);
                    round.queue.push_front(i);
                }
            }
            Activity::Waiting { .. } => {}
        }
        Answer::Pending
    }

    /// Starts a round unless one is running or scheduled.
    pub(crate) fn ensure(
        &mut self,
        path: DetectionPath,
        sentinels: &Listeners,
        now: Instant,
        cx: &mut Context,
    ) -> Answer {
        if !self.is_idle() {
            return Answer::Pending;
        }
        self.start(path, false, None, sentinels, now, cx)
    }

    /// The scheduled retry is due.
    pub(crate) fn retry_due(
        &mut self,
        sentinels: &Listeners,
        now: Instant,
        cx: &mut Context,
    ) -> Answer {
        match self.activity {
            Activity::Waiting { path, verify } => {
                self.start(path, verify, None, sentinels, now, cx)
            }
            _ => Answer::Pending,
        }
    }

    /// Starts a round over the sentinels in discovery order (`first`, if given, before them).
    fn start(
        &mut self,
        path: DetectionPath,
        verify: bool,
        first: Option<usize>,
        sentinels: &Listeners,
        now: Instant,
        cx: &mut Context,
    ) -> Answer {
        let others = sentinels
            .order()
            .iter()
            .copied()
            .filter(|&i| Some(i) != first);
        let round = Round {
            path,
            verify,
            queue: first.into_iter().chain(others).collect(),
            current: None,
            failures: Vec::new(),
            unknown: Vec::new(),
            down: None,
            older: None,
            transient: false,
        };
        self.set(Activity::Running(round), cx);
        self.next_query(sentinels, now, cx)
    }

    /// Asks the next sentinel of the round, or ends it.
    fn next_query(&mut self, sentinels: &Listeners, now: Instant, cx: &mut Context) -> Answer {
        let Activity::Running(round) = &mut self.activity else {
            return Answer::Pending;
        };
        let next =
            std::iter::from_fn(|| round.queue.pop_front()).find(|&i| !sentinels.is_forgotten(i));
        let Some(i) = next else {
            return self.round_failed(cx);
        };
        let op = cx.start(Pending::MasterQuery);
        round.current = Some((op, i));
        cx.timers
            .set(TimerReason::QueryTimeout, after(now, cx.cfg.query_timeout));
        cx.act(Action::QueryMaster {
            op,
            sentinel: sentinels.addr(i).clone(),
            service: cx.cfg.service_name.clone(),
        });
        Answer::Pending
    }

    /// The current query got no answer in time: it is no longer waited for, and counts as an
    /// unreachable sentinel (the failure returned is its answer).
    pub(crate) fn query_timed_out(&mut self, cx: &mut Context) -> Option<IoError> {
        let Activity::Running(Round {
            current: Some((op, _)),
            ..
        }) = self.activity
        else {
            return None;
        };
        cx.ops.finish(op);
        let reason = format!("no answer within {:?}", cx.cfg.query_timeout);
        Some(IoError::unreachable(reason))
    }

    /// A late answer decides nothing, but the configuration it names existed.
    pub(crate) fn late_reply(reply: Result<Reply, IoError>, epochs: &mut Epochs, cx: &Context) {
        if let Ok(Ok(MasterAnswer::Known(info))) = reply.as_ref().map(parse_master_reply)
            && let Some(c) = info.config_epoch
        {
            epochs.named(&cx.cfg.nat.map(&info.addr), c);
        }
    }

    /// The answer to the round's current query (what the configuration epochs tell is
    /// recorded in `epochs`).
    pub(crate) fn reply(
        &mut self,
        reply: Result<Reply, IoError>,
        ground: Ground<'_>,
        epochs: &mut Epochs,
        now: Instant,
        cx: &mut Context,
    ) -> Answer {
        let Activity::Running(round) = &mut self.activity else {
            return Answer::Pending;
        };
        let Some((_, i)) = round.current.take() else {
            return Answer::Pending;
        };
        cx.timers.cancel(TimerReason::QueryTimeout);
        let sentinel = ground.sentinels.addr(i).clone();
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
                let addr = cx.cfg.nat.map(&info.addr);
                let epoch = info.config_epoch;
                let in_use = ground.in_use == Some(&addr);
                // A sentinel naming an older configuration has not caught up: not believed.
                // One naming the master in use tells its epoch.
                if let Some(c) = epoch {
                    epochs.named(&addr, c);
                }
                let older = epoch.is_some_and(|c| epochs.older(&addr, c, ground.in_use));
                if let Some(c) = epoch
                    && in_use
                    && !older
                {
                    epochs.confirmed(c);
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
                } else if failing && cx.cfg.early_fencing && !ground.switching && in_use {
                    let path = round.path;
                    self.set(Activity::Idle, cx);
                    let signal = format!("SENTINEL MASTER flags {}", info.flags.join(","));
                    return Answer::Failing {
                        master: addr,
                        path,
                        sentinel,
                        signal,
                    };
                } else if !info.is_up() || failing && !in_use {
                    // A master being failed over is not one to move to: the sentinels will
                    // name its successor.
                    round.down = Some((addr, info.flags.join(",")));
                } else {
                    let (path, verify) = (round.path, round.verify);
                    self.set(Activity::Idle, cx);
                    return Answer::Found {
                        sentinel: i,
                        addr,
                        epoch: epoch.map_or(Known::Unknown, Known::Exact),
                        path,
                        verify,
                    };
                }
            }
        }
        self.next_query(ground.sentinels, now, cx)
    }

    /// Every sentinel was asked: the round's error, most telling first.
    fn round_failed(&mut self, cx: &mut Context) -> Answer {
        let Activity::Running(round) = self.set(Activity::Idle, cx) else {
            return Answer::Pending;
        };
        let permanent = round.down.is_none() && round.older.is_none() && !round.transient;
        let error = if let Some((master, flags)) = round.down {
            DiscoveryError::MasterDown { master, flags }
        } else if let Some(master) = round.older {
            DiscoveryError::StaleAnswer { master }
        } else if !round.unknown.is_empty() {
            DiscoveryError::MasterNameUnknown {
                service: cx.cfg.service_name.clone(),
                sentinels: round.unknown,
            }
        } else {
            DiscoveryError::SentinelsUnreachable {
                failures: round.failures,
            }
        };
        Answer::Failed(Failure {
            path: round.path,
            verify: round.verify,
            error,
            permanent,
        })
    }

    /// Schedules the next round after the backoff, and reports the failure when it changed:
    /// the same answer again (a master flagged down until the sentinels fail over, sentinels
    /// that have not caught up) is a state being waited out, not news at every retry.
    pub(crate) fn retry_after(&mut self, failure: Failure, now: Instant, cx: &mut Context) {
        let repeated = self.last_error.as_ref() == Some(&failure.error);
        let error = failure.error.clone();
        let retry_in = self.schedule_retry(failure.path, failure.verify, failure.error, now, cx);
        if !repeated {
            cx.emit(Event::DiscoveryFailed { error, retry_in });
        }
    }

    /// Schedules the next round after the backoff; returns the delay.
    pub(crate) fn schedule_retry(
        &mut self,
        path: DetectionPath,
        verify: bool,
        error: DiscoveryError,
        now: Instant,
        cx: &mut Context,
    ) -> Duration {
        self.last_error = Some(error);
        let retry_in = self.backoff.next_delay(&mut cx.rng);
        self.set(Activity::Waiting { path, verify }, cx);
        cx.timers
            .set(TimerReason::DiscoveryRetry, after(now, retry_in));
        retry_in
    }

    /// The sentinels name `named`, which the core took for replaced at an unknown epoch (the
    /// switch that replaced it had no epoch: a replica's watch saw the promotion). The master
    /// in use tells: if it replicates from `named` now, a newer configuration made it so.
    pub(crate) fn check_stale(
        &mut self,
        named: &Addr,
        in_use: Option<&Addr>,
        epochs: &Epochs,
        now: Instant,
        cx: &mut Context,
    ) {
        let pending = self
            .stale_check
            .as_ref()
            .is_some_and(|(.., sent)| now < after(*sent, cx.cfg.connect_timeout));
        if pending || !epochs.replaced_at_unknown(named) {
            return;
        }
        let Some(in_use) = in_use.cloned() else {
            return;
        };
        if let Some((old, ..)) = self.stale_check.take() {
            cx.ops.finish(old);
        }
        let op = cx.start(Pending::StaleCheck);
        self.stale_check = Some((op, named.clone(), now));
        cx.act(Action::PollRole { op, node: in_use });
    }

    /// The master in use answered the stale check: replicating from the master the sentinels
    /// name proves their answer newer (Sentinel reconfigures a deposed master as a replica of
    /// the master of its newest configuration), so it is believed from now on, and asked for
    /// again at once.
    pub(crate) fn stale_reply(
        &mut self,
        reply: Result<Reply, String>,
        epochs: &mut Epochs,
        sentinels: &Listeners,
        now: Instant,
        cx: &mut Context,
    ) -> Answer {
        let Some((_, named, _)) = self.stale_check.take() else {
            return Answer::Pending;
        };
        let role = reply.and_then(|r| parse_role(&r).map_err(|m| m.0));
        let Ok(Role::Replica { master: Some(of) }) = role else {
            return Answer::Pending;
        };
        if cx.cfg.nat.map(&of) != named {
            return Answer::Pending;
        }
        epochs.overruled(&named);
        let Activity::Waiting { path, verify } = self.activity else {
            return Answer::Pending;
        };
        cx.timers.cancel(TimerReason::DiscoveryRetry);
        self.start(path, verify, None, sentinels, now, cx)
    }

    /// Probes `node`, the master in use the sentinels still name, with `ROLE` (after an
    /// application error).
    pub(crate) fn verify(&mut self, node: Addr, now: Instant, cx: &mut Context) {
        if let Some((old, _)) = self.verify_probe.take() {
            cx.ops.finish(old);
        }
        let op = cx.start(Pending::VerifyProbe);
        self.verify_probe = Some((op, node.clone()));
        cx.timers.set(
            TimerReason::ProbeTimeout,
            after(now, cx.cfg.connect_timeout),
        );
        cx.act(Action::PollRole { op, node });
    }

    /// Drops a steady-state probe (a switch takes over).
    pub(crate) fn cancel_verify(&mut self, cx: &mut Context) {
        if let Some((op, _)) = self.verify_probe.take() {
            cx.ops.finish(op);
            cx.timers.cancel(TimerReason::ProbeTimeout);
        }
    }

    /// Whether the steady-state probe is in flight.
    pub(crate) fn verifying(&self) -> bool {
        self.verify_probe.is_some()
    }

    /// The steady-state probe answered (or timed out, or failed). A master confirms it; an
    /// error schedules a new round. Returns the reason when the node says replica: it was
    /// demoted, and the caller fences.
    pub(crate) fn verify_reply(
        &mut self,
        reply: Result<Reply, String>,
        lost: &mut LostWrites,
        now: Instant,
        cx: &mut Context,
    ) -> bool {
        let Some((op, node)) = self.verify_probe.take() else {
            return false;
        };
        cx.ops.finish(op);
        cx.timers.cancel(TimerReason::ProbeTimeout);
        if let Some(offset) = reply.as_ref().ok().and_then(master_offset) {
            lost.observed(&node, offset);
        }
        let role = reply.and_then(|r| parse_role(&r).map_err(|m| m.0));
        let reason = match role {
            Ok(Role::Master) => {
                cx.emit(Event::MasterConfirmed {
                    master: node,
                    path: DetectionPath::AppError,
                });
                return false;
            }
            Ok(role @ Role::Replica { .. }) => {
                // Demoted: fence and find the new master.
                let reason = format!("ROLE says {role}");
                cx.emit(Event::VerificationFailed { node, reason });
                return true;
            }
            Ok(other) => format!("ROLE says {other}"),
            Err(e) => e,
        };
        cx.emit(Event::VerificationFailed {
            node: node.clone(),
            reason: reason.clone(),
        });
        let error = DiscoveryError::VerificationFailed { node, reason };
        self.schedule_retry(DetectionPath::AppError, true, error, now, cx);
        false
    }
}
