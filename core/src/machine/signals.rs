//! What sentinel messages do to the switch: `+switch-master`, early failover signals and
//! candidates (fence early, follow the candidate), aborts and the fence timeout (lift after
//! re-verifying), and discovery answers naming a master that is failing over.

use super::Core;
use crate::action::Action;
use crate::addr::Addr;
use crate::epochs::Known;
use crate::event::{DetectionPath, Event, IgnoreReason};
use crate::parse::FailoverSignal;
use std::time::Instant;

impl Core {
    /// `+switch-master` for our service (addresses already NAT-mapped), sent at the
    /// connection epoch `tag`. It moves the switch to `new`, unless it may be old news (sent
    /// at an epoch not above the configuration in use): then the core fences and asks the
    /// sentinels, whose answers carry configuration epochs.
    pub(super) fn on_switch_master(
        &mut self,
        old: Addr,
        new: Addr,
        sentinel: &Addr,
        tag: Option<u64>,
        now: Instant,
    ) -> Result<(), IgnoreReason> {
        let late = self.epochs.possibly_late(tag, Some(&new));
        match tag {
            // Whatever the core does next, `old` was replaced.
            Some(tag) if !late => self.epochs.switched(&old, &new, self.master.as_ref(), tag),
            // Old news perhaps, but true: a configuration of `old` up to the epoch before the
            // message's was replaced (the master in use may have been re-promoted since).
            Some(tag) if self.master.as_ref() != Some(&old) => self.epochs.replaced_by(&old, tag),
            _ => {}
        }
        let already = match &self.switch {
            None => self.master.as_ref() == Some(&new),
            Some(sw) => sw.target() == Some(&new),
        };
        if already {
            return Err(IgnoreReason::Duplicate);
        }
        // A failover of `new` is under way (newer than the announcement, or of an epoch the
        // core cannot compare): the sentinels' answers, with their epochs, decide.
        let s = Some(sentinel.clone());
        if late || self.history.is_failing(&new, None, now) {
            if self.switch.is_none() {
                self.start_switch(DetectionPath::Event, s, false, "+switch-master", now);
            }
            let path = self
                .switch
                .as_ref()
                .map_or(DetectionPath::Event, |sw| sw.path);
            self.ensure_discovery(path, now);
            self.drive_switch(now);
            return Err(IgnoreReason::Unproven(new));
        }
        self.history.moved(&old, &new);
        if self.switch.is_none() {
            self.start_switch(
                DetectionPath::Event,
                s.clone(),
                false,
                "+switch-master",
                now,
            );
        }
        self.set_target(new, Known::Announced(tag), DetectionPath::Event, s, now);
        Ok(())
    }

