//! What the core wants of the worker pool, as one value the worker task follows
//! ([`WorkerCalls`]): the supervisor's task states it ([`WorkerCalls::want`],
//! [`WorkerCalls::hand_back`]), the task in [`super::workers`] carries it out.

use crate::sync::lock;
use dramatiq_sentinel_core::{Addr, LostCommand, OpId};
use event_listener::Event;
use std::sync::Mutex;
use std::time::Duration;

/// What the core last asked of the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// Run jobs (after `Resume`, and at startup).
    Run,
    /// Drain: wait for the jobs in flight, pause the pool, report `WorkersPaused(op)`.
    Pause(OpId),
    /// Stop for good, giving jobs in flight `grace`.
    Stop(Duration),
}

/// Lost writes for the pool's [`crate::Workers::writes_lost`] (an `Action::HandBack`).
#[derive(Debug)]
pub(crate) struct HandBack {
    pub(crate) op: OpId,
    pub(crate) old: Addr,
    pub(crate) new: Addr,
    pub(crate) commands: Vec<LostCommand>,
}

/// The wanted state and its change notification; the worker task follows it.
#[derive(Debug)]
pub(crate) struct WorkerCalls {
    /// The wanted state, and a counter of stop requests' completion.
    state: Mutex<(Want, bool)>,
    /// A hand-back the core waits for (at most one: the core resumes only after it).
    handback: Mutex<Option<HandBack>>,
    changed: Event,
}

impl Default for WorkerCalls {
    fn default() -> Self {
        Self {
            state: Mutex::new((Want::Run, false)),
            handback: Mutex::new(None),
            changed: Event::new(),
        }
    }
}

impl WorkerCalls {
    /// Asks the worker task for `want` (a stop, once asked, stays).
    pub(crate) fn want(&self, want: Want) {
        {
            let mut s = lock(&self.state);
            if !matches!(s.0, Want::Stop(_)) {
                s.0 = want;
            }
        }
        self.changed.notify(usize::MAX);
    }

    pub(crate) fn current(&self) -> (Want, bool) {
        *lock(&self.state)
    }

    /// Asks the worker task to hand lost writes to the pool.
    pub(crate) fn hand_back(&self, handback: HandBack) {
        *lock(&self.handback) = Some(handback);
        self.changed.notify(usize::MAX);
    }

    pub(crate) fn take_handback(&self) -> Option<HandBack> {
        lock(&self.handback).take()
    }

    /// Marks the stop as done (the pool stopped, or its grace ran out).
    pub(crate) fn stopped(&self) {
        lock(&self.state).1 = true;
        self.changed.notify(usize::MAX);
    }

    /// Waits until the stop asked with [`Want::Stop`] is done.
    pub(crate) async fn wait_stopped(&self) {
        loop {
            let listener = self.changed.listen();
            if self.current().1 {
                return;
            }
            listener.await;
        }
    }

    /// Completes at the next change of the wanted state, or when a hand-back is asked.
    pub(crate) async fn next_change(&self, seen: Want) {
        self.next_change_of(seen, true).await;
    }

    /// Completes at the next change of the wanted state, and with `handback` also when a
    /// hand-back is asked. A pending pause waits without it: the hand-back runs after the
    /// pause (calls never overlap), and a hand-back already waiting would otherwise complete
    /// this at once, every time, a loop that never yields the executor's thread.
    pub(crate) async fn next_change_of(&self, seen: Want, handback: bool) {
        loop {
            let listener = self.changed.listen();
            if self.current().0 != seen || (handback && lock(&self.handback).is_some()) {
                return;
            }
            listener.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-back asked while a pause is pending does not wake the pause's wait for a stop
    /// (it used to, at every poll: a busy loop that starved a one-thread executor, so a pause
    /// timeout never ran); a stop still does.
    #[test]
    fn a_waiting_hand_back_does_not_wake_a_pending_pause() {
        let calls = WorkerCalls::default();
        let op = OpId(1);
        calls.want(Want::Pause(op));
        calls.hand_back(HandBack {
            op: OpId(2),
            old: Addr::new("127.0.0.1", 1),
            new: Addr::new("127.0.0.1", 2),
            commands: Vec::new(),
        });
        let mut wait = Box::pin(calls.next_change_of(Want::Pause(op), false));
        assert!(
            futures_lite::future::block_on(futures_lite::future::poll_once(&mut wait)).is_none()
        );
        let mut any = Box::pin(calls.next_change(Want::Pause(op)));
        assert!(
            futures_lite::future::block_on(futures_lite::future::poll_once(&mut any)).is_some(),
            "the worker task's idle wait still wakes for the hand-back"
        );
        calls.want(Want::Stop(Duration::ZERO));
        assert!(
            futures_lite::future::block_on(futures_lite::future::poll_once(&mut wait)).is_some()
        );
    }
}
