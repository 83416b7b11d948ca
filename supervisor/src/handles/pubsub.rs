//! Pub/sub for the application: a handle whose subscriptions follow the master.
//!
//! One task per handle owns a RESP2 pub/sub connection to the master in use and the set of
//! channels and patterns. It watches the generation it subscribed on: when the supervisor
//! switches (the generation is cancelled), the connection to the old master is dropped at
//! once, a new one is opened to the verified new master (waiting while fenced), everything
//! is subscribed again, and [`Event::PubSubResubscribed`] reports the gap. A connection that
//! breaks on its own is reopened the same way, after a short growing delay.

use crate::drive::shared::Shared;
use crate::handles::hold::HoldError;
use crate::handles::master::MasterConnection;
use crate::handles::master::line::Active;
use crate::runtime::{deadline_after, timeout};
use async_channel::{Receiver, Sender};
use dramatiq_sentinel_core::{Addr, AppErrorKind, Event};
use futures_lite::future::or;
use futures_lite::{Stream, StreamExt};
use redis::aio::{PubSubSink, PubSubStream};
use redis::{Msg, RedisError, RedisResult, ToRedisArgs};
use std::collections::BTreeSet;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tracing::debug;

/// Messages a handle may hold before its task stops reading (the application is slow).
const MESSAGE_CAPACITY: usize = 4096;
/// First delay before reopening a connection that broke or could not be opened; it doubles
/// up to [`MAX_RETRY`]. A switch reopens at once.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(1);

/// Channels or patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Channel,
    Pattern,
}

enum Request {
    Subscribe(Kind, Vec<Vec<u8>>, Sender<RedisResult<()>>),
    Unsubscribe(Kind, Vec<Vec<u8>>, Sender<RedisResult<()>>),
}

/// A pub/sub subscription of the application that follows the master: see
/// [`MasterConnection::pubsub`].
///
/// Messages arrive with [`PubSub::recv`] (or as a [`Stream`]). Redis pub/sub delivers at most
/// once: messages published while no subscription is active (from the loss of the old
/// master's to the new master's, reported as [`Event::PubSubResubscribed`] with its `gap`)
/// are not received. Use a list or a stream for messages that must not be missed.
///
/// Dropping the handle closes its connection.
pub struct PubSub {
    shared: Arc<Shared>,
    requests: Sender<Request>,
    messages: Pin<Box<Receiver<Msg>>>,
}

impl std::fmt::Debug for PubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSub")
            .field("waiting_messages", &self.messages.len())
            .finish_non_exhaustive()
    }
}

impl MasterConnection {
    /// A pub/sub handle on the master, with no subscription yet. Its subscriptions are
    /// re-established on the new master after each switch (the connection to the old one is
    /// closed), and after its connection breaks; each gap is reported as
    /// [`Event::PubSubResubscribed`]. Each handle has a connection of its own, opened at its
    /// first subscription.
    pub fn pubsub(&self) -> PubSub {
        let shared = Arc::clone(self.shared());
        let (requests, requests_rx) = async_channel::bounded(64);
        let (messages_tx, messages) = async_channel::bounded(MESSAGE_CAPACITY);
        let task = Task {
            shared: Arc::clone(&shared),
            requests: requests_rx,
            messages: messages_tx,
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            conn: None,
            waiting: Vec::new(),
            lost: None,
            retry_at: None,
            failures: 0,
        };
        shared.rt.spawn(Box::pin(task.run()));
        PubSub {
            shared,
            requests,
            messages: Box::pin(messages),
        }
    }
}

fn names(args: impl ToRedisArgs) -> Vec<Vec<u8>> {
    args.to_redis_args()
}

fn ended() -> RedisError {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "dramatiq-sentinel: the supervisor stopped; no pub/sub",
    )
    .into()
}

