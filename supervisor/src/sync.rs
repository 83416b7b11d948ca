//! Small executor-agnostic synchronisation helpers: poison-tolerant locking, a cancel signal,
//! and a "done" cell that many tasks can await.

use event_listener::Event;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks a mutex, ignoring poisoning (state is kept consistent under every lock).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A one-way signal: once cancelled, every current and future [`Cancel::cancelled`] completes.
#[derive(Debug, Default)]
pub(crate) struct Cancel {
    flag: AtomicBool,
    event: Event,
}

impl Cancel {
    pub(crate) fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.event.notify(usize::MAX);
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Runs `future` until it completes (`Some`) or this is cancelled (`None`). The wake-up
    /// for a cancellation is registered only once the future is pending. A future that was
    /// cancelled before its first poll is never polled (a command is not sent on a connection
    /// of a replaced master); once started, a future that is ready wins over a cancellation:
    /// a command whose reply arrived before the master moved returns that reply, also when its
    /// caller polls it only later.
    pub(crate) async fn run<F: std::future::Future>(&self, future: F) -> Option<F::Output> {
        use std::future::Future as _;
        use std::task::Poll;
        let mut future = std::pin::pin!(future);
        let mut listener: Option<event_listener::EventListener> = None;
        let mut started = false;
        std::future::poll_fn(|cx| {
            if !started && self.is_cancelled() {
                return Poll::Ready(None);
            }
            started = true;
            if let Poll::Ready(v) = future.as_mut().poll(cx) {
                return Poll::Ready(Some(v));
            }
            let listener = listener.get_or_insert_with(|| self.event.listen());
            if self.is_cancelled() {
                return Poll::Ready(None);
            }
            std::pin::Pin::new(listener).poll(cx).map(|()| None)
        })
        .await
    }

    pub(crate) async fn cancelled(&self) {
        loop {
            if self.is_cancelled() {
                return;
            }
            let listener = self.event.listen();
            if self.is_cancelled() {
                return;
            }
            listener.await;
        }
    }
}

/// Runs a future until it completes or a [`Cancel`] fires, for a long-lived future that is
/// polled often (a connection's driver): each poll checks the flag first (once it is set, the
/// future is not polled again), and the wake-up for the cancellation is registered once, again
/// only if the task's waker changes, so a poll costs an atomic load and a waker comparison
/// more than the future's own.
pub(crate) struct Guarded<F> {
    cancel: std::sync::Arc<Cancel>,
    future: std::pin::Pin<Box<F>>,
    listener: Option<event_listener::EventListener>,
    registered: Option<std::task::Waker>,
}

impl<F: std::future::Future<Output = ()>> Guarded<F> {
    pub(crate) fn new(cancel: std::sync::Arc<Cancel>, future: F) -> Self {
        Self {
            cancel,
            future: Box::pin(future),
            listener: None,
            registered: None,
        }
    }
}

impl<F: std::future::Future<Output = ()>> std::future::Future for Guarded<F> {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        use std::task::Poll;
        let this = &mut *self;
        if this.cancel.is_cancelled() {
            return Poll::Ready(());
        }
        if !this
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            let event = &this.cancel.event;
            let listener = this.listener.get_or_insert_with(|| event.listen());
            if this.cancel.is_cancelled() || std::pin::Pin::new(listener).poll(cx).is_ready() {
                return Poll::Ready(());
            }
            this.registered = Some(cx.waker().clone());
        }
        this.future.as_mut().poll(cx)
    }
}

/// A value set once, that tasks wait for.
#[derive(Debug)]
pub(crate) struct Done<T> {
    value: Mutex<Option<T>>,
    event: Event,
}

impl<T: Clone> Done<T> {
    pub(crate) fn new() -> Self {
        Self {
            value: Mutex::new(None),
            event: Event::new(),
        }
    }

    /// Sets the value (the first one wins) and wakes every waiter.
    pub(crate) fn set(&self, value: T) {
        {
            let mut slot = lock(&self.value);
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        self.event.notify(usize::MAX);
    }

    pub(crate) fn get(&self) -> Option<T> {
        lock(&self.value).clone()
    }

    pub(crate) async fn wait(&self) -> T {
        loop {
            let listener = {
                if let Some(v) = lock(&self.value).clone() {
                    return v;
                }
                self.event.listen()
            };
            listener.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::{block_on, poll_once};

    #[test]
    fn cancel_wakes_waiters_and_later_callers() {
        let c = Cancel::default();
        let mut waiting = Box::pin(c.cancelled());
        assert!(block_on(poll_once(&mut waiting)).is_none());
        c.cancel();
        assert!(block_on(poll_once(&mut waiting)).is_some());
        assert!(block_on(poll_once(c.cancelled())).is_some());
    }

    #[test]
    fn guard_stops_the_future_at_the_cancel() {
        let c = std::sync::Arc::new(Cancel::default());
        let polls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = std::sync::Arc::clone(&polls);
        let endless = std::future::poll_fn(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            std::task::Poll::<()>::Pending
        });
        let mut guarded = Guarded::new(std::sync::Arc::clone(&c), endless);
        assert!(block_on(poll_once(&mut guarded)).is_none());
        assert!(block_on(poll_once(&mut guarded)).is_none());
        assert_eq!(polls.load(Ordering::SeqCst), 2);
        c.cancel();
        assert!(block_on(poll_once(&mut guarded)).is_some());
        assert_eq!(polls.load(Ordering::SeqCst), 2, "not polled once cancelled");
        drop(guarded);
        let ready = Guarded::new(c, std::future::pending());
        assert!(
            block_on(poll_once(ready)).is_some(),
            "cancelled before: done at once"
        );
    }

    #[test]
    fn guard_wakes_its_task_at_the_cancel() {
        let c = std::sync::Arc::new(Cancel::default());
        let c2 = std::sync::Arc::clone(&c);
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            c2.cancel();
        });
        // Completes only if the cancel wakes the blocked task.
        block_on(Guarded::new(c, std::future::pending::<()>()));
        canceller.join().expect("no panic");
    }

    #[test]
    fn done_keeps_the_first_value() {
        let d = Done::new();
        let mut waiting = Box::pin(d.wait());
        assert!(block_on(poll_once(&mut waiting)).is_none());
        d.set(1);
        d.set(2);
        assert_eq!(block_on(poll_once(&mut waiting)), Some(1));
        assert_eq!(d.get(), Some(1));
    }
}
