//! The hold logic of the master handle, independent of Redis: a slot holding the current
//! connection, closed while fenced; commands wait for it, bounded by the hold timeout. The
//! slot's version lets a handle keep what it acquired and check it with one atomic load.

use crate::runtime::{Runtime, until};
use crate::sync::lock;
use event_listener::{Event, EventListener};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Why no connection could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HoldError {
    /// Fenced (or no master yet) until the deadline.
    TimedOut,
    /// The supervisor stopped.
    Stopped,
}

/// The current value (a connection to the verified master), and whether it may be used.
///
/// Its version counts every change (fence, install, release, stop, and each
/// [`Slot::touch`]): a handle that acquired the value at version `v` may use what it acquired
/// without asking again for as long as the version is still `v`.
#[derive(Debug)]
pub(crate) struct Slot<T> {
    state: Mutex<State<T>>,
    changed: Event,
    /// On a cache line of its own: every command reads it, and nothing else that changes
    /// often may share its line.
    version: Padded<AtomicU64>,
}

/// A value alone on its cache line (128 bytes: two lines, for CPUs that fetch pairs).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

/// What [`Slot::acquire`] got.
pub(crate) struct Acquired<T> {
    pub(crate) value: T,
    /// The slot's version when the value was read.
    pub(crate) version: u64,
    /// Fires at the next change (fence, install, release, stop).
    pub(crate) changed: EventListener,
}

#[derive(Debug)]
struct State<T> {
    fenced: bool,
    stopped: bool,
    current: Option<T>,
}