impl PubSub {
    async fn ask(&self, make: impl FnOnce(Sender<RedisResult<()>>) -> Request) -> RedisResult<()> {
        let (tx, rx) = async_channel::bounded(1);
        self.requests.send(make(tx)).await.map_err(|_| ended())?;
        let hold = self.shared.cfg.hold_timeout();
        match timeout(&*self.shared.rt, hold, rx.recv()).await {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(ended()),
            None => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "dramatiq-sentinel: no pub/sub connection to a verified master within \
                     {hold:?} (hold_timeout); the subscription stays and is made when one is"
                ),
            )
            .into()),
        }
    }

    /// Subscribes to `channels` (one name or several). Returns once the subscription is
    /// active on the master in use (while a failover is in progress, once it is active on the
    /// new master), or with an error after `hold_timeout` (the subscription is kept and made
    /// as soon as a master can be reached).
    pub async fn subscribe(&mut self, channels: impl ToRedisArgs) -> RedisResult<()> {
        let n = names(channels);
        self.ask(|tx| Request::Subscribe(Kind::Channel, n, tx))
            .await
    }

    /// Subscribes to the glob-style `patterns` (`PSUBSCRIBE`); see [`PubSub::subscribe`].
    pub async fn psubscribe(&mut self, patterns: impl ToRedisArgs) -> RedisResult<()> {
        let n = names(patterns);
        self.ask(|tx| Request::Subscribe(Kind::Pattern, n, tx))
            .await
    }

    /// Unsubscribes from `channels`; they are not subscribed again after a switch.
    pub async fn unsubscribe(&mut self, channels: impl ToRedisArgs) -> RedisResult<()> {
        let n = names(channels);
        self.ask(|tx| Request::Unsubscribe(Kind::Channel, n, tx))
            .await
    }

    /// Unsubscribes from `patterns`.
    pub async fn punsubscribe(&mut self, patterns: impl ToRedisArgs) -> RedisResult<()> {
        let n = names(patterns);
        self.ask(|tx| Request::Unsubscribe(Kind::Pattern, n, tx))
            .await
    }

    /// The next message; `None` once the supervisor has stopped.
    pub async fn recv(&mut self) -> Option<Msg> {
        self.messages.recv().await.ok()
    }

    /// The next message if one is waiting.
    pub fn try_recv(&mut self) -> Option<Msg> {
        self.messages.try_recv().ok()
    }
}

impl Stream for PubSub {
    type Item = Msg;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Msg>> {
        self.messages.as_mut().poll_next(cx)
    }
}

/// The subscription connection of one generation.
struct Conn {
    active: Arc<Active>,
    sink: PubSubSink,
    stream: PubSubStream,
}

/// The handle's task.
struct Task {
    shared: Arc<Shared>,
    requests: Receiver<Request>,
    messages: Sender<Msg>,
    channels: BTreeSet<Vec<u8>>,
    patterns: BTreeSet<Vec<u8>>,
    conn: Option<Conn>,
    /// Subscribers waiting for the next connection.
    waiting: Vec<Sender<RedisResult<()>>>,
    /// The master whose subscriptions were lost, and when.
    lost: Option<(Option<Addr>, Instant)>,
    /// When to try opening again after a failure.
    retry_at: Option<Instant>,
    failures: u32,
}

enum Step {
    Request(Option<Request>),
    Message(Option<Msg>),
    Moved,
    Opened(Result<Conn, Failure>),
    Retry,
    Stopped,
}

/// Why a connection could not be opened.
enum Failure {
    Stopped,
    Failed(String),
}

