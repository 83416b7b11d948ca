//! Events: the one way out of every producer of events ([`Fanout`]: the `tracing` line, the
//! metrics, the user's hooks, the subscriber streams).

use crate::observe::event_log::log_event;
use crate::observe::metrics::EventMetrics;
use crate::sync::lock;
use async_channel::{Receiver, Sender, TrySendError};
use dramatiq_sentinel_core::Event;
use futures_lite::Stream;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use tracing::{error, warn};

/// How many events a subscriber may fall behind before it misses some.
const SUBSCRIBER_CAPACITY: usize = 4096;

/// A stream of the supervisor's [`Event`]s, from the moment it was created. Ends when the
/// supervisor has stopped. A subscriber that falls more than 4096 events behind misses the
/// newest ones (a warning is logged).
#[derive(Debug)]
pub struct EventStream {
    rx: Pin<Box<Receiver<Event>>>,
}

impl EventStream {
    /// The next event; `None` once the supervisor has stopped and every event was received.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await.ok()
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }
}

impl Stream for EventStream {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.as_mut().poll_next(cx)
    }
}

/// The subscribers.
#[derive(Debug, Default)]
pub(crate) struct Broadcast {
    state: Mutex<Subscribers>,
}

#[derive(Debug, Default)]
struct Subscribers {
    list: Vec<Sender<Event>>,
    closed: bool,
}

impl Broadcast {
    pub(crate) fn subscribe(&self) -> EventStream {
        let (tx, rx) = async_channel::bounded(SUBSCRIBER_CAPACITY);
        let mut s = lock(&self.state);
        if !s.closed {
            s.list.push(tx); // once closed, `tx` is dropped here and the stream ends at once
        }
        EventStream { rx: Box::pin(rx) }
    }

    pub(crate) fn send(&self, event: &Event) {
        lock(&self.state)
            .list
            .retain(|tx| match tx.try_send(event.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    warn!(
                        "an event subscriber is {SUBSCRIBER_CAPACITY} events behind; it misses events"
                    );
                    true
                }
                Err(TrySendError::Closed(_)) => false,
            });
    }

    /// Ends every stream (after the last event), and every later one at once.
    pub(crate) fn close(&self) {
        let mut s = lock(&self.state);
        s.closed = true;
        s.list.clear();
    }
}

type Hook = Box<dyn Fn(&Event) + Send + Sync>;
type ExitHook = Box<dyn Fn(u8) + Send + Sync>;

/// The user's callbacks. They run on the supervisor's task, in event order, before the actions
/// that follow the event (a before-reset hook runs before the connection moves); keep them short.
#[derive(Default)]
pub(crate) struct Hooks {
    pub(crate) on_event: Vec<Hook>,
    pub(crate) before_exit: Vec<ExitHook>,
}

impl Hooks {
    pub(crate) fn run(&self, event: &Event) {
        for hook in &self.on_event {
            if catch_unwind(AssertUnwindSafe(|| hook(event))).is_err() {
                error!(?event, "an event hook panicked");
            }
        }
    }

    pub(crate) fn run_before_exit(&self, code: u8) {
        for hook in &self.before_exit {
            if catch_unwind(AssertUnwindSafe(|| hook(code))).is_err() {
                error!(code, "a before-exit hook panicked");
            }
        }
    }
}

/// Where every event goes, in this order: its `tracing` line, the metrics derived from it,
/// the user's hooks, the subscriber streams. Every producer of events (the supervisor's task
/// for the core's events, a pub/sub task for its own) emits through it, so none misses one.
pub(crate) struct Fanout {
    subscribers: Broadcast,
    hooks: Hooks,
    /// Shared by the producers (each event is recorded by the task that emits it).
    metrics: Mutex<EventMetrics>,
}

impl Fanout {
    /// The fan-out of the supervisor of `service` to `subscribers` (the ones subscribed
    /// before the start) and `hooks`.
    pub(crate) fn new(subscribers: Broadcast, hooks: Hooks, service: &str) -> Self {
        Self {
            subscribers,
            hooks,
            metrics: Mutex::new(EventMetrics::new(service)),
        }
    }

    /// Sends `event` everywhere (see the type's docs).
    pub(crate) fn emit(&self, event: &Event) {
        log_event(event);
        lock(&self.metrics).record(event);
        self.hooks.run(event);
        self.subscribers.send(event);
    }

    /// A stream of the events from now on.
    pub(crate) fn subscribe(&self) -> EventStream {
        self.subscribers.subscribe()
    }

    /// Runs the before-exit hooks.
    pub(crate) fn run_before_exit(&self, code: u8) {
        self.hooks.run_before_exit(code);
    }

    /// The supervisor's task ended: every stream ends (after its last event), and the
    /// metrics say no sentinel is up.
    pub(crate) fn close(&self) {
        self.subscribers.close();
        lock(&self.metrics).close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dramatiq_sentinel_core::Addr;
    use futures_lite::future::block_on;

    #[test]
    fn subscribers_get_every_event_and_end_on_close() {
        let b = Broadcast::default();
        let mut s = b.subscribe();
        let e = Event::ListenerUp {
            sentinel: Addr::new("127.0.0.1", 1),
        };
        b.send(&e);
        b.close();
        assert_eq!(block_on(s.recv()), Some(e));
        assert_eq!(block_on(s.recv()), None);
        assert_eq!(
            block_on(b.subscribe().recv()),
            None,
            "a late subscriber ends at once"
        );
    }

    #[test]
    fn a_panicking_hook_is_contained() {
        let hooks = Hooks {
            on_event: vec![Box::new(|_| panic!("boom"))],
            before_exit: vec![],
        };
        hooks.run(&Event::ListenerUp {
            sentinel: Addr::new("127.0.0.1", 1),
        });
    }
}
