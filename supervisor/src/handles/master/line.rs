//! The connection slots of the master handle ([`Line`]): the shared connection of a master
//! generation ([`Active`]) or a dedicated handle's own, refilled when its connection breaks,
//! with at most one connection attempt in flight and a jittered, growing delay between
//! failed attempts.

use crate::net::connect::OpenError;
use crate::net::link::Link;
use crate::sync::{Cancel, lock};
use dramatiq_sentinel_core::{Addr, Backoff};
use event_listener::Event;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// First delay before a line retries a master it could not connect to; it doubles after each
/// failure up to [`MAX_RETRY`], and each delay is drawn from `[d / 2, d]` (a failover that
/// installs another master wakes the waiting commands at once).
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// Longest delay between two connection attempts of one line.
const MAX_RETRY: Duration = Duration::from_secs(1);

/// The master in use, for one generation (one `Activate`).
pub(crate) struct Active {
    pub(crate) generation: u64,
    pub(crate) node: Addr,
    /// The shared connection of this generation.
    pub(crate) line: Arc<Line>,
    /// Set when this generation is replaced: the connections opened for it close (those the
    /// supervisor drives), and commands still in flight on it fail.
    pub(crate) cancel: Arc<Cancel>,
}

/// A connection slot that is refilled when its connection breaks: the shared connection of a
/// generation, or the connection of a [`MasterConnection::dedicated`] handle. At most one
/// connection attempt per line is in flight: the other commands that need the line wait for
/// its outcome, and a failed attempt is retried after a jittered, growing delay, so the number
/// of connects to a dead master does not grow with the number of commands waiting.
#[derive(Default)]
pub(crate) struct Line {
    state: Mutex<LineState>,
    changed: Event,
}

#[derive(Default)]
struct LineState {
    generation: u64,
    /// Counts the connections put in this line, so a failure only empties the one it saw.
    epoch: u64,
    conn: Option<Link>,
    /// The generation a connection attempt is in flight for.
    connecting: Option<u64>,
    /// The last failed attempt, for its generation.
    failed: Option<Failed>,
}

struct Failed {
    generation: u64,
    error: OpenError,
    retry_at: Instant,
    /// The delays between this generation's attempts.
    backoff: Backoff,
}

/// What a command finds in its line.
pub(crate) enum Found {
    Ready(u64, Link),
    /// This command makes the (one) connection attempt.
    Connect,
    /// Another attempt is in flight, or the next one is due at `retry_at`; the last error, if
    /// the last attempt failed.
    Wait {
        retry_at: Option<Instant>,
        error: Option<OpenError>,
    },
}

impl Line {
    pub(crate) fn new(generation: u64, link: Link) -> Self {
        Self {
            state: Mutex::new(LineState {
                generation,
                epoch: 1,
                conn: Some(link),
                connecting: None,
                failed: None,
            }),
            changed: Event::new(),
        }
    }

    /// The connection of `generation` and its epoch, if the line holds it.
    pub(crate) fn get(&self, generation: u64) -> Option<(u64, Link)> {
        let s = lock(&self.state);
        match &s.conn {
            Some(c) if s.generation == generation => Some((s.epoch, c.clone())),
            _ => None,
        }
    }

    /// The connection, or who connects, or how long to wait.
    pub(crate) fn find(&self, generation: u64, now: Instant) -> Found {
        let mut s = lock(&self.state);
        if let Some(c) = &s.conn
            && s.generation == generation
        {
            return Found::Ready(s.epoch, c.clone());
        }
        let failed = s.failed.as_ref().filter(|f| f.generation == generation);
        let error = failed.map(|f| f.error.clone());
        let retry_at = failed.map(|f| f.retry_at).filter(|t| *t > now);
        if s.connecting == Some(generation) || retry_at.is_some() {
            return Found::Wait { retry_at, error };
        }
        s.connecting = Some(generation);
        Found::Connect
    }

    /// Records the outcome of this line's connection attempt for `generation`.
    pub(crate) fn finish(
        &self,
        generation: u64,
        result: Result<Link, OpenError>,
        jitter: &Mutex<fastrand::Rng>,
    ) {
        {
            let mut s = lock(&self.state);
            if s.connecting == Some(generation) {
                s.connecting = None;
            }
            match result {
                // A late connection for a generation the line has moved past is dropped.
                Ok(_) if generation < s.generation => {}
                Ok(link) => {
                    s.generation = generation;
                    s.epoch += 1;
                    s.conn = Some(link);
                    s.failed = None;
                }
                Err(error) => {
                    let mut backoff = s
                        .failed
                        .take()
                        .filter(|f| f.generation == generation)
                        .map_or_else(|| Backoff::new(FIRST_RETRY, MAX_RETRY, 2.0), |f| f.backoff);
                    let delay = backoff.next_delay_at(lock(jitter).f64());
                    s.failed = Some(Failed {
                        generation,
                        error,
                        retry_at: Instant::now() + delay,
                        backoff,
                    });
                }
            }
        }
        self.changed.notify(usize::MAX);
    }

    /// The connection of `epoch` broke: drop it, the next command reconnects. Whether it was
    /// still the line's connection.
    pub(crate) fn broken(&self, generation: u64, epoch: u64) -> bool {
        let mut s = lock(&self.state);
        let current = s.generation == generation && s.epoch == epoch && s.conn.is_some();
        if current {
            s.conn = None;
        }
        current
    }

    /// A listener woken at the next change of the line (a connection put in or a failed
    /// attempt recorded).
    pub(crate) fn listen(&self) -> event_listener::EventListener {
        self.changed.listen()
    }

    /// Drops the connection unless it belongs to `generation`.
    pub(crate) fn clear_unless(&self, generation: Option<u64>) {
        let mut s = lock(&self.state);
        if Some(s.generation) != generation {
            s.conn = None;
        }
    }
}