impl Task {
    fn set(&mut self, kind: Kind) -> &mut BTreeSet<Vec<u8>> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
        }
    }

    fn wanted(&self) -> bool {
        !self.channels.is_empty() || !self.patterns.is_empty()
    }

    /// Opens a pub/sub connection to the master in use (waiting while fenced, up to
    /// `hold_timeout`) and subscribes to every channel and pattern.
    async fn open(
        shared: Arc<Shared>,
        channels: Vec<Vec<u8>>,
        patterns: Vec<Vec<u8>>,
    ) -> Result<Conn, Failure> {
        let rt = &*shared.rt;
        let deadline = deadline_after(shared.cfg.hold_timeout());
        let active = match shared.slot.acquire(rt, deadline).await {
            Ok(a) => a.value,
            Err(HoldError::Stopped) => return Err(Failure::Stopped),
            Err(HoldError::TimedOut) => {
                return Err(Failure::Failed("no verified master (hold_timeout)".into()));
            }
        };
        let client = shared.data.client(&active.node).map_err(Failure::Failed)?;
        let limit = shared.cfg.connect_timeout();
        let opened = timeout(rt, limit, async {
            let pubsub = client.get_async_pubsub().await?;
            let (mut sink, stream) = pubsub.split();
            if !channels.is_empty() {
                sink.subscribe(channels).await?;
            }
            if !patterns.is_empty() {
                sink.psubscribe(patterns).await?;
            }
            Ok::<_, RedisError>((sink, stream))
        })
        .await;
        match opened {
            Some(Ok((sink, stream))) => Ok(Conn {
                active,
                sink,
                stream,
            }),
            Some(Err(e)) => {
                shared.report(&active.node, AppErrorKind::Io);
                Err(Failure::Failed(format!("{}: {e}", active.node)))
            }
            None => Err(Failure::Failed(format!(
                "{}: no subscription within {limit:?}",
                active.node
            ))),
        }
    }

    /// The subscriptions are gone (switch or broken connection).
    fn lose(&mut self) {
        if let Some(c) = self.conn.take()
            && self.lost.is_none()
        {
            self.lost = Some((Some(c.active.node.clone()), Instant::now()));
        }
    }

    async fn run(mut self) {
        loop {
            let step = self.next_step().await;
            match step {
                Step::Stopped => return,
                Step::Request(None) => return,
                Step::Request(Some(request)) => self.handle(request).await,
                Step::Message(Some(msg)) => {
                    if self.messages.send(msg).await.is_err() {
                        return;
                    }
                }
                Step::Message(None) => {
                    if let Some(c) = &self.conn {
                        debug!(node = %c.active.node, "pub/sub connection closed; reopening");
                        self.shared.report(&c.active.node, AppErrorKind::Io);
                    }
                    self.lose();
                    self.retry_at = Some(Instant::now() + FIRST_RETRY);
                }
                Step::Moved => {
                    if let Some(c) = &self.conn {
                        debug!(node = %c.active.node, "master moved; pub/sub connection closed");
                    }
                    // Dropping the connection closes its socket to the old master.
                    self.lose();
                    self.retry_at = None;
                    self.failures = 0;
                }
                Step::Opened(Ok(conn)) => self.opened(conn),
                Step::Opened(Err(Failure::Stopped)) => return,
                Step::Opened(Err(Failure::Failed(reason))) => {
                    self.failures += 1;
                    let delay = FIRST_RETRY
                        .saturating_mul(1 << (self.failures - 1).min(8))
                        .min(MAX_RETRY);
                    debug!(
                        reason,
                        retry_in_ms = delay.as_millis() as u64,
                        "pub/sub not reopened"
                    );
                    self.retry_at = Some(Instant::now() + delay);
                }
                Step::Retry => self.retry_at = None,
            }
        }
    }

    /// Waits for the next thing to do.
    async fn next_step(&mut self) -> Step {
        let requests = self.requests.clone();
        let request = async move { Step::Request(requests.recv().await.ok()) };
        let shared = Arc::clone(&self.shared);
        let stopped = async move {
            let _ = shared.done.wait().await;
            Step::Stopped
        };
        let retry_at = self.retry_at.filter(|t| *t > Instant::now());
        let wanted = self.wanted();
        match &mut self.conn {
            Some(c) => {
                let cancel = Arc::clone(&c.active.cancel);
                let moved = async move {
                    cancel.cancelled().await;
                    Step::Moved
                };
                let message = async { Step::Message(c.stream.next().await) };
                or(request, or(moved, or(message, stopped))).await
            }
            None if wanted && retry_at.is_none() => {
                let open = Self::open(
                    Arc::clone(&self.shared),
                    self.channels.iter().cloned().collect(),
                    self.patterns.iter().cloned().collect(),
                );
                let opened = async { Step::Opened(open.await) };
                or(request, or(opened, stopped)).await
            }
            None => {
                let rt = Arc::clone(&self.shared.rt);
                let timer = async move {
                    match retry_at {
                        Some(t) => rt.sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                    Step::Retry
                };
                or(request, or(timer, stopped)).await
            }
        }
    }

    fn opened(&mut self, conn: Conn) {
        self.failures = 0;
        self.retry_at = None;
        let new = conn.active.node.clone();
        if let Some((old, at)) = self.lost.take() {
            let event = Event::PubSubResubscribed {
                old,
                new: new.clone(),
                channels: self.channels.len(),
                patterns: self.patterns.len(),
                gap: at.elapsed(),
            };
            self.shared.events.emit(&event);
        } else {
            debug!(node = %new, "pub/sub subscribed");
        }
        self.conn = Some(conn);
        for w in self.waiting.drain(..) {
            let _ = w.try_send(Ok(()));
        }
    }

    async fn handle(&mut self, request: Request) {
        match request {
            Request::Subscribe(kind, names, reply) => {
                let fresh: Vec<Vec<u8>> = names
                    .into_iter()
                    .filter(|n| self.set(kind).insert(n.clone()))
                    .collect();
                let Some(c) = &mut self.conn else {
                    self.waiting.push(reply);
                    return;
                };
                if fresh.is_empty() {
                    let _ = reply.try_send(Ok(()));
                    return;
                }
                let done = match kind {
                    Kind::Channel => c.sink.subscribe(fresh).await,
                    Kind::Pattern => c.sink.psubscribe(fresh).await,
                };
                match done {
                    Ok(()) => {
                        let _ = reply.try_send(Ok(()));
                    }
                    Err(e) => {
                        // The connection is gone: subscribe everything again on a new one.
                        debug!(error = %e, "pub/sub subscribe failed; reopening");
                        self.lose();
                        self.waiting.push(reply);
                    }
                }
            }
            Request::Unsubscribe(kind, names, reply) => {
                for n in &names {
                    self.set(kind).remove(n);
                }
                if let Some(c) = &mut self.conn {
                    let done = match kind {
                        Kind::Channel => c.sink.unsubscribe(names).await,
                        Kind::Pattern => c.sink.punsubscribe(names).await,
                    };
                    if done.is_err() {
                        self.lose();
                    }
                }
                if !self.wanted() {
                    // Nothing left to follow: close the connection, and no gap to report.
                    self.conn = None;
                    self.lost = None;
                }
                let _ = reply.try_send(Ok(()));
            }
        }
    }
}
