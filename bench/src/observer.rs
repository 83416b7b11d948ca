//! The independent observer of a run: a subscriber (`PSUBSCRIBE *`) on every sentinel that
//! timestamps each message, and a write probe on every data node but the old master that
//! timestamps the moment it first accepts a write (the candidate became writable).
//!
//! The probe's write is an `RPUSH` of a marker to a list: for the writer workload, the very
//! list the client under test writes to, so on the final master the marker separates writes
//! replicated from the old master from writes executed on the new one.

use super::clock::now_ns;
use super::error::{Result, err};
use dramatiq_sentinel_harness::sync::lock;
use dramatiq_sentinel_harness::{Deployment, NodeId};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Sentinel channels that announce a failover of a master (`+sdown` only for a master).
const FAILOVER_CHANNELS: [&str; 12] = [
    "+odown",
    "+new-epoch",
    "+try-failover",
    "+vote-for-leader",
    "+elected-leader",
    "+failover-state-select-slave",
    "+selected-slave",
    "+failover-state-send-slaveof-noone",
    "+failover-state-wait-promotion",
    "+promoted-slave",
    "+failover-state-reconf-slaves",
    "+switch-master",
];

/// The prefix of the probe's markers in the list.
pub(crate) const MARKER: &str = "probe:";

/// One sentinel message.
#[derive(Debug, Clone)]
pub(crate) struct Signal {
    /// When the subscriber received it.
    pub(crate) t: u64,
    /// The channel.
    pub(crate) channel: String,
    /// The payload.
    pub(crate) payload: String,
}

impl Signal {
    /// Whether it announces a failover of a master.
    pub(crate) fn is_failover(&self) -> bool {
        FAILOVER_CHANNELS.contains(&self.channel.as_str())
            || (self.channel == "+sdown" && self.payload.starts_with("master "))
    }
}

/// What the observer saw.
#[derive(Debug, Clone, Default)]
pub(crate) struct Seen {
    /// Every sentinel message but the hello channel, in arrival order per sentinel.
    pub(crate) signals: Vec<Signal>,
    /// Per probed node, when it first accepted the probe's write.
    pub(crate) writable: Vec<(u64, SocketAddr)>,
}

impl Seen {
    /// The first failover signal at or after `t0`.
    pub(crate) fn first_signal(&self, t0: u64) -> Option<&Signal> {
        self.signals
            .iter()
            .filter(|s| s.t >= t0 && s.is_failover())
            .min_by_key(|s| s.t)
    }

    /// The first `+switch-master` at or after `t0`.
    pub(crate) fn first_switch(&self, t0: u64) -> Option<u64> {
        self.signals
            .iter()
            .filter(|s| s.t >= t0 && s.channel == "+switch-master")
            .map(|s| s.t)
            .min()
    }

    /// How many different masters `+switch-master` announced from `t0` on (2 or more: the
    /// sentinels failed over again, redis/redis#8607).
    pub(crate) fn failovers(&self, t0: u64) -> usize {
        let mut new: Vec<String> = self
            .signals
            .iter()
            .filter(|s| s.t >= t0 && s.channel == "+switch-master")
            .filter_map(|s| {
                let fields: Vec<&str> = s.payload.split(' ').collect();
                (fields.len() == 5).then(|| format!("{}:{}", fields[3], fields[4]))
            })
            .collect();
        new.sort_unstable();
        new.dedup();
        new.len()
    }

    /// When the first probed node accepted a write, at or after `t0`.
    pub(crate) fn writable(&self, t0: u64) -> Option<u64> {
        self.writable
            .iter()
            .map(|(t, _)| *t)
            .filter(|t| *t >= t0)
            .min()
    }
}

/// A running observer; [`Observer::stop`] ends it and returns what it saw.
pub(crate) struct Observer {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    threads: Vec<JoinHandle<()>>,
}

fn connect(addr: SocketAddr, timeout: Duration) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(format!("redis://{addr}/"))?;
    let conn = client.get_connection_with_timeout(timeout)?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    Ok(conn)
}

