//! The errors a [`MasterConnection`](crate::MasterConnection) command fails with because of a
//! failover (or a master that went away), made here and told apart here: [`Failure::of`],
//! [`Cause::of`].
//!
//! They are `redis` I/O errors (so code written for a plain connection handles them as it
//! handles a dropped connection), with a kind, a message naming the master and the setting
//! involved, and their [`Cause`] as a typed payload.

use dramatiq_sentinel_core::Addr;
use redis::RedisError;
use std::error::Error;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// What a failed command means for its caller, when a failover or an unreachable master
/// caused it (see [`Failure::of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The command was never sent: no verified master within `hold_timeout` (kind
    /// `TimedOut`), or the master could not be reached (kind `ConnectionRefused`). Sending it
    /// again is safe.
    NotSent,
    /// The command was sent, and the master moved away (kind `ConnectionAborted`), its
    /// connection broke (kind `ConnectionAborted`), or it did not answer within
    /// `command_timeout` (kind `TimedOut`): it may or may not have run. Send it again only if
    /// running it twice is harmless.
    InFlight,
    /// The supervisor stopped (kind `NotConnected`): nothing will be sent any more.
    Stopped,
}

impl Failure {
    /// What `error`, returned by a [`MasterConnection`](crate::MasterConnection) command,
    /// means; `None` for every other error (a server error reply, a wrong type, ...), which a
    /// failover did not cause.
    ///
    /// ```
    /// # use dramatiq_sentinel_supervisor::Failure;
    /// # fn send() -> redis::RedisResult<()> { Ok(()) }
    /// let mut attempts = 0;
    /// loop {
    ///     match send() {
    ///         Err(e) if Failure::of(&e) == Some(Failure::NotSent) && attempts < 3 => attempts += 1,
    ///         other => break other,
    ///     }
    /// }
    /// # .unwrap();
    /// ```
    pub fn of(error: &RedisError) -> Option<Failure> {
        Cause::of(error).map(Cause::failure)
    }

    /// Whether the command may have run ([`Failure::InFlight`]).
    pub fn may_have_run(self) -> bool {
        self == Failure::InFlight
    }
}

/// What exactly made a [`MasterConnection`](crate::MasterConnection) command fail, carried
/// (typed, not as text) inside the I/O error the command returns: [`Cause::of`] reads it
/// back, [`Cause::failure`] says what it means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// No verified master within `hold_timeout` (kind `TimedOut`; [`Failure::NotSent`]).
    Held,
    /// The master could not be reached (kind `ConnectionRefused`; [`Failure::NotSent`]).
    Unreachable,
    /// The master moved away while the command was in flight on it (kind
    /// `ConnectionAborted`; [`Failure::InFlight`]).
    Moved,
    /// The connection broke with the command in flight (kind `ConnectionAborted`;
    /// [`Failure::InFlight`]).
    Broke,
    /// No answer within `command_timeout` (kind `TimedOut`; [`Failure::InFlight`]).
    NoAnswer,
    /// The supervisor stopped (kind `NotConnected`; [`Failure::Stopped`]).
    Stopped,
}

impl Cause {
    /// The cause `error` carries, if a [`MasterConnection`](crate::MasterConnection) made it
    /// (`None` for every other error, whatever its text says).
    pub fn of(error: &RedisError) -> Option<Cause> {
        // `redis` keeps the `io::Error` a `RedisError` was made from as its source, behind an
        // `Arc<dyn Error + Send + Sync>` (redis 1.x); the tests below fail if that changes.
        let source = error.source()?;
        let io = source.downcast_ref::<io::Error>().or_else(|| {
            source
                .downcast_ref::<Arc<dyn Error + Send + Sync>>()
                .and_then(|shared| shared.downcast_ref::<io::Error>())
        })?;
        io.get_ref()?.downcast_ref::<Payload>().map(|p| p.cause)
    }

    /// What the cause means for the caller.
    pub fn failure(self) -> Failure {
        match self {
            Cause::Held | Cause::Unreachable => Failure::NotSent,
            Cause::Moved | Cause::Broke | Cause::NoAnswer => Failure::InFlight,
            Cause::Stopped => Failure::Stopped,
        }
    }

    /// The I/O error kind of the error, so code written for a plain connection handles it as
    /// it handles a timeout, a refused or a dropped connection.
    pub fn kind(self) -> io::ErrorKind {
        match self {
            Cause::Held | Cause::NoAnswer => io::ErrorKind::TimedOut,
            Cause::Unreachable => io::ErrorKind::ConnectionRefused,
            Cause::Moved | Cause::Broke => io::ErrorKind::ConnectionAborted,
            Cause::Stopped => io::ErrorKind::NotConnected,
        }
    }

