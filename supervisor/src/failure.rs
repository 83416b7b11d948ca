//! The errors a [`MasterConnection`](crate::MasterConnection) command fails with because of a
//! failover (or a master that went away), made here and told apart here: [`Failure::of`].
//!
//! They are `redis` I/O errors (so code written for a plain connection handles them as it
//! handles a dropped connection), with a kind and a message naming the master and the setting
//! involved.

use dramatiq_sentinel_core::Addr;
use redis::RedisError;
use std::io;
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

const PREFIX: &str = "dramatiq-sentinel: ";
const HELD: &str = "no verified master for ";
const UNREACHABLE: &str = "cannot connect to master ";
const MOVED: &str = "the master moved away from ";
const BROKE: &str = "the connection to master ";
const NO_ANSWER: &str = "no answer from master ";
const STOPPED: &str = "the supervisor stopped";

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
        if !error.is_io_error() {
            return None;
        }
        let text = error.to_string();
        let at = text.find(PREFIX)? + PREFIX.len();
        let what = &text[at..];
        [
            (HELD, Failure::NotSent),
            (UNREACHABLE, Failure::NotSent),
            (MOVED, Failure::InFlight),
            (BROKE, Failure::InFlight),
            (NO_ANSWER, Failure::InFlight),
            (STOPPED, Failure::Stopped),
        ]
        .into_iter()
        .find_map(|(marker, failure)| what.starts_with(marker).then_some(failure))
    }

    /// Whether the command may have run ([`Failure::InFlight`]).
    pub fn may_have_run(self) -> bool {
        self == Failure::InFlight
    }
}

fn io_error(kind: io::ErrorKind, message: String) -> RedisError {
    io::Error::new(kind, format!("{PREFIX}{message}")).into()
}

/// No verified master within `hold_timeout`.
pub(crate) fn held_too_long(hold: Duration) -> RedisError {
    io_error(
        io::ErrorKind::TimedOut,
        format!("{HELD}{hold:?} (hold_timeout): a failover is in progress"),
    )
}

/// The master could not be reached (`waited`: how long the command was held retrying).
pub(crate) fn unreachable(node: &Addr, waited: Option<Duration>, error: &str) -> RedisError {
    let waited = waited.map_or_else(String::new, |w| {
        format!(" (retried for {w:?}, hold_timeout)")
    });
    io_error(
        io::ErrorKind::ConnectionRefused,
        format!("{UNREACHABLE}{node}{waited}: {error}"),
    )
}

/// The master moved while the command was in flight on the old one.
pub(crate) fn moved(node: &Addr) -> RedisError {
    io_error(
        io::ErrorKind::ConnectionAborted,
        format!("{MOVED}{node}; this command on the old master was cancelled"),
    )
}

/// The connection broke while the command was in flight.
pub(crate) fn broke(node: &Addr, error: &RedisError) -> RedisError {
    io_error(
        io::ErrorKind::ConnectionAborted,
        format!(
            "{BROKE}{node} broke with this command in flight (it may or may not have run): {error}"
        ),
    )
}

/// No answer within `command_timeout`.
pub(crate) fn no_answer(node: &Addr, limit: Duration) -> RedisError {
    io_error(
        io::ErrorKind::TimedOut,
        format!("{NO_ANSWER}{node} within {limit:?} (command_timeout)"),
    )
}

/// The supervisor stopped.
pub(crate) fn stopped() -> RedisError {
    io_error(io::ErrorKind::NotConnected, STOPPED.to_owned())
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
        let server = RedisError::from((redis::ErrorKind::Client, "boom"));
        assert_eq!(Failure::of(&server), None);
    }
}
