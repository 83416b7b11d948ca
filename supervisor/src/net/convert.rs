//! Mechanical conversions between the `redis` crate and the core: reply values, error kinds,
//! error descriptions. No judgement beyond naming what the server or the socket said.

use dramatiq_sentinel_core::{AppErrorKind, IoError, Reply};
use redis::{ErrorKind, ServerErrorKind, Value};

/// Converts a `redis` reply value into the core's [`Reply`], as [`Reply`] documents: bulk
/// strings to `Data`, simple strings to `Status`, server errors to `Error`, arrays, sets and
/// pushes to `Array`, maps to `Map`, other scalars to `Data` holding their text.
pub(crate) fn to_reply(value: Value) -> Reply {
    match value {
        Value::Nil => Reply::Nil,
        Value::Int(i) => Reply::Int(i),
        Value::BulkString(bytes) => Reply::Data(bytes),
        Value::SimpleString(s) => Reply::Status(s),
        Value::Okay => Reply::Status("OK".to_owned()),
        Value::ServerError(e) => Reply::Error(match e.details() {
            Some(detail) => format!("{} {detail}", e.code()),
            None => e.code().to_owned(),
        }),
        Value::Array(items) | Value::Set(items) | Value::Push { data: items, .. } => {
            Reply::Array(items.into_iter().map(to_reply).collect())
        }
        Value::Map(pairs) => Reply::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (to_reply(k), to_reply(v)))
                .collect(),
        ),
        Value::Attribute { data, .. } => to_reply(*data),
        Value::Double(d) => Reply::Data(d.to_string().into_bytes()),
        Value::Boolean(b) => Reply::Data(b.to_string().into_bytes()),
        Value::VerbatimString { text, .. } => Reply::Data(text.into_bytes()),
        Value::BigNumber(n) => Reply::Data(format!("{n:?}").into_bytes()),
        // `Value` is non-exhaustive: keep whatever a newer `redis` adds as text.
        other => Reply::Data(format!("{other:?}").into_bytes()),
    }
}

/// Whether a reply carries a `READONLY` error anywhere (a plain reply, or an element of a
/// pipeline or transaction result).
pub(crate) fn has_readonly(value: &Value) -> bool {
    match value {
        Value::ServerError(e) => e.code() == "READONLY",
        Value::Array(items) | Value::Set(items) => items.iter().any(has_readonly),
        _ => false,
    }
}

/// The trigger an application command error is for the supervisor, if any.
pub(crate) fn error_kind(error: &redis::RedisError) -> Option<AppErrorKind> {
    if error.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
        || error.code() == Some("READONLY")
    {
        Some(AppErrorKind::ReadOnly)
    } else if error.is_timeout() {
        Some(AppErrorKind::Timeout)
    } else if error.is_io_error() || error.is_connection_dropped() || error.is_unrecoverable_error()
    {
        Some(AppErrorKind::Io)
    } else {
        None
    }
}

/// A failed connection or command as the core takes it: unreachable when the server could not
/// be reached, did not answer in time or is still loading its data (worth waiting and
/// retrying), rejected otherwise (authentication, a bad database, a certificate, a malformed
/// address: the server refused us).
pub(crate) fn io_error(error: &redis::RedisError) -> IoError {
    let message = describe(error);
    if error.is_timeout()
        || error.is_connection_dropped()
        || error.kind() == ErrorKind::Server(ServerErrorKind::BusyLoading)
    {
        IoError::unreachable(message)
    } else {
        IoError::rejected(message)
    }
}

/// A one-line description of a failed connection or command, naming authentication failures
/// as such.
pub(crate) fn describe(error: &redis::RedisError) -> String {
    let text = error.to_string();
    let auth = error.kind() == ErrorKind::AuthenticationFailed
        || matches!(error.code(), Some("WRONGPASS" | "NOAUTH"))
        || text.contains("WRONGPASS")
        || text.contains("NOAUTH");
    if auth && !text.to_ascii_lowercase().contains("authentication failed") {
        format!("authentication failed: {text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(text: &str) -> Value {
        // The parser is the one way to build a `ServerError` from outside the crate.
        redis::parse_redis_value(format!("-{text}\r\n").as_bytes()).expect("valid RESP")
    }

    #[test]
    fn converts_every_shape() {
        let value = Value::Array(vec![
            Value::Nil,
            Value::Int(7),
            Value::BulkString(b"ip".to_vec()),
            Value::SimpleString("PONG".into()),
            Value::Okay,
            Value::Set(vec![Value::Int(1)]),
            Value::Map(vec![(
                Value::BulkString(b"k".to_vec()),
                Value::Boolean(true),
            )]),
            Value::Double(1.5),
            server_error("ERR No such master with that name"),
        ]);
        assert_eq!(
            to_reply(value),
            Reply::Array(vec![
                Reply::Nil,
                Reply::Int(7),
                Reply::Data(b"ip".to_vec()),
                Reply::Status("PONG".into()),
                Reply::Status("OK".into()),
                Reply::Array(vec![Reply::Int(1)]),
                Reply::Map(vec![(
                    Reply::Data(b"k".to_vec()),
                    Reply::Data(b"true".to_vec())
                )]),
                Reply::Data(b"1.5".to_vec()),
                Reply::Error("ERR No such master with that name".into()),
            ])
        );
    }

    #[test]
    fn unknown_error_codes_keep_their_text() {
        assert_eq!(
            to_reply(server_error("NOAUTH Authentication required.")),
            Reply::Error("NOAUTH Authentication required.".into())
        );
    }

    #[test]
    fn finds_readonly_in_replies_and_errors() {
        let ro = server_error("READONLY You can't write against a read only replica.");
        assert!(has_readonly(&ro));
        assert!(has_readonly(&Value::Array(vec![Value::Okay, ro.clone()])));
        assert!(!has_readonly(&Value::Okay));
        assert!(!has_readonly(&server_error("ERR wrong")));
        let error = ro.extract_error().expect_err("an error");
        assert_eq!(error_kind(&error), Some(AppErrorKind::ReadOnly));
    }

    #[test]
    fn classifies_io_and_timeouts() {
        let timeout: redis::RedisError =
            std::io::Error::new(std::io::ErrorKind::TimedOut, "slow").into();
        assert_eq!(error_kind(&timeout), Some(AppErrorKind::Timeout));
        let reset: redis::RedisError =
            std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset").into();
        assert_eq!(error_kind(&reset), Some(AppErrorKind::Io));
        let wrong_type = server_error("WRONGTYPE Operation against a key holding the wrong kind")
            .extract_error()
            .expect_err("an error");
        assert_eq!(error_kind(&wrong_type), None);
    }

    #[test]
    fn names_authentication_failures() {
        let e = server_error("WRONGPASS invalid username-password pair")
            .extract_error()
            .expect_err("an error");
        assert!(
            describe(&e).starts_with("authentication failed"),
            "{}",
            describe(&e)
        );
    }
}
