//! One opening in flight per address: the connections kept per address (probe and sentinel
//! query caches, watch connections) are opened by the first caller that finds none, and every
//! caller that comes while it opens waits for that opening's outcome instead of opening one of
//! its own. What matters when many supervisors of one process share them
//! ([`crate::SharedConnections`]): at a switch they all reach the same node at once.

use crate::sync::lock;
use dramatiq_sentinel_core::{Addr, IoError};
use event_listener::Event;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tracing::debug;

/// What is kept for one address.
pub(crate) enum Slot<T> {
    /// Open (usable or not: the caller's `usable` decides).
    Ready(T),
    /// Being opened by a caller.
    Opening(Arc<Flight>),
}

/// An opening in flight: its outcome, once known, and the waiters. A success leaves the
/// connection in the slot, where the waiters take it.
pub(crate) struct Flight {
    outcome: Mutex<Option<Result<(), IoError>>>,
    done: Event,
}

/// The slots of one kind of connection, by address.
pub(crate) type Slots<T> = Mutex<HashMap<Addr, Slot<T>>>;

/// The connection kept for `addr` if there is one and it is `usable` (and `true`: it was
/// kept before this call), else the outcome of the opening in flight, else the outcome of
/// `open`, run by this caller and kept on success. A caller that gives up while it opens (its
/// future dropped) leaves the slot empty, and its waiters try again.
pub(crate) async fn get_or_open<T, F, Fut>(
    slots: &Slots<T>,
    addr: &Addr,
    usable: impl Fn(&T) -> bool,
    open: F,
) -> Result<(T, bool), IoError>
where
    T: Clone,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, IoError>>,
{
    // Whether this caller waited for an opening that succeeded: what it finds next is new.
    let mut waited = false;
    let flight = loop {
        let (flight, listener) = {
            let mut slots = lock(slots);
            match slots.get(addr) {
                Some(Slot::Ready(t)) if usable(t) => return Ok((t.clone(), !waited)),
                Some(Slot::Opening(flight)) => (Arc::clone(flight), flight.done.listen()),
                _ => {
                    let flight = Arc::new(Flight {
                        outcome: Mutex::new(None),
                        done: Event::new(),
                    });
                    slots.insert(addr.clone(), Slot::Opening(Arc::clone(&flight)));
                    break flight;
                }
            }
        };
        // The listener is registered before the outcome is read: no notification is missed.
        if lock(&flight.outcome).is_none() {
            listener.await;
        }
        match lock(&flight.outcome).clone() {
            Some(Err(e)) => return Err(e),
            Some(Ok(())) => waited = true,
            // The opener gave up and emptied the slot: open (or wait for whoever does).
            None => {}
        }
    };
    let mut landing = Landing {
        slots,
        addr,
        flight: &flight,
        landed: false,
    };
    let outcome = open().await;
    landing.land(&outcome);
    outcome.map(|t| (t, false))
}

/// Ends a flight, also when its opener gives up: keeps a success, empties the slot otherwise,
/// and wakes the waiters.
struct Landing<'a, T> {
    slots: &'a Slots<T>,
    addr: &'a Addr,
    flight: &'a Arc<Flight>,
    landed: bool,
}

impl<T: Clone> Landing<'_, T> {
    fn land(&mut self, outcome: &Result<T, IoError>) {
        let mut slots = lock(self.slots);
        // Only this flight's slot: the last user's `leave` may have emptied it meanwhile.
        if matches!(slots.get(self.addr), Some(Slot::Opening(f)) if Arc::ptr_eq(f, self.flight)) {
            match outcome {
                Ok(t) => {
                    slots.insert(self.addr.clone(), Slot::Ready(t.clone()));
                }
                Err(_) => {
                    slots.remove(self.addr);
                }
            }
        }
        *lock(&self.flight.outcome) = Some(outcome.as_ref().map(|_| ()).map_err(Clone::clone));
        drop(slots);
        self.landed = true;
        debug!(addr = %self.addr, opened = outcome.is_ok(), "connection opening ended");
        self.flight.done.notify(usize::MAX);
    }
}

