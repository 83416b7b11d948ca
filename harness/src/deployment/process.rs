//! One `redis-server` process (data node or sentinel): spawn, readiness, signals, kill.

use crate::sync::lock;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::client::{Auth, connect};
use super::error::{HarnessError, Result};
use super::tls::TlsFiles;

/// Why a start attempt failed.
#[derive(Debug)]
pub(crate) enum StartError {
    /// The port was taken by someone else; retry with another port.
    PortInUse,
    /// Anything else.
    Failed(HarnessError),
}

impl From<HarnessError> for StartError {
    fn from(error: HarnessError) -> Self {
        Self::Failed(error)
    }
}

/// A `redis-server` child process with its config file and log file.
#[derive(Debug)]
pub(crate) struct RedisProcess {
    name: String,
    binary: PathBuf,
    conf: PathBuf,
    log: PathBuf,
    sentinel: bool,
    /// Run in a process group of its own (see [`DeploymentOptions::own_process_groups`]).
    ///
    /// [`DeploymentOptions::own_process_groups`]: super::DeploymentOptions::own_process_groups
    own_group: bool,
    child: Option<Child>,
    frozen: bool,
}

/// Pids of running processes started in process groups of their own: a terminal's Ctrl-C does
/// not reach them, so nothing stops them if this process exits without dropping its
/// deployments.
static DETACHED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// SIGKILLs every Redis process this process started in a process group of its own
/// ([`DeploymentOptions::own_process_groups`](super::DeploymentOptions::own_process_groups))
/// and has not stopped yet. For an exit that skips dropping the deployments, such as a second
/// Ctrl-C; deployments dropped later find their processes gone.
pub fn kill_detached() {
    for pid in lock(&DETACHED).drain(..) {
        if let Ok(pid) = i32::try_from(pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

impl RedisProcess {
    /// A stopped process; call [`RedisProcess::start`] to run it.
    pub(crate) fn new(
        name: String,
        binary: PathBuf,
        dir: &Path,
        sentinel: bool,
        own_group: bool,
    ) -> Self {
        let conf = dir.join(if sentinel {
            "sentinel.conf"
        } else {
            "redis.conf"
        });
        Self {
            name,
            binary,
            conf,
            log: dir.join("redis.log"),
            sentinel,
            own_group,
            child: None,
            frozen: false,
        }
    }

    pub(crate) fn conf(&self) -> &Path {
        &self.conf
    }

    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// The pid while the process runs.
    pub(crate) fn pid(&mut self) -> Option<u32> {
        self.reap();
        self.child.as_ref().map(Child::id)
    }

    /// True while the process runs (frozen counts as running).
    pub(crate) fn is_running(&mut self) -> bool {
        self.pid().is_some()
    }

    /// True while the process is stopped with SIGSTOP.
    pub(crate) fn is_frozen(&mut self) -> bool {
        self.is_running() && self.frozen
    }

    /// Starts the process (its config file must exist) and waits until it answers `INFO` with its
    /// own pid at `addr`.
    pub(crate) fn start(
        &mut self,
        addr: SocketAddr,
        auth: &Auth,
        tls: Option<&TlsFiles>,
        timeout: Duration,
    ) -> Result<(), StartError> {
        if self.is_running() {
            return Ok(());
        }
        let log_start = self.spawn()?;
        self.wait_ready(addr, auth, tls, timeout, log_start)
    }

    /// Spawns the process without waiting; returns the log size before, for
    /// [`RedisProcess::wait_ready`].
    pub(crate) fn spawn(&mut self) -> Result<u64> {
        let log_start = std::fs::metadata(&self.log).map_or(0, |m| m.len());
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| HarnessError::io(format!("opening {}", self.log.display()), e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| HarnessError::io("duplicating a log file handle", e))?;
        let mut command = Command::new(&self.binary);
        command.arg(&self.conf);
        if self.sentinel {
            command.arg("--sentinel");
        }
        if self.own_group {
            command.process_group(0);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| self.failed(format!("cannot spawn {}: {e}", self.binary.display())))?;
        if self.own_group {
            lock(&DETACHED).push(child.id());
        }
        self.child = Some(child);
        self.frozen = false;
        Ok(log_start)
    }

    /// Waits until the spawned process answers `INFO` with its own pid at `addr`; kills it if it
    /// does not.
    pub(crate) fn wait_ready(
        &mut self,
        addr: SocketAddr,
        auth: &Auth,
        tls: Option<&TlsFiles>,
        timeout: Duration,
        log_start: u64,
    ) -> Result<(), StartError> {
        let result: Result<(), StartError> = 'poll: {
            let deadline = Instant::now() + timeout;
            loop {
                if let Some(status) = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
                {
                    self.child = None;
                    let tail = log_since(&self.log, log_start);
                    if tail.contains("Address already in use") {
                        break 'poll Err(StartError::PortInUse);
                    }
                    break 'poll Err(self
                        .failed(format!("exited with {status}; log says: {tail}"))
                        .into());
                }
                let pid = self.child.as_ref().map(Child::id);
                let last = match connect(addr, auth, tls, Duration::from_secs(1))
                    .and_then(|mut c| redis::cmd("INFO").arg("server").query::<String>(&mut c))
                {
                    Ok(info) if info_field(&info, "process_id") == pid.map(|p| p.to_string()) => {
                        break 'poll Ok(());
                    }
                    Ok(_) => format!("another process answers on {addr}"),
                    Err(e) => e.to_string(),
                };
                if Instant::now() >= deadline {
                    break 'poll Err(self
                        .failed(format!("not answering on {addr} after {timeout:?}: {last}"))
                        .into());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        if result.is_err() {
            self.kill();
        }
        result
    }

    /// SIGKILL and reap; a no-op when not running.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error means the child already exited; `wait` reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
            lock(&DETACHED).retain(|&pid| pid != child.id());
        }
        self.frozen = false;
    }

    /// Sends SIGSTOP (freeze) or SIGCONT (thaw).
    pub(crate) fn signal(&mut self, signal: Signal) -> Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| HarnessError::NotRunning(self.name.clone()))?;
        let raw = i32::try_from(pid).map_err(|_| HarnessError::NotRunning(self.name.clone()))?;
        kill(Pid::from_raw(raw), signal).map_err(|source| HarnessError::Signal {
            signal: signal.as_str().to_owned(),
            process: self.name.clone(),
            pid,
            source,
        })?;
        match signal {
            Signal::SIGSTOP => self.frozen = true,
            Signal::SIGCONT => self.frozen = false,
            _ => {}
        }
        Ok(())
    }

    /// Forgets a child that exited on its own.
    fn reap(&mut self) {
        if let Some(child) = self.child.as_mut()
            && !matches!(child.try_wait(), Ok(None))
        {
            self.child = None;
            self.frozen = false;
        }
    }

    fn failed(&self, detail: String) -> HarnessError {
        HarnessError::StartFailed {
            process: self.name.clone(),
            detail,
            log: self.log.clone(),
        }
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The value of `field` in an `INFO` reply.
pub(crate) fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == field).then(|| value.trim().to_owned())
    })
}

/// The log written since byte `start`, at most the last 2000 bytes, on one line.
fn log_since(path: &Path, start: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path)
        && file.seek(SeekFrom::Start(start)).is_ok()
    {
        let _ = file.read_to_string(&mut text);
    }
    let mut cut = text.len().saturating_sub(2000);
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    text[cut..].trim().replace('\n', " | ")
}
