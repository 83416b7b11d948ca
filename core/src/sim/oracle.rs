//! The checks applied to every action and event the core emits in the simulation.

use crate::action::{Action, Shutdown};
use crate::addr::Addr;
use crate::config::Config;
use crate::event::Event;
use crate::op::OpId;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// Most actions the core may emit in any one second of virtual time: well above what the
/// fastest legitimate loop needs (candidate polls every `role_poll_interval`, listener
/// traffic), far below a busy loop.
const MAX_ACTIONS_PER_SECOND: usize = 2_000;

/// What the runtime would observe; used to check ordering rules.
#[derive(Debug)]
pub(crate) struct Oracle {
    cfg: Config,
    fenced: bool,
    pause_pending: Option<(OpId, Instant)>,
    /// The activation in flight, and its node.
    activating: Option<(OpId, Addr)>,
    /// `Connect` ops whose `ROLE` reply said master, with their node.
    verified: BTreeMap<OpId, Addr>,
    /// Every address a sentinel named as master or candidate (reachable form).
    pub(crate) reported: BTreeSet<Addr>,
    pause_timed_out: bool,
    pub(crate) stopped: bool,
    /// When a fence was lifted by its timeout (writes may reach a deposed master afterwards).
    pub(crate) fence_expired_at: Option<Instant>,
    recent: VecDeque<Instant>,
    /// The master the application's connection points at.
    in_use: Option<Addr>,
    /// The highest configuration epoch delivered to the core (`config-epoch` of a sentinel's
    /// answer, or the failover of a delivered `+switch-master`).
    pub(crate) seen_config_epoch: u64,
    /// A hand-back of lost writes in progress: the switch must not resume before it ends.
    handing_back: Option<OpId>,
    /// The old and new master of the last `WritesLost` that carried commands.
    lost_with_commands: Option<(Addr, Addr)>,
    /// Sentinels whose listener subscribed since it last failed: its next failure may
    /// reconnect at once.
    listening: BTreeSet<Addr>,
    /// Since the fence: the connection moved away from a master, and the workers paused.
    moved_away: bool,
    paused_since_fence: bool,
}

impl Oracle {
    pub(crate) fn new(cfg: Config) -> Self {
        Oracle {
            cfg,
            // The runtime starts fenced until the first verified master.
            fenced: true,
            pause_pending: None,
            activating: None,
            verified: BTreeMap::new(),
            reported: BTreeSet::new(),
            pause_timed_out: false,
            stopped: false,
            fence_expired_at: None,
            recent: VecDeque::new(),
            in_use: None,
            seen_config_epoch: 0,
            moved_away: false,
            listening: BTreeSet::new(),
            handing_back: None,
            lost_with_commands: None,
            paused_since_fence: false,
        }
    }

    /// Whether the core stopped on a pause timeout.
    pub(crate) fn stopped_on_pause_timeout(&self) -> bool {
        self.stopped && self.pause_timed_out
    }

    pub(crate) fn connect_verified(&mut self, op: OpId, node: Addr) {
        self.verified.insert(op, node);
    }

    pub(crate) fn paused(&mut self, op: OpId) {
        if self.pause_pending.is_some_and(|(p, _)| p == op) {
            self.pause_pending = None;
            self.paused_since_fence = true;
        }
    }

    /// The application is done with the hand-back `op`.
    pub(crate) fn handed_back(&mut self, op: OpId) {
        self.handing_back.take_if(|h| *h == op);
    }

    /// The runtime reported an activation: done, or failed.
    pub(crate) fn reset_done(&mut self, op: OpId, done: bool) {
        let Some((_, node)) = self.activating.take_if(|(a, _)| *a == op) else {
            return;
        };
        if done {
            if self.in_use.as_ref().is_some_and(|m| *m != node) {
                self.moved_away = true;
            }
            self.in_use = Some(node);
        }
    }

