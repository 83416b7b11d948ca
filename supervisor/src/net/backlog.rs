//! Reading lost writes back from an old master's replication backlog
//! ([`Action::ReadBacklog`]): `PSYNC <replid> <offset>` on a connection of its own, then
//! exactly the bytes asked for of the replication stream that follows `+CONTINUE`.
//!
//! The read runs on a thread of its own with a blocking connection: the `redis` crate's async
//! connections expect one reply per request, and a replication stream is not one. It happens
//! once per switch that lost writes, so a thread costs nothing that matters.
//!
//! [`Action::ReadBacklog`]: dramatiq_sentinel_core::Action::ReadBacklog

use crate::drive::shared::Input;
use crate::net::connect::Endpoint;
use crate::net::convert::io_error;
use async_channel::Sender;
use dramatiq_sentinel_core::{Addr, Input as CoreInput, IoError, OpId};
use redis::Value;
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// How long the bytes of a backlog may take to arrive, after the connection's timeout.
const READ_TIME: Duration = Duration::from_secs(10);

/// What to read.
pub(crate) struct Read {
    pub(crate) op: OpId,
    pub(crate) node: Addr,
    pub(crate) replid: String,
    pub(crate) offset: u64,
    pub(crate) bytes: u64,
}

/// Starts the read on a thread of its own; its result reaches the supervisor's task as
/// [`CoreInput::Backlog`].
pub(crate) fn start(endpoint: Endpoint, read: Read, inbox: Sender<Input>) {
    let spawned = std::thread::Builder::new()
        .name("dramatiq-sentinel-backlog".to_owned())
        .spawn(move || {
            let started = Instant::now();
            let result = run(&endpoint, &read);
            match &result {
                Ok(bytes) => debug!(node = %read.node, bytes = bytes.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64, "backlog read back"),
                Err(e) => warn!(node = %read.node, error = %e, "backlog not read back"),
            }
            let input = Input::Core(CoreInput::Backlog {
                op: read.op,
                result,
            });
            let _ = inbox.send_blocking(input);
        });
    if let Err(e) = spawned {
        // No thread: the core's own deadline reports the loss without its commands.
        warn!(error = %e, "could not start the backlog read");
    }
}

/// Connects, sends `PSYNC`, and reads `read.bytes` bytes of the stream.
fn run(endpoint: &Endpoint, read: &Read) -> Result<Vec<u8>, IoError> {
    let client = endpoint.client(&read.node).map_err(IoError::rejected)?;
    let mut conn = client
        .get_connection_with_timeout(endpoint.connect_timeout)
        .map_err(|e| io_error(&e))?;
    conn.set_read_timeout(Some(endpoint.connect_timeout))
        .map_err(|e| io_error(&e))?;
    let answer: Value = redis::cmd("PSYNC")
        .arg(&read.replid)
        .arg(read.offset)
        .query(&mut conn)
        .map_err(|e| io_error(&e))?;
    match &answer {
        Value::SimpleString(s) if s.starts_with("CONTINUE") => {}
        // `+FULLRESYNC`: the backlog no longer holds that history (the connection closes
        // with `conn`, before the snapshot that would follow).
        other => {
            return Err(IoError::rejected(format!(
                "PSYNC answered {}",
                describe(other)
            )));
        }
    }
    let deadline = Instant::now() + READ_TIME;
    let mut out = Vec::with_capacity(usize::try_from(read.bytes).unwrap_or(0).min(1 << 20));
    while (out.len() as u64) < read.bytes {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(IoError::unreachable(format!(
                "{} of {} bytes within {READ_TIME:?}",
                out.len(),
                read.bytes
            )));
        }
        conn.set_read_timeout(Some(left))
            .map_err(|e| io_error(&e))?;
        let value = conn.recv_response().map_err(|e| io_error(&e))?;
        encode(&value, &mut out)?;
    }
    Ok(out)
}

/// Appends `value`, one command of the stream, as the stream carried it (an array of bulk
/// strings, whose encoding is unique, so the bytes counted are the stream's).
fn encode(value: &Value, out: &mut Vec<u8>) -> Result<(), IoError> {
    let Value::Array(items) = value else {
        return Err(IoError::rejected(format!(
            "the replication stream sent {} instead of a command",
            describe(value)
        )));
    };
    out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
    for item in items {
        let Value::BulkString(bytes) = item else {
            return Err(IoError::rejected(format!(
                "a command of the replication stream holds {}",
                describe(item)
            )));
        };
        out.extend_from_slice(format!("${}\r\n", bytes.len()).as_bytes());
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }
    Ok(())
}

fn describe(value: &Value) -> String {
    match value {
        Value::SimpleString(s) => format!("+{s}"),
        Value::ServerError(e) => format!("-{}", e.code()),
        other => format!("{other:?}").chars().take(80).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands_as_the_stream_carries_them() {
        let mut out = Vec::new();
        let command = Value::Array(vec![
            Value::BulkString(b"SET".to_vec()),
            Value::BulkString(b"k".to_vec()),
            Value::BulkString(b"v\r\n".to_vec()),
        ]);
        encode(&command, &mut out).expect("a command");
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n");
        assert!(encode(&Value::Okay, &mut out).is_err());
        assert!(encode(&Value::Array(vec![Value::Int(1)]), &mut out).is_err());
    }
}
