//! The output of a child process (our writers, the job pool, idle processes): one JSON object
//! per line on stdout, buffered and flushed every 20 ms by a thread (or at once on request), so
//! writing a line costs no system call on the measured path.

use dramatiq_sentinel_harness::sync::lock;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A cheap-to-clone line sink on stdout.
#[derive(Clone)]
pub(crate) struct Sink(Arc<Inner>);

struct Inner {
    buf: Mutex<Vec<u8>>,
    closed: AtomicBool,
}

impl Sink {
    /// A sink with its flushing thread.
    pub(crate) fn new() -> Self {
        let sink = Sink(Arc::new(Inner {
            buf: Mutex::new(Vec::with_capacity(1 << 16)),
            closed: AtomicBool::new(false),
        }));
        let flusher = sink.clone();
        std::thread::spawn(move || {
            while !flusher.0.closed.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
                flusher.flush();
            }
        });
        sink
    }

    /// Queues one line (`text` must not contain a newline).
    pub(crate) fn line(&self, text: &str) {
        let mut buf = lock(&self.0.buf);
        buf.extend_from_slice(text.as_bytes());
        buf.push(b'\n');
    }

    /// Queues a JSON object as one line.
    pub(crate) fn json(&self, value: &serde_json::Value) {
        self.line(&value.to_string());
    }

    /// Writes what is queued. Write errors are ignored: the parent went away, and the child
    /// ends when its stdin closes.
    pub(crate) fn flush(&self) {
        let pending = {
            let mut buf = lock(&self.0.buf);
            std::mem::take(&mut *buf)
        };
        if !pending.is_empty() {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&pending);
            let _ = out.flush();
        }
    }

    /// Flushes and stops the flushing thread.
    pub(crate) fn close(&self) {
        self.0.closed.store(true, Ordering::SeqCst);
        self.flush();
    }
}

/// Watches stdin on a thread: `on_line` is called with each trimmed line, and `on_end` once
/// stdin closes (the parent went away or finished).
pub(crate) fn watch_stdin(
    mut on_line: impl FnMut(&str) + Send + 'static,
    on_end: impl FnOnce() + Send + 'static,
) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        loop {
            line.clear();
            match stdin.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => on_line(line.trim()),
            }
        }
        on_end();
    });
}

/// A flag set when stdin says `word` or closes: how the writer and fleet children learn that
/// the driver is done with them.
pub(crate) fn stop_flag(word: &'static str) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let (on_line, on_end) = (Arc::clone(&stop), Arc::clone(&stop));
    watch_stdin(
        move |line| {
            if line == word {
                on_line.store(true, Ordering::SeqCst);
            }
        },
        move || on_end.store(true, Ordering::SeqCst),
    );
    stop
}

/// Follows the driver of a job workload on stdin: `producing` is set now and cleared at
/// `stop-producing`; `stop` is set at `quit` or when stdin closes.
pub(crate) fn follow_job_driver<C: Send + Sync + 'static>(
    ctl: &Arc<C>,
    producing: fn(&C) -> &AtomicBool,
    stop: fn(&C) -> &AtomicBool,
) {
    producing(ctl).store(true, Ordering::SeqCst);
    let (on_line, on_end) = (Arc::clone(ctl), Arc::clone(ctl));
    watch_stdin(
        move |line| match line {
            "stop-producing" => producing(&on_line).store(false, Ordering::SeqCst),
            "quit" => stop(&on_line).store(true, Ordering::SeqCst),
            _ => {}
        },
        move || stop(&on_end).store(true, Ordering::SeqCst),
    );
}