    pub(crate) fn action(&mut self, a: &Action, now: Instant) -> Result<(), String> {
        if self.stopped {
            return Err(format!("action after shutdown: {a:?}"));
        }
        self.recent.push_back(now);
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > Duration::from_secs(1))
        {
            self.recent.pop_front();
        }
        if self.recent.len() > MAX_ACTIONS_PER_SECOND {
            return Err(format!(
                "busy loop: more than {MAX_ACTIONS_PER_SECOND} actions in one second"
            ));
        }
        match a {
            Action::Fence => {
                if !self.fenced {
                    self.moved_away = false;
                    self.paused_since_fence = false;
                }
                self.fenced = true;
            }
            Action::PauseWorkers { op } => {
                if !self.cfg.drain {
                    return Err("a drain without `drain` configured".into());
                }
                if !self.fenced {
                    return Err("pause without fence".into());
                }
                self.pause_pending = Some((*op, now));
            }
            Action::Connect { node, .. }
            | Action::PollRole { node, .. }
            | Action::Watch { node, .. }
                if !self.reported.contains(node) =>
            {
                return Err(format!("{a:?}: no sentinel reported {node}"));
            }
            Action::Activate { op, node, .. } => {
                if !self.fenced {
                    return Err(format!("activate {node} while not fenced"));
                }
                if self.verified.get(op) != Some(node) {
                    return Err(format!("activate {node} (op {op}) not verified as master"));
                }
                if self.activating.is_some() {
                    return Err("activate while another activation is pending".into());
                }
                self.activating = Some((*op, node.clone()));
            }
            Action::HandBack { op, old, new, .. } => {
                if self.lost_with_commands.take() != Some((old.clone(), new.clone())) {
                    return Err(format!(
                        "hand-back of writes lost on {old} without a WritesLost carrying them"
                    ));
                }
                self.handing_back = Some(*op);
            }
            Action::Resume => {
                if !self.fenced {
                    return Err("resume while not fenced".into());
                }
                if self.handing_back.is_some() {
                    return Err("resume while lost writes are being handed back".into());
                }
                if self.pause_pending.is_some() {
                    return Err("resume before the workers paused".into());
                }
                if self.activating.is_some() {
                    return Err("resume before the reset completed".into());
                }
                if self.cfg.drain && self.moved_away && !self.paused_since_fence {
                    return Err(
                        "resume after a switch away from a master, without the drain".into(),
                    );
                }
                self.fenced = false;
            }
            Action::Shutdown(Shutdown::Exit { .. }) | Action::StopWorkers { .. }
                if !self.pause_timed_out =>
            {
                return Err(format!("{a:?} without a pause timeout"));
            }
            _ => {}
        }
        if let Action::Shutdown(_) = a {
            self.stopped = true;
        }
        Ok(())
    }

    pub(crate) fn event(&mut self, e: &Event, now: Instant) -> Result<(), String> {
        if self.stopped && !matches!(e, Event::Stopped { .. }) {
            return Err(format!("event after shutdown: {e:?}"));
        }
        match e {
            Event::ListenerUp { sentinel } => {
                self.listening.insert(sentinel.clone());
            }
            // At once after a subscription, then each delay drawn from [base / 2, base].
            Event::ListenerDown {
                retry_in, sentinel, ..
            } => {
                let at_once = self.listening.remove(sentinel) && retry_in.is_zero();
                if !at_once
                    && (*retry_in < self.cfg.min_backoff / 2 || *retry_in > self.cfg.max_backoff)
                {
                    return Err(format!("listener backoff {retry_in:?} out of bounds"));
                }
            }
            Event::DiscoveryFailed { retry_in, .. }
                if *retry_in < self.cfg.retry_delay / 2 || *retry_in > self.cfg.max_retry_delay =>
            {
                return Err(format!("discovery backoff {retry_in:?} out of bounds"));
            }
            Event::PauseTimedOut { .. } => {
                let Some((_, since)) = self.pause_pending else {
                    return Err("pause timeout while no pause is pending".into());
                };
                if now.saturating_duration_since(since) < self.cfg.pause_timeout {
                    return Err("pause timed out early".into());
                }
                self.pause_timed_out = true;
            }
            Event::FenceExpired { .. } => self.fence_expired_at = Some(now),
            Event::WritesLost {
                old,
                new,
                commands: Some(c),
                ..
            } if !c.is_empty() => {
                self.lost_with_commands = Some((old.clone(), new.clone()));
            }
            _ => {}
        }
        Ok(())
    }
}
