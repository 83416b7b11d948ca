//! Picking free loopback ports.
//!
//! Ports are drawn at random from a range below the kernel's ephemeral range (so outgoing
//! connections of other programs never sit on them), probed with a bind on 127.0.0.1, and never
//! handed out twice by the same test process. Another process can still grab a port between the
//! probe and the moment Redis binds it; the process starter detects that ("Address already in
//! use" in the log) and retries with a new port.

use crate::sync::lock;
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Mutex;

use super::error::{HarnessError, Result};

/// The address every listener of a deployment binds.
pub(crate) const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

const ATTEMPTS: usize = 200;

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Returns a port on 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> Result<u16> {
    Ok(bind_free()?.1)
}

/// Binds a listener on a fresh 127.0.0.1 port and returns it (used for NAT proxies, which keep
/// the listener, so no race is possible).
pub(crate) fn bind_free() -> Result<(TcpListener, u16)> {
    let (low, high) = port_range();
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        let port = fastrand::u16(low..high);
        if !remember(port) {
            continue;
        }
        match TcpListener::bind(SocketAddr::from((LOOPBACK, port))) {
            Ok(listener) => return Ok((listener, port)),
            Err(e) => last_error = Some(e),
        }
    }
    Err(HarnessError::io(
        format!("finding a free port in {low}..{high} after {ATTEMPTS} attempts"),
        last_error.unwrap_or_else(|| std::io::Error::other("every candidate was already used")),
    ))
}

/// Marks `port` as handed out; false if it already was.
fn remember(port: u16) -> bool {
    let mut guard = lock(&HANDED_OUT);
    guard.get_or_insert_with(HashSet::new).insert(port)
}

/// The range to draw from: below the ephemeral range when that leaves enough room.
fn port_range() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok());
    match ephemeral_low {
        Some(low) if low > 12_000 => (10_000, low),
        _ => (40_000, 65_000),
    }
}

/// A loopback port that accepts connections and closes them at once, for the life of the
/// process: a sentinel address mapped to it is one the client is cut off from.
pub fn dead_port() -> Result<SocketAddr> {
    let (listener, port) = bind_free()?;
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    Ok(SocketAddr::from((LOOPBACK, port)))
}
