//! Child processes as the driver sees them: a writer, job pool or idle process that reports
//! JSON lines on stdout and takes commands on stdin.

use super::error::{Result, err};
use dramatiq_sentinel_harness::sync::lock;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running child. Dropping it kills it.
pub(crate) struct Child {
    name: String,
    process: std::process::Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<Value>>>,
    reader: Option<JoinHandle<()>>,
    stderr: PathBuf,
}

impl Child {
    /// Starts `cmd` with piped stdin/stdout; its stderr goes to `<logs>/<name>.stderr`.
    pub(crate) fn spawn(name: &str, mut cmd: Command, logs: &Path) -> Result<Self> {
        let stderr = logs.join(format!("{}.stderr", name.replace([' ', '/'], "_")));
        let file = std::fs::File::create(&stderr)?;
        let mut process = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(file))
            .spawn()
            .map_err(|e| err(format!("cannot start {name} ({cmd:?}): {e}")))?;
        let stdout = process
            .stdout
            .take()
            .ok_or_else(|| err(format!("{name}: no stdout")))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "raw": line }));
                lock(&sink).push(value);
            }
        });
        Ok(Self {
            name: name.to_owned(),
            stdin: process.stdin.take(),
            process,
            lines,
            reader: Some(reader),
            stderr,
        })
    }

    /// The last lines of the child's stderr, for error messages.
    pub(crate) fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Runs `f` on the lines received so far.
    pub(crate) fn with_lines<T>(&self, f: impl FnOnce(&[Value]) -> T) -> T {
        f(&lock(&self.lines))
    }

    /// Waits for the `{"ready": t}` line and returns `t`.
    pub(crate) fn wait_ready(&mut self, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let ready = self.with_lines(|lines| {
                lines
                    .iter()
                    .find_map(|v| v.get("ready").and_then(Value::as_u64))
            });
            if let Some(t) = ready {
                return Ok(t);
            }
            if let Ok(Some(status)) = self.process.try_wait() {
                return Err(err(format!(
                    "{} exited ({status}) before it was ready:\n{}",
                    self.name,
                    self.stderr_tail()
                )));
            }
            if Instant::now() >= deadline {
                return Err(err(format!(
                    "{} not ready within {timeout:?}:\n{}",
                    self.name,
                    self.stderr_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends one line on stdin (ignored if the child stopped reading).
    pub(crate) fn send(&mut self, line: &str) {
        if let Some(stdin) = &mut self.stdin {
            let _ = writeln!(stdin, "{line}");
            let _ = stdin.flush();
        }
    }

    /// Sends `line`, closes stdin, waits up to `timeout` for the child to exit (then kills
    /// it) and returns every line it reported.
    pub(crate) fn finish(mut self, line: &str, timeout: Duration) -> Result<Vec<Value>> {
        self.send(line);
        self.stdin = None;
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.process.try_wait()? {
                Some(status) => break Some(status),
                None if Instant::now() >= deadline => break None,
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        if status.is_none() {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let lines = std::mem::take(&mut *lock(&self.lines));
        match status {
            Some(s) if s.success() => Ok(lines),
            Some(s) => Err(err(format!(
                "{} failed ({s}):\n{}",
                self.name,
                self.stderr_tail()
            ))),
            None => {
                // Killed after the timeout: the lines so far still count, if it ended its loop.
                if lines.iter().any(|v| v.get("end").is_some()) {
                    Ok(lines)
                } else {
                    Err(err(format!(
                        "{} did not stop within {timeout:?}:\n{}",
                        self.name,
                        self.stderr_tail()
                    )))
                }
            }
        }
    }

    /// The child's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.process.id()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.process.try_wait() {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}
