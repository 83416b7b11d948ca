//! The supervisor's events on their way to the Python side, and the activation signal that
//! wakes the thread closing connections to a replaced master.
//!
//! Events are queued by the supervisor's `on_event` hook (on its task: it must never block)
//! and taken by the Python event thread. The queue is bounded twice: routine events (debug and
//! info level, no hook of the original attached) are dropped once [`ROUTINE_CAPACITY`] wait,
//! so a stalled Python side cannot grow it; the events the original's hooks and operators
//! rely on (fence, switch, reset, warnings, errors) are kept up to [`CAPACITY`] (they come at
//! most a few per failover or per retry of a backoff). Drops are counted.

use dramatiq_sentinel_supervisor::EventLevel;
use dramatiq_sentinel_tokio::Event;
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How many routine events may wait before new routine ones are dropped.
pub(crate) const ROUTINE_CAPACITY: usize = 1024;
/// How many events may wait in all before any new one is dropped.
pub(crate) const CAPACITY: usize = 65_536;

/// Events whose hooks or meaning a user relies on: never dropped for routine ones.
const KEPT: &[&str] = &[
    "Fenced",
    "SwitchDetected",
    "BeforeReset",
    "AfterReset",
    "SwitchCompleted",
    "FenceLifted",
    "Stopped",
];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Default)]
struct State {
    events: VecDeque<(Event, bool)>,
    routine: usize,
    dropped: u64,
    /// How many masters were activated (`AfterReset`) since the start.
    activations: u64,
    closed: bool,
}

/// The queue of events and the activation counter (see the module docs).
#[derive(Default)]
pub(crate) struct EventQueue {
    state: Mutex<State>,
    ready: Condvar,
    activated: Condvar,
}

impl EventQueue {
    /// Queues `event` (never blocks); counts an activation on `AfterReset`.
    pub(crate) fn push(&self, event: &Event) {
        let record = event.describe();
        let routine = record.level < EventLevel::Warn && !KEPT.contains(&record.name);
        let mut s = lock(&self.state);
        if record.name == "AfterReset" {
            s.activations += 1;
            self.activated.notify_all();
        }
        if s.closed {
            return;
        }
        if s.events.len() >= CAPACITY || (routine && s.routine >= ROUTINE_CAPACITY) {
            s.dropped += 1;
            return;
        }
        s.routine += usize::from(routine);
        s.events.push_back((event.clone(), routine));
        self.ready.notify_one();
    }

    /// The next event, waiting at most `limit`; `None` on timeout or once closed and empty.
    pub(crate) fn pop(&self, limit: Duration) -> Option<Event> {
        let deadline = Instant::now() + limit;
        let mut s = lock(&self.state);
        loop {
            if let Some((event, routine)) = s.events.pop_front() {
                s.routine -= usize::from(routine);
                return Some(event);
            }
            let now = Instant::now();
            if s.closed || now >= deadline {
                return None;
            }
            s = self
                .ready
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits at most `limit` until the activation count differs from `seen`; returns it.
    pub(crate) fn wait_activation(&self, seen: u64, limit: Duration) -> u64 {
        let deadline = Instant::now() + limit;
        let mut s = lock(&self.state);
        loop {
            let now = Instant::now();
            if s.activations != seen || s.closed || now >= deadline {
                return s.activations;
            }
            s = self
                .activated
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// How many events were dropped.
    pub(crate) fn dropped(&self) -> u64 {
        lock(&self.state).dropped
    }

    /// Wakes every waiter; later events are not queued (the ones waiting still are taken).
    pub(crate) fn close(&self) {
        lock(&self.state).closed = true;
        self.ready.notify_all();
        self.activated.notify_all();
    }
}