impl<T> Drop for Landing<'_, T> {
    fn drop(&mut self) {
        if self.landed {
            return;
        }
        let mut slots = lock(self.slots);
        if matches!(slots.get(self.addr), Some(Slot::Opening(f)) if Arc::ptr_eq(f, self.flight)) {
            slots.remove(self.addr);
        }
        drop(slots);
        debug!(addr = %self.addr, "connection opening given up: a waiter opens instead");
        self.flight.done.notify(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::{Slots, get_or_open};
    use dramatiq_sentinel_core::{Addr, IoError};
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Poll;

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    /// Polls every future until all are done, on one task.
    async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
        let mut futures: Vec<_> = futures.into_iter().map(|f| Some(Box::pin(f))).collect();
        let mut out: Vec<_> = futures.iter().map(|_| None).collect();
        std::future::poll_fn(|cx| {
            for (f, o) in futures.iter_mut().zip(out.iter_mut()) {
                if let Some(fut) = f
                    && let Poll::Ready(v) = fut.as_mut().poll(cx)
                {
                    *o = Some(v);
                    *f = None;
                }
            }
            if futures.iter().all(Option::is_none) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        out.into_iter().flatten().collect()
    }

    /// Yields until `n` callers asked.
    async fn until(asked: &AtomicUsize, n: usize) {
        while asked.load(Ordering::SeqCst) < n {
            tokio::task::yield_now().await;
        }
    }

    /// Ten callers at once: one opens (it waits until all ten asked), the nine others get
    /// its connection; the next caller finds it kept.
    #[test]
    fn callers_at_the_same_time_share_one_opening() {
        let slots: Slots<u32> = Slots::default();
        let (opened, asked) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let addr = Addr::new("127.0.0.1", 1);
        let open = || async {
            opened.fetch_add(1, Ordering::SeqCst);
            until(&asked, 10).await;
            Ok(7)
        };
        let call = || async {
            asked.fetch_add(1, Ordering::SeqCst);
            get_or_open(&slots, &addr, |_| true, open).await
        };
        let results = block_on(join_all((0..10).map(|_| call()).collect()));
        assert_eq!(opened.load(Ordering::SeqCst), 1, "one opening");
        assert_eq!(results.len(), 10);
        assert!(results.iter().all(|r| *r == Ok((7, false))), "{results:?}");
        let again = block_on(get_or_open(&slots, &addr, |_| true, open));
        assert_eq!(again, Ok((7, true)), "kept");
        assert_eq!(opened.load(Ordering::SeqCst), 1);
        // Not usable any more: opened again.
        let renewed = block_on(get_or_open(&slots, &addr, |_| false, open));
        assert_eq!(renewed, Ok((7, false)));
        assert_eq!(opened.load(Ordering::SeqCst), 2);
    }

    /// A failed opening fails every caller that waited for it, and is not kept: the next
    /// caller opens again.
    #[test]
    fn a_failed_opening_fails_its_waiters_and_is_not_kept() {
        let slots: Slots<u32> = Slots::default();
        let (opened, asked) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let addr = Addr::new("127.0.0.1", 1);
        let open = || async {
            opened.fetch_add(1, Ordering::SeqCst);
            until(&asked, 5).await;
            Err::<u32, _>(IoError::unreachable("refused"))
        };
        let call = || async {
            asked.fetch_add(1, Ordering::SeqCst);
            get_or_open(&slots, &addr, |_| true, open).await
        };
        let results = block_on(join_all((0..5).map(|_| call()).collect()));
        assert_eq!(opened.load(Ordering::SeqCst), 1, "one opening");
        assert!(
            results
                .iter()
                .all(|r| *r == Err(IoError::unreachable("refused"))),
            "{results:?}"
        );
        let _ = block_on(get_or_open(&slots, &addr, |_| true, open));
        assert_eq!(opened.load(Ordering::SeqCst), 2, "opened again");
    }

    /// The opener gives up (its future is dropped, as a timeout does): a caller that waited
    /// opens in its place, and succeeds.
    #[test]
    fn a_caller_that_gives_up_hands_the_opening_on() {
        let slots: Slots<u32> = Slots::default();
        let (opened, asked) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let addr = Addr::new("127.0.0.1", 1);
        let open = || async {
            // The first opening never ends; the second does.
            if opened.fetch_add(1, Ordering::SeqCst) == 0 {
                std::future::pending::<()>().await;
            }
            Ok(9)
        };
        let quitter = async {
            asked.fetch_add(1, Ordering::SeqCst);
            let gave_up = async {
                until(&asked, 2).await;
                Err(IoError::unreachable("gave up"))
            };
            futures_lite::future::or(get_or_open(&slots, &addr, |_| true, open), gave_up).await
        };
        let waiter = async {
            until(&asked, 1).await;
            asked.fetch_add(1, Ordering::SeqCst);
            get_or_open(&slots, &addr, |_| true, open).await
        };
        let (quit, waited) = block_on(futures_lite::future::zip(quitter, waiter));
        assert!(quit.is_err(), "{quit:?}");
        assert_eq!(waited, Ok((9, false)));
        assert_eq!(opened.load(Ordering::SeqCst), 2);
    }
}
