//! Changing a deployment: failovers, killing, freezing and restarting processes.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::error::{HarnessError, Result};
use super::handle::Deployment;
use super::ids::{NodeId, ProcessId, SentinelId};
use super::process::StartError;
use crate::wait::poll;

impl Deployment {
    /// Triggers a graceful failover of the first service (`SENTINEL FAILOVER`) and returns the
    /// master it replaces, without waiting for the failover to end (see
    /// [`Deployment::wait_for_new_master`] and [`Deployment::failover_and_wait`]).
    pub fn failover(&self) -> Result<NodeId> {
        self.failover_of(self.service_name())
    }

    /// Triggers a graceful failover of `service`; returns its master before the failover.
    ///
    /// First waits until the sentinels agree on the current master. While a sentinel answers
    /// `NOGOODSLAVE` or `INPROG` (e.g. right after another failover, before the sentinels have
    /// refreshed their view of the replicas) the next sentinel is asked, and the round repeated
    /// until [`DeploymentOptions::start_timeout`](super::DeploymentOptions::start_timeout).
    pub fn failover_of(&self, service: &str) -> Result<NodeId> {
        self.failover_asking(service, &self.sentinels())
    }

    /// Triggers a graceful failover of the first service led by `leader`: `SENTINEL FAILOVER`
    /// makes the sentinel it is sent to the leader, which alone publishes the failover's early
    /// signals (`+try-failover`, `+selected-slave`, ...) and promotes the candidate; the others
    /// learn of the new configuration from it, about a second later. Returns the master before
    /// the failover. Retried on `NOGOODSLAVE` / `INPROG` like [`Deployment::failover_of`]
    /// (a sentinel just started needs a moment to see the replicas).
    pub fn failover_led_by(&self, leader: SentinelId) -> Result<NodeId> {
        self.failover_asking(self.service_name(), &[leader])
    }

    /// `SENTINEL FAILOVER service`, asking `sentinels` in turn until one accepts.
    fn failover_asking(&self, service: &str, sentinels: &[SentinelId]) -> Result<NodeId> {
        let timeout = self.options.start_timeout;
        let old = self.wait_for_master(service, timeout)?;
        let start = Instant::now();
        poll(timeout, || {
            let mut refusals = Vec::new();
            for &sentinel in sentinels {
                if self.check_answering(sentinel.into()).is_err() {
                    continue;
                }
                let cmd = redis::cmd("SENTINEL").arg("FAILOVER").arg(service).clone();
                match self.query::<String>(sentinel, &cmd) {
                    Ok(_) => return Ok(()),
                    Err(e) => refusals.push(format!("{sentinel}: {e}")),
                }
            }
            Err(if refusals.is_empty() {
                "no sentinel is running".to_owned()
            } else {
                refusals.join("; ")
            })
        })
        .map_err(|detail| HarnessError::Timeout {
            what: format!("a sentinel to accept SENTINEL FAILOVER {service}"),
            waited: start.elapsed(),
            detail,
            logs: self.dir.clone(),
        })?;
        Ok(old)
    }

    /// [`Deployment::failover`], then [`Deployment::wait_for_new_master`]: returns the old and
    /// the new master of the first service.
    pub fn failover_and_wait(&self, timeout: Duration) -> Result<(NodeId, NodeId)> {
        let old = self.failover()?;
        let new = self.wait_for_new_master(old, timeout)?;
        Ok((old, new))
    }

    /// Kills the agreed master of the first service with SIGKILL and returns it.
    pub fn kill_master(&self) -> Result<NodeId> {
        let master = self.master()?;
        self.kill(master);
        Ok(master)
    }

    /// Kills a process with SIGKILL and reaps it (a no-op if it is not running). Its port,
    /// directory and config stay, so [`Deployment::revive`] can bring it back.
    pub fn kill(&self, id: impl Into<ProcessId>) {
        self.member(id).process().kill();
    }

    /// Freezes a process with SIGSTOP: its sockets stay open but it answers nothing, like a
    /// hung machine. Undo with [`Deployment::thaw`]; dropping the deployment kills it anyway.
    pub fn freeze(&self, id: impl Into<ProcessId>) -> Result<()> {
        self.member(id).process().signal(Signal::SIGSTOP)
    }

    /// Resumes a frozen process with SIGCONT.
    pub fn thaw(&self, id: impl Into<ProcessId>) -> Result<()> {
        self.member(id).process().signal(Signal::SIGCONT)
    }

    /// Starts a killed process again on the same port with the same directory and config file
    /// (as Redis rewrote it) and waits until it answers. A no-op if it runs.
    pub fn revive(&self, id: impl Into<ProcessId>) -> Result<()> {
        let member = self.member(id);
        let result = member.process().start(
            member.addr,
            &member.auth,
            self.tls.as_ref(),
            self.options.start_timeout,
        );
        match result {
            Ok(()) => Ok(()),
            Err(StartError::Failed(error)) => Err(error),
            Err(StartError::PortInUse) => Err(HarnessError::StartFailed {
                process: member.name.clone(),
                detail: format!("another program took its port {}", member.addr.port()),
                log: member.log.clone(),
            }),
        }
    }

    /// [`Deployment::kill`], then [`Deployment::revive`].
    pub fn restart(&self, id: impl Into<ProcessId>) -> Result<()> {
        let id = id.into();
        self.kill(id);
        self.revive(id)
    }

    /// Stops a sentinel (SIGKILL); the others keep running. Same as [`Deployment::kill`].
    pub fn stop_sentinel(&self, sentinel: SentinelId) {
        self.kill(sentinel);
    }

    /// Starts a stopped sentinel again on the same port with its own (rewritten) config.
    /// Same as [`Deployment::revive`].
    pub fn start_sentinel(&self, sentinel: SentinelId) -> Result<()> {
        self.revive(sentinel)
    }
}