impl<T: Clone> Slot<T> {
    /// An empty slot: commands wait until a value is installed.
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                fenced: false,
                stopped: false,
                current: None,
            }),
            changed: Event::new(),
            version: Padded::default(),
        }
    }

    fn update<R>(&self, f: impl FnOnce(&mut State<T>) -> R) -> R {
        let r = {
            let mut state = lock(&self.state);
            let r = f(&mut state);
            self.version.0.fetch_add(1, Ordering::AcqRel);
            r
        };
        self.changed.notify(usize::MAX);
        r
    }

    /// The version now: one atomic load, the steady-state check of a handle.
    pub(crate) fn version(&self) -> u64 {
        self.version.0.load(Ordering::Acquire)
    }

    /// Counts a change that handles must see although the slot's state did not change (a
    /// connection they may hold broke or was replaced). Call it after making the change.
    pub(crate) fn touch(&self) {
        self.version.0.fetch_add(1, Ordering::AcqRel);
    }

    /// Holds new commands (they wait) until [`Slot::install`] or [`Slot::release`].
    pub(crate) fn fence(&self) {
        self.set_fenced(true);
    }

    /// Fences or releases; a call that changes nothing (a release when not fenced, as after an
    /// install) does not move the version, so handles keep what they acquired.
    fn set_fenced(&self, fenced: bool) {
        {
            let mut state = lock(&self.state);
            if state.fenced == fenced {
                return;
            }
            state.fenced = fenced;
            self.version.0.fetch_add(1, Ordering::AcqRel);
        }
        self.changed.notify(usize::MAX);
    }

    /// Installs a new value and, with `release`, lets commands through (else they wait for
    /// [`Slot::release`]); returns the previous value.
    pub(crate) fn install(&self, value: T, release: bool) -> Option<T> {
        self.update(|s| {
            s.fenced = !release;
            s.current.replace(value)
        })
    }

    /// Lets commands through to the current value again.
    pub(crate) fn release(&self) {
        self.set_fenced(false);
    }

    /// Fails every waiting and later command; returns the value.
    pub(crate) fn stop(&self) -> Option<T> {
        self.update(|s| {
            s.stopped = true;
            s.current.take()
        })
    }

    /// The current value, even while fenced.
    pub(crate) fn current(&self) -> Option<T> {
        lock(&self.state).current.clone()
    }

    /// The value and the version it was read at, if commands may use it now (not fenced, not
    /// stopped), without waiting or registering a listener.
    pub(crate) fn try_get(&self) -> Option<(T, u64)> {
        let s = lock(&self.state);
        if s.fenced || s.stopped {
            return None;
        }
        Some((s.current.clone()?, self.version()))
    }

    /// Whether the slot was stopped.
    pub(crate) fn is_stopped(&self) -> bool {
        lock(&self.state).stopped
    }

    /// Whether commands are held now.
    pub(crate) fn is_fenced(&self) -> bool {
        let s = lock(&self.state);
        s.fenced || s.current.is_none()
    }

    /// Waits, until `deadline` at most, until the slot holds a value and is not fenced. Returns
    /// it with the version it was read at and a listener, registered while it was read, that
    /// fires at the next change (fence, install, release, stop).
    pub(crate) async fn acquire(
        &self,
        rt: &dyn Runtime,
        deadline: Instant,
    ) -> Result<Acquired<T>, HoldError> {
        loop {
            let listener = {
                let s = lock(&self.state);
                if s.stopped {
                    return Err(HoldError::Stopped);
                }
                if let (false, Some(v)) = (s.fenced, &s.current) {
                    return Ok(Acquired {
                        value: v.clone(),
                        version: self.version(),
                        changed: self.changed.listen(),
                    });
                }
                self.changed.listen()
            };
            if until(rt, deadline, listener).await.is_none() {
                return Err(HoldError::TimedOut);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::deadline_after;
    use crate::testing::ThreadRuntime;
    use std::time::Duration;

    /// The slot's value, waiting at most `hold`.
    fn get<T: Clone>(slot: &Slot<T>, hold: Duration) -> Result<T, HoldError> {
        futures_lite::future::block_on(slot.acquire(&ThreadRuntime, deadline_after(hold)))
            .map(|a| a.value)
    }

    #[test]
    fn holds_until_installed() {
        let slot = std::sync::Arc::new(Slot::new());
        let s2 = slot.clone();
        let waiter = std::thread::spawn(move || get(&s2, Duration::from_secs(60)));
        // No fixed sleep: install once the waiter is registered or not, the outcome is the same.
        slot.install(7, true);
        assert_eq!(waiter.join().expect("no panic"), Ok(7));
    }

    #[test]
    fn fenced_commands_time_out_with_the_hold_timeout() {
        let slot = Slot::new();
        slot.install(1, true);
        slot.fence();
        assert!(slot.is_fenced());
        let started = Instant::now();
        let hold = Duration::from_millis(50);
        assert_eq!(get(&slot, hold), Err(HoldError::TimedOut));
        assert!(started.elapsed() >= hold);
        assert_eq!(slot.current(), Some(1), "the value stays while fenced");
    }

    #[test]
    fn fence_then_install_releases_with_the_new_value() {
        let slot = std::sync::Arc::new(Slot::new());
        slot.install(1, true);
        slot.fence();
        let s2 = slot.clone();
        let waiter = std::thread::spawn(move || get(&s2, Duration::from_secs(60)));
        assert_eq!(slot.install(2, true), Some(1));
        assert_eq!(waiter.join().expect("no panic"), Ok(2));
    }

    #[test]
    fn release_lifts_the_fence_on_the_same_value() {
        let slot = Slot::new();
        slot.install(1, true);
        slot.fence();
        slot.release();
        assert_eq!(get(&slot, Duration::from_secs(60)), Ok(1));
    }

    #[test]
    fn the_listener_fires_at_the_next_change() {
        let slot = Slot::new();
        slot.install(1, true);
        let acquired = slot.acquire(&ThreadRuntime, deadline_after(Duration::from_secs(60)));
        let changed = futures_lite::future::block_on(acquired)
            .expect("a value")
            .changed;
        slot.fence();
        let woke = until(
            &ThreadRuntime,
            deadline_after(Duration::from_secs(60)),
            changed,
        );
        assert!(futures_lite::future::block_on(woke).is_some());
    }

    /// Every change a kept value depends on moves the version, and reading does not.
    #[test]
    fn every_change_moves_the_version() {
        let slot = Slot::new();
        let mut seen = vec![slot.version()];
        let mut changed = |slot: &Slot<u8>| {
            let v = slot.version();
            assert!(!seen.contains(&v), "{v} after {seen:?}");
            seen.push(v);
        };
        slot.install(1, true);
        changed(&slot);
        let acquired = futures_lite::future::block_on(
            slot.acquire(&ThreadRuntime, deadline_after(Duration::from_secs(60))),
        )
        .expect("a value");
        assert_eq!(
            acquired.version,
            slot.version(),
            "read at the current version"
        );
        let _ = slot.current();
        assert_eq!(acquired.version, slot.version(), "reading changes nothing");
        assert_eq!(slot.try_get(), Some((1, slot.version())));
        slot.release();
        assert_eq!(
            acquired.version,
            slot.version(),
            "a release while not fenced: no change"
        );
        slot.fence();
        changed(&slot);
        assert_eq!(slot.try_get(), None, "fenced");
        let fenced = slot.version();
        slot.fence();
        assert_eq!(fenced, slot.version(), "fenced twice: no change");
        slot.release();
        changed(&slot);
        slot.touch();
        changed(&slot);
        slot.install(2, true);
        changed(&slot);
        slot.stop();
        changed(&slot);
    }

    #[test]
    fn stop_fails_waiters() {
        let slot = std::sync::Arc::new(Slot::<u8>::new());
        let s2 = slot.clone();
        let waiter = std::thread::spawn(move || get(&s2, Duration::from_secs(60)));
        slot.stop();
        assert_eq!(waiter.join().expect("no panic"), Err(HoldError::Stopped));
    }
}
