//! The hold logic of the master handle, independent of Redis: a slot holding the current
//! connection, closed while fenced; commands wait for it, bounded by the hold timeout.

use crate::runtime::{Runtime, until};
use crate::sync::lock;
use event_listener::{Event, EventListener};
use std::sync::Mutex;
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
#[derive(Debug)]
pub(crate) struct Slot<T> {
    state: Mutex<State<T>>,
    changed: Event,
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
        }
    }

    fn update<R>(&self, f: impl FnOnce(&mut State<T>) -> R) -> R {
        let r = f(&mut lock(&self.state));
        self.changed.notify(usize::MAX);
        r
    }

    /// Holds new commands (they wait) until [`Slot::install`] or [`Slot::release`].
    pub(crate) fn fence(&self) {
        self.update(|s| s.fenced = true);
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
        self.update(|s| s.fenced = false);
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

    /// The current value if commands may use it now (not fenced, not stopped): the
    /// steady-state path, one lock and no waiting.
    pub(crate) fn get(&self) -> Option<T> {
        let s = lock(&self.state);
        if s.fenced || s.stopped {
            return None;
        }
        s.current.clone()
    }

    /// Whether commands are held now.
    pub(crate) fn is_fenced(&self) -> bool {
        let s = lock(&self.state);
        s.fenced || s.current.is_none()
    }

    /// Waits, until `deadline` at most, until the slot holds a value and is not fenced. Returns
    /// it with a listener, registered while the value was read, that fires at the next change
    /// (fence, install, release, stop).
    pub(crate) async fn acquire(
        &self,
        rt: &dyn Runtime,
        deadline: Instant,
    ) -> Result<(T, EventListener), HoldError> {
        loop {
            let listener = {
                let s = lock(&self.state);
                if s.stopped {
                    return Err(HoldError::Stopped);
                }
                if let (false, Some(v)) = (s.fenced, &s.current) {
                    return Ok((v.clone(), self.changed.listen()));
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
            .map(|(v, _)| v)
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
        let (_, changed) = futures_lite::future::block_on(acquired).expect("a value");
        slot.fence();
        let woke = until(
            &ThreadRuntime,
            deadline_after(Duration::from_secs(60)),
            changed,
        );
        assert!(futures_lite::future::block_on(woke).is_some());
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
