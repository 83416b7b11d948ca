//! Events: structured `tracing` logs, subscriber streams and the user's hooks.

use crate::sync::lock;
use async_channel::{Receiver, Sender, TrySendError};
use dramatiq_sentinel_core::{Addr, Event, IgnoreReason};
use futures_lite::Stream;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use tracing::{debug, error, info, warn};

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

fn opt(a: &Option<Addr>) -> String {
    a.as_ref()
        .map_or_else(|| "none".to_owned(), Addr::to_string)
}

fn ms(d: &std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Logs one event with `tracing`, at a level that fits, with structured fields.
pub(crate) fn log_event(event: &Event) {
    match event {
        Event::Ready { master, elapsed } => {
            info!(master = %master, elapsed_ms = ms(elapsed), "master verified; ready")
        }
        Event::Fenced {
            master,
            path,
            sentinel,
            signal,
        } => warn!(master = %master, path = %path, sentinel = %opt(sentinel), signal = %signal,
            "failover announced: work fenced"),
        Event::CandidateNamed {
            candidate,
            sentinel,
        } => info!(candidate = %candidate, sentinel = %opt(sentinel), "failover candidate named"),
        Event::SwitchDetected {
            old,
            new,
            sentinel,
            path,
        } => warn!(old = %opt(old), new = %new, sentinel = %opt(sentinel), path = %path,
            "master switch detected"),
        Event::BeforeReset { old, new } => {
            info!(old = %opt(old), new = %new, "moving the master connection")
        }
        Event::AfterReset { old, new } => {
            info!(old = %opt(old), new = %new, "master connection moved; old connections closed")
        }
        Event::SwitchCompleted {
            old,
            new,
            path,
            to_paused,
            to_connected,
            total,
        } => info!(old = %opt(old), new = %new, path = %path,
            to_paused_ms = to_paused.as_ref().map(ms), to_connected_ms = ms(to_connected),
            total_ms = ms(total), "switch completed; workers resumed"),
        Event::FenceLifted {
            master,
            reason,
            held,
        } => info!(master = %master, reason = %reason, held_ms = ms(held), "fence lifted"),
        Event::FenceExpired { master, waited } => warn!(master = %master,
            waited_ms = ms(waited), "no promotion within fence_timeout; re-verifying the master"),
        Event::MasterConfirmed { master, path } => {
            debug!(master = %master, path = %path, "master confirmed")
        }
        Event::ListenerUp { sentinel } => info!(sentinel = %sentinel, "listener subscribed"),
        Event::ListenerDown {
            sentinel,
            reason,
            retry_in,
        } => warn!(sentinel = %sentinel, reason = %reason, retry_in_ms = ms(retry_in),
            "listener down"),
        Event::MessageIgnored {
            sentinel,
            channel,
            reason,
        } => match reason {
            IgnoreReason::Malformed(_) => warn!(sentinel = %sentinel, channel = %channel,
                reason = %reason, "sentinel message ignored"),
            _ => debug!(sentinel = %sentinel, channel = %channel, reason = %reason,
                "sentinel message ignored"),
        },
        Event::DiscoveryFailed { error, retry_in } => {
            warn!(error = %error, retry_in_ms = ms(retry_in), "discovery failed")
        }
        Event::VerificationFailed { node, reason } => {
            warn!(node = %node, reason = %reason, "node failed verification")
        }
        Event::SentinelAdded { sentinel } => info!(sentinel = %sentinel, "sentinel learned"),
        Event::PauseTimedOut { waited } => {
            error!(
                waited_ms = ms(waited),
                "workers did not pause in time; stopping them"
            )
        }
        Event::Stopped { error } => error!(error = %error, "supervisor stopped"),
        Event::PubSubResubscribed {
            old,
            new,
            channels,
            patterns,
            gap,
        } => warn!(old = %opt(old), new = %new, channels, patterns, gap_ms = ms(gap),
            "pub/sub subscriptions active again; messages published in the gap were missed"),
        Event::NothingLost {
            old,
            new,
            old_offset,
            new_offset,
        } => debug!(old = %old, new = %new, old_offset, new_offset, "no write lost in the switch"),
        Event::WritesLost {
            old,
            new,
            old_offset,
            new_offset,
            bytes,
            commands,
            unread,
        } => warn!(old = %old, new = %new, old_offset, new_offset, bytes,
            commands_read_back = commands.as_ref().map(Vec::len), unread = unread.as_deref(),
            "acknowledged writes lost in the switch"),
        other => info!(event = ?other, "event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