    /// The error a [`MasterConnection`](crate::MasterConnection) command fails with for this
    /// cause, with `detail` as its text (after `dramatiq-sentinel: `). The handle makes its
    /// errors with it; code that handles them can make the same in its tests.
    pub fn error(self, detail: impl Into<String>) -> RedisError {
        let payload = Payload {
            cause: self,
            detail: detail.into(),
        };
        io::Error::new(self.kind(), payload).into()
    }
}

/// The payload of the I/O error: the cause, and the text people read.
#[derive(Debug)]
struct Payload {
    cause: Cause,
    detail: String,
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dramatiq-sentinel: {}", self.detail)
    }
}

impl Error for Payload {}

/// No verified master within `hold_timeout`.
pub(crate) fn held_too_long(hold: Duration) -> RedisError {
    Cause::Held.error(format!(
        "no verified master for {hold:?} (hold_timeout): a failover is in progress"
    ))
}

/// The master could not be reached (`waited`: how long the command was held retrying).
pub(crate) fn unreachable(node: &Addr, waited: Option<Duration>, error: &str) -> RedisError {
    let waited = waited.map_or_else(String::new, |w| {
        format!(" (retried for {w:?}, hold_timeout)")
    });
    Cause::Unreachable.error(format!("cannot connect to master {node}{waited}: {error}"))
}

/// The master moved while the command was in flight on the old one.
pub(crate) fn moved(node: &Addr) -> RedisError {
    Cause::Moved.error(format!(
        "the master moved away from {node}; this command on the old master was cancelled"
    ))
}

/// The connection broke while the command was in flight.
pub(crate) fn broke(node: &Addr, error: &RedisError) -> RedisError {
    Cause::Broke.error(format!(
        "the connection to master {node} broke with this command in flight (it may or may not \
         have run): {error}"
    ))
}

/// No answer within `command_timeout`.
pub(crate) fn no_answer(node: &Addr, limit: Duration) -> RedisError {
    Cause::NoAnswer.error(format!(
        "no answer from master {node} within {limit:?} (command_timeout)"
    ))
}

/// The supervisor stopped.
pub(crate) fn stopped() -> RedisError {
    Cause::Stopped.error("the supervisor stopped")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_is_told_apart_and_keeps_its_kind() {
        let node = Addr::new("127.0.0.1", 6379);
        let second = Duration::from_secs(1);
        let reset: RedisError = io::Error::new(io::ErrorKind::ConnectionReset, "reset").into();
        let cases = [
            (
                held_too_long(second),
                Failure::NotSent,
                io::ErrorKind::TimedOut,
            ),
            (
                unreachable(&node, Some(second), "refused"),
                Failure::NotSent,
                io::ErrorKind::ConnectionRefused,
            ),
            (
                moved(&node),
                Failure::InFlight,
                io::ErrorKind::ConnectionAborted,
            ),
            (
                broke(&node, &reset),
                Failure::InFlight,
                io::ErrorKind::ConnectionAborted,
            ),
            (
                no_answer(&node, second),
                Failure::InFlight,
                io::ErrorKind::TimedOut,
            ),
            (stopped(), Failure::Stopped, io::ErrorKind::NotConnected),
        ];
        for (error, failure, kind) in cases {
            assert_eq!(Failure::of(&error), Some(failure), "{error}");
            let cause = Cause::of(&error).expect("a cause");
            assert_eq!((cause.failure(), cause.kind()), (failure, kind), "{error}");
            assert_eq!(
                Cause::of(&error.clone()),
                Some(cause),
                "a clone keeps the cause"
            );
            let text = error.to_string();
            assert!(text.contains("dramatiq-sentinel: "), "{text}");
            let expected: RedisError = io::Error::new(kind, "x").into();
            assert_eq!(error.is_timeout(), expected.is_timeout(), "{text}");
            assert_eq!(
                error.is_connection_refusal(),
                expected.is_connection_refusal()
            );
            assert_eq!(
                error.is_connection_dropped(),
                expected.is_connection_dropped()
            );
        }
        assert!(broke(&node, &reset).to_string().contains("127.0.0.1:6379"));
        assert_eq!(Failure::of(&reset), None, "a plain I/O error is not ours");
        // The cause is typed: an error that only reads like ours is not ours.
        let lookalike: RedisError =
            io::Error::new(io::ErrorKind::ConnectionAborted, moved(&node).to_string()).into();
        assert_eq!(Cause::of(&lookalike), None, "{lookalike}");
        let server = RedisError::from((redis::ErrorKind::Client, "boom"));
        assert_eq!(Failure::of(&server), None);
    }
}
