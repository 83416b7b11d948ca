//! The one task that calls the worker pool: pause, resume, stop and the hand-back of lost
//! writes run there, strictly in the order the core asked for them, never concurrently. The supervisor's task only states what
//! it wants ([`WorkerCalls::want`](super::worker_calls::WorkerCalls::want)); the state is a single value, so nothing queues up behind
//! a slow pool: a pause and a resume that both wait behind a slow call collapse into whatever
//! was asked last, and a stop cuts a pending pause short.

use super::worker_calls::{HandBack, Want};
use crate::drive::shared::{Input, Shared};
use crate::handles::gate::LostWrites;
use crate::runtime::timeout;
use dramatiq_sentinel_core::{Input as CoreInput, OpId};
use futures_lite::future::{or, zip};
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn};

/// The worker task: follows [`WorkerCalls`](super::worker_calls::WorkerCalls) until stopped or the supervisor ends.
pub(crate) async fn run(shared: Arc<Shared>) {
    let calls = &shared.workers_calls;
    // Whether the pool's own `pause` ran without a `resume` after it.
    let mut pool_paused = false;
    // The last pause reported to the core.
    let mut reported: Option<OpId> = None;
    loop {
        let (want, _) = calls.current();
        if !matches!(want, Want::Stop(_))
            && let Some(handback) = calls.take_handback()
        {
            hand_back(&shared, handback).await;
            continue;
        }
        match want {
            Want::Stop(grace) => {
                stop(&shared, grace).await;
                calls.stopped();
                return;
            }
            Want::Pause(op) if reported != Some(op) => {
                let started = std::time::Instant::now();
                let pause = async {
                    shared.gate.drained().await;
                    if !pool_paused && let Some(w) = &shared.workers {
                        w.pause().await;
                    }
                    true
                };
                // A stop (after a pause timeout) cuts the pause short; a resume waits for it.
                let stop_asked = async {
                    loop {
                        let (w, _) = calls.current();
                        if matches!(w, Want::Stop(_)) {
                            return false;
                        }
                        calls.next_change_of(w, false).await;
                    }
                };
                if !or(pause, stop_asked).await {
                    continue;
                }
                pool_paused = shared.workers.is_some();
                reported = Some(op);
                debug!(op = %op, elapsed_ms = started.elapsed().as_millis() as u64, "workers paused");
                if shared
                    .inbox
                    .send(Input::Core(CoreInput::Paused { op }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Want::Run if pool_paused => {
                if let Some(w) = &shared.workers {
                    w.resume().await;
                }
                pool_paused = false;
            }
            _ => {
                let ended = async {
                    let _ = shared.done.wait().await;
                    true
                };
                if or(
                    async {
                        calls.next_change(want).await;
                        false
                    },
                    ended,
                )
                .await
                {
                    return;
                }
            }
        }
    }
}

/// Hands lost writes to the pool's [`crate::Workers::writes_lost`] with a connection of their
/// own to the new master (the master handle's commands are held until the switch resumes), and
/// tells the core it is done.
async fn hand_back(shared: &Shared, handback: HandBack) {
    let HandBack {
        op,
        old,
        new,
        commands,
    } = handback;
    if let Some(w) = &shared.workers {
        let started = std::time::Instant::now();
        let count = commands.len();
        match shared
            .data
            .open_timed(&*shared.rt, &new, shared.cfg.command_timeout())
            .await
        {
            Ok(connection) => {
                let lost = LostWrites {
                    old: old.clone(),
                    new: new.clone(),
                    commands,
                    connection,
                };
                w.writes_lost(lost).await;
                info!(old = %old, new = %new, commands = count,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "lost writes handed to the worker pool");
            }
            Err(e) => warn!(new = %new, error = %e, commands = count,
                "lost writes not handed back: no connection to the new master"),
        }
    }
    let _ = shared
        .inbox
        .send(Input::Core(CoreInput::HandedBack { op }))
        .await;
}

/// Closes the gate for good and waits, at most `grace`, for jobs in flight and the pool.
async fn stop(shared: &Shared, grace: Duration) {
    shared.gate.stop();
    let pool = async {
        if let Some(w) = &shared.workers {
            w.stop(grace).await;
        }
    };
    let stopped = timeout(&*shared.rt, grace, zip(shared.gate.drained(), pool)).await;
    if stopped.is_none() {
        info!(
            grace_ms = grace.as_millis() as u64,
            "workers still busy after the grace period"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::Config;
    use crate::handles::gate::Workers;
    use crate::runtime::BoxFuture;
    use crate::sync::lock;
    use crate::testing;
    use futures_lite::future::block_on;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    /// A pool whose calls take `delay` and that records them, and any overlap between them.
    #[derive(Default)]
    struct Recorder {
        log: Mutex<Vec<&'static str>>,
        busy: AtomicBool,
        overlapped: AtomicBool,
        delay: Duration,
    }

    impl Recorder {
        fn call(&self, name: &'static str) -> BoxFuture<'_, ()> {
            Box::pin(async move {
                if self.busy.swap(true, Ordering::SeqCst) {
                    self.overlapped.store(true, Ordering::SeqCst);
                }
                // Each task of the test runtime has a thread of its own.
                std::thread::sleep(self.delay);
                lock(&self.log).push(name);
                self.busy.store(false, Ordering::SeqCst);
            })
        }
    }

    impl Workers for Recorder {
        fn pause(&self) -> BoxFuture<'_, ()> {
            self.call("pause")
        }
        fn resume(&self) -> BoxFuture<'_, ()> {
            self.call("resume")
        }
        fn stop(&self, _grace: Duration) -> BoxFuture<'_, ()> {
            self.call("stop")
        }
    }

    fn setup(delay: Duration) -> (Arc<Shared>, async_channel::Receiver<Input>, Arc<Recorder>) {
        let pool = Arc::new(Recorder {
            delay,
            ..Recorder::default()
        });
        let config = Config::builder().build().expect("valid");
        let (shared, inbox) = testing::shared(config, Some(pool.clone()));
        shared.gate.open();
        shared.rt.spawn(Box::pin(run(Arc::clone(&shared))));
        (shared, inbox, pool)
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Pauses and resumes asked faster than a slow pool answers run one at a time, in order:
    /// never two calls at once, never two pauses or two resumes in a row, and the pool ends
    /// in the state asked last. (Calls spawned as detached tasks, as before, overlap here.)
    #[test]
    fn pool_calls_never_overlap_and_follow_the_last_wish() {
        let (shared, inbox, pool) = setup(Duration::from_millis(15));
        let mut rng = fastrand::Rng::with_seed(3);
        for op in 1..=40 {
            shared.workers_calls.want(Want::Pause(OpId(op)));
            std::thread::sleep(Duration::from_millis(rng.u64(0..20)));
            shared.workers_calls.want(Want::Run);
            std::thread::sleep(Duration::from_millis(rng.u64(0..20)));
        }
        wait_until("the pool to settle resumed", || {
            !pool.busy.load(Ordering::SeqCst)
                && lock(&pool.log).last() == Some(&"resume")
                && shared.workers_calls.current().0 == Want::Run
        });
        std::thread::sleep(Duration::from_millis(50));
        let log = lock(&pool.log).clone();
        assert!(
            !pool.overlapped.load(Ordering::SeqCst),
            "overlapping calls: {log:?}"
        );
        assert!(log.len() >= 2, "{log:?}");
        for (i, call) in log.iter().enumerate() {
            let expected = if i % 2 == 0 { "pause" } else { "resume" };
            assert_eq!(*call, expected, "call {i} of {log:?}");
        }
        // Every report names a pause that was asked, in increasing order.
        let reported: Vec<u64> = std::iter::from_fn(|| inbox.try_recv().ok())
            .filter_map(|i| match i {
                Input::Core(CoreInput::Paused { op }) => Some(op.0),
                _ => None,
            })
            .collect();
        assert!(!reported.is_empty());
        assert!(reported.windows(2).all(|w| w[0] < w[1]), "{reported:?}");
    }

    /// A pause reports only once the permits in flight are back and the pool paused.
    #[test]
    fn a_pause_waits_for_jobs_in_flight_then_the_pool() {
        let (shared, inbox, pool) = setup(Duration::from_millis(1));
        let permit = block_on(shared.gate.enter()).expect("open gate");
        shared.gate.close();
        shared.workers_calls.want(Want::Pause(OpId(1)));
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            inbox.try_recv().is_err(),
            "no report while a job is in flight"
        );
        assert!(
            lock(&pool.log).is_empty(),
            "the pool is paused after the drain"
        );
        drop(permit);
        let report = block_on(inbox.recv()).expect("a report");
        assert!(matches!(
            report,
            Input::Core(CoreInput::Paused { op: OpId(1) })
        ));
        assert_eq!(*lock(&pool.log), ["pause"]);
    }

    /// A stop cuts a pause that waits for a job that never ends, and completes within grace.
    #[test]
    fn a_stop_cuts_a_pending_pause() {
        let (shared, inbox, pool) = setup(Duration::from_millis(1));
        let _stuck = block_on(shared.gate.enter()).expect("open gate");
        shared.gate.close();
        shared.workers_calls.want(Want::Pause(OpId(1)));
        std::thread::sleep(Duration::from_millis(20));
        let started = Instant::now();
        shared
            .workers_calls
            .want(Want::Stop(Duration::from_millis(200)));
        block_on(shared.workers_calls.wait_stopped());
        assert!(started.elapsed() < Duration::from_secs(20));
        assert!(shared.gate.is_stopped());
        assert_eq!(*lock(&pool.log), ["stop"]);
        assert!(
            !std::iter::from_fn(|| inbox.try_recv().ok())
                .any(|i| matches!(i, Input::Core(CoreInput::Paused { .. }))),
            "the cut pause is not reported"
        );
        // A stop stays: a later wish does not undo it.
        shared.workers_calls.want(Want::Run);
        assert!(matches!(shared.workers_calls.current().0, Want::Stop(_)));
    }
}
