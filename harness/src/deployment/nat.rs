//! NAT mode: announced addresses only the deployment's own processes can use.
//!
//! The forwarder behind NAT mode; the design is explained in the [NAT mode](super#nat-mode)
//! section of the harness docs.

use crate::sync::lock;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::error::{HarnessError, Result};
use super::ports::{LOOPBACK, bind_free};

/// The source address the deployment's own processes use for outgoing connections.
pub(crate) const INSIDE_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

const STACK_SIZE: usize = 64 * 1024;

/// A forwarder from an announced port to a real port, open only to [`INSIDE_SOURCE`].
#[derive(Debug)]
pub(crate) struct NatProxy {
    announced: SocketAddr,
    target: Arc<AtomicU16>,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    next_id: AtomicU64,
    connections: Mutex<HashMap<u64, [TcpStream; 2]>>,
}

impl NatProxy {
    /// Binds a fresh announced port; connections are reset until [`NatProxy::set_target`].
    pub(crate) fn bind() -> Result<Self> {
        let (listener, port) = bind_free()?;
        let announced = SocketAddr::from((LOOPBACK, port));
        let target = Arc::new(AtomicU16::new(0));
        let shared = Arc::new(Shared::default());
        let (thread_target, thread_shared) = (Arc::clone(&target), Arc::clone(&shared));
        let accept_thread = std::thread::Builder::new()
            .name(format!("nat-proxy-{port}"))
            .stack_size(STACK_SIZE)
            .spawn(move || accept_loop(&listener, &thread_target, &thread_shared))
            .map_err(|e| HarnessError::io("spawning a NAT proxy thread", e))?;
        Ok(Self {
            announced,
            target,
            shared,
            accept_thread: Some(accept_thread),
        })
    }

    /// The announced address (where the proxy listens).
    pub(crate) fn announced(&self) -> SocketAddr {
        self.announced
    }

    /// Sets the real port connections are relayed to.
    pub(crate) fn set_target(&self, port: u16) {
        self.target.store(port, Ordering::SeqCst);
    }
}

impl Drop for NatProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept; it sees the stop flag and returns.
        let woke = TcpStream::connect_timeout(&self.announced, Duration::from_secs(1)).is_ok();
        if let Some(thread) = self.accept_thread.take()
            && woke
        {
            let _ = thread.join();
        }
        let connections = std::mem::take(&mut *lock(&self.shared.connections));
        for stream in connections.values().flatten() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: &TcpListener, target: &Arc<AtomicU16>, shared: &Arc<Shared>) {
    for incoming in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(downstream) = incoming else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let inside = downstream
            .peer_addr()
            .is_ok_and(|peer| peer.ip() == IpAddr::V4(INSIDE_SOURCE));
        let port = target.load(Ordering::SeqCst);
        if !inside || port == 0 {
            reset(&downstream);
            continue;
        }
        let shared = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name(format!("nat-relay-{port}"))
            .stack_size(STACK_SIZE)
            .spawn(move || relay(downstream, port, &shared));
        // Without a thread the connection is dropped (closed), like an overloaded proxy would.
        drop(spawned);
    }
}

/// Closes a connection with RST instead of FIN.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

/// Connects to the real port and pumps bytes both ways until either side closes.
fn relay(downstream: TcpStream, port: u16, shared: &Arc<Shared>) {
    let real = SocketAddr::from((LOOPBACK, port));
    let Ok(upstream) = TcpStream::connect_timeout(&real, Duration::from_secs(2)) else {
        reset(&downstream);
        return;
    };
    let _ = downstream.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let clones = (|| {
        Ok::<_, std::io::Error>((
            downstream.try_clone()?,
            upstream.try_clone()?,
            downstream.try_clone()?,
            upstream.try_clone()?,
        ))
    })();
    let Ok((down_read, up_write, down_registered, up_registered)) = clones else {
        reset(&downstream);
        return;
    };
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    lock(&shared.connections).insert(id, [down_registered, up_registered]);
    if shared.stop.load(Ordering::SeqCst) {
        close(&downstream, &upstream);
    }
    let client_to_node = std::thread::Builder::new()
        .name(format!("nat-relay-{port}"))
        .stack_size(STACK_SIZE)
        .spawn(move || pump(down_read, up_write));
    match client_to_node {
        Ok(handle) => {
            pump(upstream, downstream);
            let _ = handle.join();
        }
        Err(_) => close(&downstream, &upstream),
    }
    lock(&shared.connections).remove(&id);
}

/// Copies `from` to `to` until EOF or an error, then closes both.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = [0_u8; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    close(&from, &to);
}

fn close(a: &TcpStream, b: &TcpStream) {
    let _ = a.shutdown(Shutdown::Both);
    let _ = b.shutdown(Shutdown::Both);
}
