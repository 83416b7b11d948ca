//! A tiny Redis stand-in for the master handle's unit tests: a real TCP server on 127.0.0.1
//! that reads RESP commands and counts them, and answers each with `:1` or stays silent (so
//! commands stay in flight), counting the connections it accepted and those still open.

use dramatiq_sentinel_core::Addr;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    commands: AtomicUsize,
    /// Batches of replies written: one per round trip of a client that waits for its replies.
    rounds: AtomicUsize,
    accepted: AtomicUsize,
    open: AtomicUsize,
    streams: Mutex<Vec<TcpStream>>,
}

/// The server; its threads live until the test process ends.
pub(crate) struct FakeRedis {
    pub(crate) addr: Addr,
    state: Arc<State>,
}

impl FakeRedis {
    /// A server that answers every command with `:1` (`answer`), or never answers.
    pub(crate) fn start(answer: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(State::default());
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                shared.open.fetch_add(1, Ordering::SeqCst);
                if let Ok(clone) = stream.try_clone() {
                    shared.streams.lock().expect("lock").push(clone);
                }
                let conn = Arc::clone(&shared);
                std::thread::spawn(move || serve(stream, &conn, answer));
            }
        });
        Self {
            addr: Addr::new("127.0.0.1", port),
            state,
        }
    }

    /// Commands received, on every connection.
    pub(crate) fn commands(&self) -> usize {
        self.state.commands.load(Ordering::SeqCst)
    }

    /// Round trips: batches of commands read together and answered together.
    pub(crate) fn rounds(&self) -> usize {
        self.state.rounds.load(Ordering::SeqCst)
    }

    /// Connections accepted.
    pub(crate) fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Connections not closed by the client yet.
    pub(crate) fn open(&self) -> usize {
        self.state.open.load(Ordering::SeqCst)
    }

    /// Closes every connection from the server's side (a restarted or killed server).
    pub(crate) fn drop_connections(&self) {
        for s in self.state.streams.lock().expect("lock").drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Waits (polling, 30 s at most) until `what` holds.
    pub(crate) fn wait(&self, what: &str, cond: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cond(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: {} commands, {} accepted, {} open",
                self.commands(),
                self.accepted(),
                self.open()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn serve(mut stream: TcpStream, state: &State, answer: bool) {
    let mut buf = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let mut replies = Vec::new();
        while let Some(used) = crate::net::resp::command_len(&buf) {
            buf.drain(..used);
            state.commands.fetch_add(1, Ordering::SeqCst);
            replies.extend_from_slice(b":1\r\n");
        }
        if answer && !replies.is_empty() {
            state.rounds.fetch_add(1, Ordering::SeqCst);
            if stream.write_all(&replies).is_err() {
                break;
            }
        }
    }
    state.open.fetch_sub(1, Ordering::SeqCst);
}