impl Observer {
    /// Subscribes on every sentinel of `d` (returns once all are subscribed) and probes every
    /// data node but `old`, pushing markers to `probe_list`.
    pub(crate) fn start(d: &Deployment, old: NodeId, probe_list: &str) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut threads = Vec::new();
        let (ready_tx, ready_rx) = channel();
        let sentinels = d.sentinel_addrs();
        for &addr in &sentinels {
            let (stop, seen, ready) = (Arc::clone(&stop), Arc::clone(&seen), ready_tx.clone());
            threads.push(std::thread::spawn(move || {
                subscribe(addr, &stop, &seen, &ready)
            }));
        }
        for node in d.nodes().into_iter().filter(|&n| n != old) {
            let addr = d.addr(node);
            let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
            let list = probe_list.to_owned();
            threads.push(std::thread::spawn(move || probe(addr, &list, &stop, &seen)));
        }
        let observer = Self {
            stop,
            seen,
            threads,
        };
        for _ in &sentinels {
            ready_rx
                .recv_timeout(Duration::from_secs(10))
                .map_err(|_| err("the observer could not subscribe to every sentinel"))?;
        }
        Ok(observer)
    }

    /// Stops every thread and returns what was seen.
    pub(crate) fn stop(mut self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        std::mem::take(&mut *lock(&self.seen))
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn subscribe(
    addr: SocketAddr,
    stop: &AtomicBool,
    seen: &Mutex<Seen>,
    ready: &std::sync::mpsc::Sender<()>,
) {
    let mut announced = false;
    while !stop.load(Ordering::SeqCst) {
        let Ok(mut conn) = connect(addr, Duration::from_millis(200)) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let mut pubsub = conn.as_pubsub();
        if pubsub.psubscribe("*").is_err() {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        if !announced {
            announced = true;
            let _ = ready.send(());
        }
        while !stop.load(Ordering::SeqCst) {
            match pubsub.get_message() {
                Ok(msg) => {
                    let t = now_ns();
                    let channel = msg.get_channel_name().to_owned();
                    if channel == "__sentinel__:hello" {
                        continue;
                    }
                    let payload: String = msg.get_payload().unwrap_or_default();
                    lock(seen).signals.push(Signal {
                        t,
                        channel,
                        payload,
                    });
                }
                Err(e) if e.is_timeout() => {}
                Err(_) => break,
            }
        }
    }
}

fn probe(addr: SocketAddr, list: &str, stop: &AtomicBool, seen: &Mutex<Seen>) {
    let marker = format!("{MARKER}{addr}");
    let mut conn = None;
    while !stop.load(Ordering::SeqCst) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connect(addr, Duration::from_millis(100)) {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            },
        };
        match redis::cmd("RPUSH").arg(list).arg(&marker).query::<i64>(c) {
            Ok(_) => {
                let t = now_ns();
                lock(seen).writable.push((t, addr));
                return;
            }
            Err(e) if e.is_io_error() || e.is_timeout() || e.is_unrecoverable_error() => {
                conn = None;
            }
            Err(_) => {} // READONLY: still a replica
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(t: u64, channel: &str, payload: &str) -> Signal {
        Signal {
            t,
            channel: channel.to_owned(),
            payload: payload.to_owned(),
        }
    }

    #[test]
    fn signals_and_failovers() {
        let seen = Seen {
            signals: vec![
                sig(5, "+try-failover", "master m 127.0.0.1 1 @ m 127.0.0.1 1"),
                sig(
                    10,
                    "+sdown",
                    "slave 127.0.0.1:2 127.0.0.1 2 @ m 127.0.0.1 1",
                ),
                sig(12, "+sdown", "master m 127.0.0.1 1"),
                sig(20, "+switch-master", "m 127.0.0.1 1 127.0.0.1 2"),
                sig(21, "+switch-master", "m 127.0.0.1 1 127.0.0.1 2"),
                sig(40, "+switch-master", "m 127.0.0.1 2 127.0.0.1 3"),
            ],
            writable: vec![(18, "127.0.0.1:2".parse().expect("addr"))],
        };
        assert_eq!(seen.first_signal(8).map(|s| s.t), Some(12));
        assert_eq!(seen.first_switch(8), Some(20));
        assert_eq!(seen.failovers(8), 2);
        assert_eq!(seen.failovers(30), 1);
        assert_eq!(seen.writable(8), Some(18));
        assert_eq!(seen.writable(19), None);
    }
}