    /// An early failover signal, a candidate announcement, or an abort for our service, about
    /// `master` (the failing master, NAT-mapped), sent at the connection epoch `tag`. Signals
    /// about the master in use fence it (a fence is always safe); a candidate is not followed
    /// when the signal may be old news (sent at an epoch not above the configuration in use).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_failover_signal(
        &mut self,
        signal: FailoverSignal,
        channel: String,
        master: Addr,
        replica: Option<Addr>,
        sentinel: &Addr,
        tag: Option<u64>,
        now: Instant,
    ) -> Result<(), IgnoreReason> {
        let proven = !self.epochs.possibly_late(tag, replica.as_ref());
        let candidate = replica.clone().filter(|_| proven);
        self.history
            .note_signal(signal, &master, candidate.as_ref(), (sentinel, tag), now);
        if !self.cx.cfg.early_fencing {
            return Ok(());
        }
        if signal == FailoverSignal::Abort {
            let waiting = self
                .switch
                .as_ref()
                .is_some_and(|sw| sw.awaits_failover_of(&master));
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
            Some(sw) if sw.awaits_failover_of(&master) => false,
            // The master we are moving to (or tried to, or use, or wait for as candidate) is
            // failing over in turn.
            Some(sw)
                if sw.target() == Some(&master)
                    || (sw.target().is_none()
                        && (in_use
                            || sw.last_target() == Some(&master)
                            || sw.awaited() == Some(&master))) =>
            {
                let known = if sw.target() == Some(&master) {
                    sw.target_epoch()
                } else {
                    Known::Unknown
                };
                self.refence(master.clone(), known, sentinel, &channel, now);
                true
            }
            _ => return Err(IgnoreReason::NotOurMaster(master)),
        };
        let Some(sw) = self.switch.as_mut() else {
            return Ok(());
        };
        if sw.failing() == Some(&master) {
            // A sentinel announced this failover: a fence begun on a replica's closing stays.
            sw.take_watch_only();
        }
        match replica {
            Some(c)
                if signal == FailoverSignal::Candidate
                    && sw.target().is_none()
                    && sw.awaited() != Some(&c) =>
            {
                if !proven {
                    // Maybe a late copy: do not follow it (the sentinels will tell).
                    return if fenced_now {
                        Ok(())
                    } else {
                        Err(IgnoreReason::Unproven(c))
                    };
                }
                sw.name_candidate(c.clone(), Known::Announced(tag), false, now, &mut self.cx);
                self.cx.emit(Event::CandidateNamed {
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

    /// A sentinel's answer says a failover of the master in use is under way (its flags): the
    /// same early fence as its first signal, remembered as that failover's.
    pub(super) fn fence_failing_master(
        &mut self,
        master: Addr,
        path: DetectionPath,
        sentinel: Addr,
        signal: &str,
        now: Instant,
    ) {
        self.history.note_signal(
            FailoverSignal::Failover,
            &master,
            None,
            (&sentinel, None),
            now,
        );
        self.start_switch(path, Some(sentinel), true, signal, now);
        self.drive_switch(now);
    }

    /// A master the switch uses or moves to announced its own failover (`known`: what the core
    /// knows of its epoch): wait for its successor.
    fn refence(
        &mut self,
        failing: Addr,
        known: Known,
        sentinel: &Addr,
        channel: &str,
        now: Instant,
    ) {
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        sw.refence(failing.clone(), known, now, &mut self.cx);
        self.cx.act(Action::Fence);
        self.cx.emit(Event::Fenced {
            master: failing,
            path: DetectionPath::EarlySignal,
            sentinel: Some(sentinel.clone()),
            signal: channel.to_owned(),
        });
    }

    /// The failover was aborted (or the fence timed out). If a candidate was named, poll it
    /// once more (a late abort must not undo a promotion); then re-verify the master in use and
    /// lift the fence if it still is master.
    pub(super) fn lift_fence(&mut self, reason: String, now: Instant) -> Result<(), IgnoreReason> {
        let Some(sw) = self.switch.as_mut() else {
            return Err(IgnoreReason::Duplicate);
        };
        if !sw.lift(reason, &mut self.cx) {
            return Err(IgnoreReason::Duplicate);
        }
        if sw.awaited().is_some() {
            self.role_poll_due(now);
        } else {
            self.lift_to_master(now);
        }
        Ok(())
    }

    /// Verifies the master whose failover was announced (normally the one in use) as the
    /// switch's target, or discovers when there is none.
    pub(super) fn lift_to_master(&mut self, now: Instant) {
        let Some(sw) = self.switch.as_mut() else {
            return;
        };
        let (path, sentinel) = (sw.path, sw.sentinel.clone());
        // The failing master at the epoch an answer named it, if one did (the configuration
        // it replaces is then bounded); the master in use is probed, its epoch kept.
        let failing = sw.failing_with_epoch();
        match failing.or_else(|| self.master.clone().map(|m| (m, Known::Unknown))) {
            // A watch saw one of its replicas promoted: it is deposed, whatever its `ROLE`
            // says; the sentinels tell where the master went.
            Some((m, _)) if self.history.promotion_seen(&m, now) => {
                sw.stop_lifting();
                self.ensure_discovery(path, now);
            }
            Some((m, known)) => self.set_target(m, known, path, sentinel, now),
            None => self.drive_switch(now),
        }
    }

    /// A discovery answer names a master whose failover was announced recently: do not use it;
    /// fence early on it and follow its candidate instead. Returns whether it did.
    pub(super) fn follow_failover(
        &mut self,
        addr: &Addr,
        epoch: Known,
        sentinel: &Addr,
        now: Instant,
    ) -> bool {
        let config_epoch = match epoch {
            Known::Exact(e) => Some(e),
            Known::Announced(_) | Known::Unknown => None,
        };
        if !self.history.is_failing(addr, config_epoch, now) {
            return false;
        }
        let candidate = self.history.candidate_of(addr, config_epoch);
        let signal = "discovery during failover";
        if self.switch.is_none() {
            let s = Some(sentinel.clone());
            self.start_switch(DetectionPath::EarlySignal, s, true, signal, now);
        }
        self.refence(addr.clone(), epoch, sentinel, signal, now);
        if let (Some(sw), Some(c)) = (self.switch.as_mut(), candidate) {
            sw.name_candidate(c.clone(), Known::Unknown, false, now, &mut self.cx);
            self.cx.emit(Event::CandidateNamed {
                candidate: c,
                sentinel: Some(sentinel.clone()),
            });
        }
        self.drive_switch(now);
        true
    }

    /// The early fence saw no promotion within `fence_timeout`: lift it.
    pub(super) fn fence_timed_out(&mut self, now: Instant) {
        if let Some(sw) = &self.switch
            && let Some(master) = sw.failing().cloned().or_else(|| self.master.clone())
        {
            let waited = now.saturating_duration_since(sw.started);
            self.cx.emit(Event::FenceExpired { master, waited });
        }
        let reason = format!("no promotion within {:?}", self.cx.cfg.fence_timeout);
        let _ = self.lift_fence(reason, now);
    }
}
