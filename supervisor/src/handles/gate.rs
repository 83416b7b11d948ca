//! The worker gate (a permit per job; pausing waits for the permits in flight) and the
//! [`Workers`] trait for pools that manage themselves.

use crate::runtime::BoxFuture;
use crate::sync::lock;
use dramatiq_sentinel_core::{Addr, LostCommand};
use event_listener::Event;
use redis::aio::MultiplexedConnection;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Lets workers start jobs only while no failover is in progress.
///
/// A worker takes a [`Permit`] per job with [`WorkerGate::enter`] and drops it when the job is
/// done (acknowledged). When the supervisor fences (a failover was announced), the gate closes:
/// `enter` waits and jobs in flight go on. The gate reopens as soon as the verified new master
/// is in use (with a drain, once every permit is back). Cheap to clone.
///
/// Take the permit *before* fetching a job, so that no job is fetched while paused.
#[derive(Clone, Debug)]
pub struct WorkerGate {
    inner: Arc<GateInner>,
}

#[derive(Debug)]
struct GateInner {
    state: Mutex<GateState>,
    changed: Event,
}

#[derive(Debug)]
struct GateState {
    open: bool,
    stopped: bool,
    in_flight: usize,
}

/// The supervisor stopped: no more jobs may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the supervisor stopped: no new jobs may start")]
pub struct GateStopped;

/// Permission to run one job; return it by dropping it when the job is done.
#[derive(Debug)]
#[must_use = "a permit is returned as soon as it is dropped"]
pub struct Permit {
    gate: Arc<GateInner>,
}

impl WorkerGate {
    /// A closed gate (it opens when the supervisor is ready).
    pub(crate) fn new() -> Self {
        Self {
            inner: Arc::new(GateInner {
                state: Mutex::new(GateState {
                    open: false,
                    stopped: false,
                    in_flight: 0,
                }),
                changed: Event::new(),
            }),
        }
    }

    /// Waits until jobs may start, and takes a permit for one job. Fails once the supervisor
    /// has stopped (shut down, or workers stopped after a pause timeout).
    pub async fn enter(&self) -> Result<Permit, GateStopped> {
        loop {
            let listener = {
                let mut s = lock(&self.inner.state);
                if s.stopped {
                    return Err(GateStopped);
                }
                if s.open {
                    s.in_flight += 1;
                    return Ok(Permit {
                        gate: Arc::clone(&self.inner),
                    });
                }
                self.inner.changed.listen()
            };
            listener.await;
        }
    }

    /// Whether jobs may start now.
    pub fn is_open(&self) -> bool {
        let s = lock(&self.inner.state);
        s.open && !s.stopped
    }

    /// Whether the gate stopped for good.
    pub fn is_stopped(&self) -> bool {
        lock(&self.inner.state).stopped
    }

    /// The permits currently held (jobs in flight).
    pub fn in_flight(&self) -> usize {
        lock(&self.inner.state).in_flight
    }

    fn update(&self, f: impl FnOnce(&mut GateState)) {
        f(&mut lock(&self.inner.state));
        self.inner.changed.notify(usize::MAX);
    }

    /// Stops new jobs (fence).
    pub(crate) fn close(&self) {
        self.update(|s| s.open = false);
    }

    /// Lets jobs start again (resume).
    pub(crate) fn open(&self) {
        self.update(|s| s.open = true);
    }

    /// Closes for good: `enter` fails from now on.
    pub(crate) fn stop(&self) {
        self.update(|s| {
            s.open = false;
            s.stopped = true;
        });
    }

