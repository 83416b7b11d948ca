//! [`Monitor`]: every command a process executes, with the server's timestamp (`MONITOR`), to
//! check from outside which commands reached a node and when. A raw connection: `MONITOR`
//! streams status lines that no request answers.

use super::error::Result;
use super::handle::Deployment;
use super::ids::ProcessId;
use crate::sync::lock;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One command a node executed: when (the server's clock, seconds since the Unix epoch), from
/// which client address, and the command name in lower case.
#[derive(Debug, Clone, PartialEq)]
pub struct Executed {
    /// The server's timestamp.
    pub at: f64,
    /// The client's `ip:port`.
    pub client: String,
    /// The command, e.g. `lmove`.
    pub command: String,
}

/// A `MONITOR` connection to one process, read on a thread until [`Monitor::stop`] (or drop).
#[derive(Debug)]
pub struct Monitor {
    seen: Arc<Mutex<Vec<Executed>>>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

/// Seconds since the Unix epoch now, on the clock `MONITOR` timestamps use (same machine).
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A command in RESP.
fn resp(args: &[&str]) -> String {
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    out
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Parses `1700000000.123456 [0 127.0.0.1:5555] "LMOVE" "queue" ...`.
fn parse(line: &str) -> Option<Executed> {
    let (at, rest) = line.split_once(' ')?;
    let (client, rest) = rest.strip_prefix('[')?.split_once(']')?;
    let client = client.split_whitespace().nth(1)?.to_owned();
    let command = rest
        .trim()
        .strip_prefix('"')?
        .split('"')
        .next()?
        .to_lowercase();
    Some(Executed {
        at: at.parse().ok()?,
        client,
        command,
    })
}

impl Monitor {
    /// Starts monitoring `id` (plain TCP, with the deployment's credentials; not in TLS
    /// mode); returns once `MONITOR` is acknowledged.
    pub fn start(d: &Deployment, id: impl Into<ProcessId>) -> Result<Self> {
        let endpoint = d.endpoint(id);
        let io = |e: std::io::Error| endpoint.error("MONITOR", e.into());
        let stream = TcpStream::connect_timeout(&endpoint.addr, endpoint.timeout).map_err(io)?;
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(io)?;
        let mut writer = stream.try_clone().map_err(io)?;
        let mut lines = BufReader::new(stream);
        let mut request = String::new();
        if let Some(password) = endpoint.auth.password() {
            let user = endpoint.auth.username().unwrap_or("default");
            request.push_str(&resp(&["AUTH", user, password]));
        }
        request.push_str(&resp(&["MONITOR"]));
        writer.write_all(request.as_bytes()).map_err(io)?;
        let deadline = Instant::now() + endpoint.timeout;
        let mut oks = 0;
        let expected = 1 + usize::from(endpoint.auth.password().is_some());
        while oks < expected {
            let mut line = String::new();
            match lines.read_line(&mut line) {
                Ok(0) => return Err(io(ErrorKind::UnexpectedEof.into())),
                Ok(_) if line.starts_with("+OK") => oks += 1,
                Ok(_) => {
                    let e = std::io::Error::other(format!("MONITOR answered {}", line.trim()));
                    return Err(io(e));
                }
                Err(e) if Instant::now() < deadline && is_timeout(&e) => {}
                Err(e) => return Err(io(e)),
            }
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sink, done) = (Arc::clone(&seen), Arc::clone(&stop));
        let reader = std::thread::spawn(move || {
            let _writer = writer; // keeps the connection open
            let mut line = String::new();
            while !done.load(Ordering::SeqCst) {
                match lines.read_line(&mut line) {
                    Ok(0) => break, // the node went away
                    Ok(_) => {
                        if let Some(e) = line.trim_end().strip_prefix('+').and_then(parse) {
                            lock(&sink).push(e);
                        }
                        line.clear();
                    }
                    // A partial line stays in `line` and is completed by the next read.
                    Err(e) if is_timeout(&e) => {}
                    Err(_) => break,
                }
            }
        });
        Ok(Self {
            seen,
            stop,
            reader: Some(reader),
        })
    }

    /// The commands seen so far.
    pub fn seen(&self) -> Vec<Executed> {
        lock(&self.seen).clone()
    }

    /// Stops reading and returns every command seen.
    pub fn stop(mut self) -> Vec<Executed> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.seen()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_monitor_lines() {
        let e = parse(r#"1700000000.123456 [0 127.0.0.1:5555] "LMOVE" "queue" "processing""#)
            .expect("parses");
        assert_eq!(e.command, "lmove");
        assert_eq!(e.client, "127.0.0.1:5555");
        assert!((e.at - 1_700_000_000.123_456).abs() < 1e-6);
        assert!(parse("OK").is_none());
    }
}