    /// Completes when no permit is held.
    pub(crate) async fn drained(&self) {
        loop {
            let listener = {
                if lock(&self.inner.state).in_flight == 0 {
                    return;
                }
                self.inner.changed.listen()
            };
            listener.await;
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        {
            let mut s = lock(&self.gate.state);
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        self.gate.changed.notify(usize::MAX);
    }
}

/// A worker pool that pauses, resumes and stops itself, for pools that do not (only) use the
/// [`WorkerGate`]. Every method has a no-op default.
///
/// By default a switch does not drain the workers: jobs in flight keep running (their commands
/// are held by the fence and go to the verified new master), so [`Workers::pause`] and
/// [`Workers::resume`] are not called. With a drain (the `drain` setting, or
/// [`Workers::needs_drain`]), the supervisor calls [`Workers::pause`] after the gate has
/// closed and drained, and [`Workers::resume`] when work may go on (on the new master).
/// [`Workers::stop`] comes at shutdown, and when a drain timed out, before the process exits
/// or the supervisor fails. The calls run on one task, in order, never two at once.
pub trait Workers: Send + Sync + 'static {
    /// Whether this pool needs a moment with no job running at each switch (a drain), for
    /// example because it must not hold a connection across it. Default `false`.
    fn needs_drain(&self) -> bool {
        false
    }

    /// Start no new job, and complete once the jobs in flight are done (with a drain only). The
    /// supervisor bounds the wait with `pause_timeout`.
    fn pause(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Start jobs again.
    fn resume(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Stop for good, giving jobs in flight at most `grace` (the supervisor stops waiting then).
    fn stop(&self, grace: Duration) -> BoxFuture<'_, ()> {
        let _ = grace;
        Box::pin(async {})
    }

    /// Writes the old master acknowledged but the new master lacks, read back from the old
    /// master's replication backlog (also reported as [`crate::Event::WritesLost`]): re-apply
    /// what is safe to re-apply, idempotently, through `lost.connection`. It runs before any
    /// held command reaches the new master and before new jobs start (the switch resumes once
    /// it completes, or after `fence_timeout`). The supervisor never re-applies anything on its
    /// own. Default: nothing.
    fn writes_lost(&self, lost: LostWrites) -> BoxFuture<'_, ()> {
        let _ = lost;
        Box::pin(async {})
    }
}

/// Lost writes handed to [`Workers::writes_lost`].
#[derive(Debug)]
#[non_exhaustive]
pub struct LostWrites {
    /// The master the writes were acknowledged by, and lost on.
    pub old: Addr,
    /// The new master.
    pub new: Addr,
    /// The commands, in the order the old master ran them (`MULTI` / `EXEC` kept).
    pub commands: Vec<LostCommand>,
    /// A connection of its own to the new master, in the database of the master handle
    /// (commands of the master handle are held until the switch resumes).
    pub connection: MultiplexedConnection,
}

impl<W: Workers + ?Sized> Workers for Arc<W> {
    fn needs_drain(&self) -> bool {
        (**self).needs_drain()
    }

    fn pause(&self) -> BoxFuture<'_, ()> {
        (**self).pause()
    }

    fn resume(&self) -> BoxFuture<'_, ()> {
        (**self).resume()
    }

    fn stop(&self, grace: Duration) -> BoxFuture<'_, ()> {
        (**self).stop(grace)
    }

    fn writes_lost(&self, lost: LostWrites) -> BoxFuture<'_, ()> {
        (**self).writes_lost(lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::{block_on, poll_once};

    #[test]
    fn closed_until_opened() {
        let gate = WorkerGate::new();
        let mut entering = Box::pin(gate.enter());
        assert!(block_on(poll_once(&mut entering)).is_none());
        gate.open();
        let permit = block_on(poll_once(&mut entering)).expect("ready");
        assert!(permit.is_ok());
        assert_eq!(gate.in_flight(), 1);
    }

    #[test]
    fn pausing_waits_for_permits_in_flight() {
        let gate = WorkerGate::new();
        gate.open();
        let a = block_on(gate.enter()).expect("open");
        let b = block_on(gate.enter()).expect("open");
        gate.close();
        let mut entering = Box::pin(gate.enter());
        assert!(block_on(poll_once(&mut entering)).is_none(), "closed");
        let mut drained = Box::pin(gate.drained());
        assert!(block_on(poll_once(&mut drained)).is_none());
        drop(a);
        assert!(
            block_on(poll_once(&mut drained)).is_none(),
            "one still in flight"
        );
        drop(b);
        assert!(block_on(poll_once(&mut drained)).is_some());
        assert!(block_on(poll_once(&mut entering)).is_none(), "still closed");
        gate.open();
        assert!(block_on(poll_once(&mut entering)).is_some());
    }

    #[test]
    fn stop_fails_waiters_and_later_callers() {
        let gate = WorkerGate::new();
        let mut entering = Box::pin(gate.enter());
        assert!(block_on(poll_once(&mut entering)).is_none());
        gate.stop();
        assert_eq!(
            block_on(poll_once(&mut entering)).map(|r| r.err()),
            Some(Some(GateStopped))
        );
        gate.open();
        assert!(block_on(gate.enter()).is_err(), "stopped is final");
        assert!(!gate.is_open());
    }
}
