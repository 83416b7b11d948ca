//! The `--local` story: acts played on the harness's deployment while the pool works.
//!
//! Every wait polls a condition against a deadline and gives up at once when the drill is
//! stopping; the only fixed delays are the pacing between acts.

use super::args::Act;
use super::error::DrillError;
use crate::output::{Out, human};
use dramatiq_sentinel_harness::WAIT;
use dramatiq_sentinel_harness::{Deployment, NodeId, redis};
use dramatiq_sentinel_supervisor::Addr;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tracing::info;

/// How often conditions are re-checked.
const POLL: Duration = Duration::from_millis(50);
/// Jobs the pool starts before the first act (at most one per worker: with long jobs, the
/// first ones complete only after the job time).
const WARM_UP_JOBS: usize = 20;

/// Why the story did not play to its end.
#[derive(Debug)]
pub(crate) enum Halt {
    /// The drill is stopping (a signal, or the supervisor stopped).
    Interrupted,
    /// An act did not complete.
    Failed(DrillError),
}

/// The story and what it needs to observe.
pub(crate) struct Story<'a> {
    pub(crate) d: &'a Deployment,
    pub(crate) acts: &'a [Act],
    pub(crate) interval: Duration,
    pub(crate) out: &'a Out,
    pub(crate) stopping: &'a AtomicBool,
    /// The master the supervisor uses now.
    pub(crate) supervisor_master: &'a (dyn Fn() -> Option<Addr> + Sync),
    /// Jobs the pool started so far.
    pub(crate) started: &'a (dyn Fn() -> usize + Sync),
    /// The pool's workers.
    pub(crate) workers: usize,
}

/// The address the supervisor uses for a node of the deployment.
pub(crate) fn addr(a: SocketAddr) -> Addr {
    Addr::new(a.ip().to_string(), a.port())
}

/// The act being played, for messages.
#[derive(Clone, Copy)]
struct Playing {
    n: usize,
    of: usize,
    act: Act,
}

impl Playing {
    fn label(self) -> String {
        format!("act {}/{}", self.n, self.of)
    }
}

impl Story<'_> {
    /// Plays every act, with the pacing before, between and after them.
    pub(crate) fn play(&self) -> Result<(), Halt> {
        let names: Vec<_> = self.acts.iter().map(|a| a.name()).collect();
        self.out.now(
            "story",
            &format!(
                "{}; {} between acts",
                names.join(", "),
                human(self.interval)
            ),
            json!({ "type": "story", "acts": names, "interval_s": self.interval.as_secs_f64() }),
        );
        let warm_up = WARM_UP_JOBS.min(self.workers.max(1));
        self.wait(None, "the pool to start its first jobs", WAIT, || {
            let c = (self.started)();
            if c >= warm_up {
                Ok(())
            } else {
                Err(format!("{c} of {warm_up} jobs started"))
            }
        })?;
        for (i, &act) in self.acts.iter().enumerate() {
            self.pace()?;
            let p = Playing {
                n: i + 1,
                of: self.acts.len(),
                act,
            };
            info!(act = p.act.name(), n = p.n, "playing an act");
            match act {
                Act::Graceful => self.graceful(p)?,
                Act::Kill => self.kill(p)?,
                Act::Freeze => self.freeze(p)?,
                Act::Unheard => self.unheard(p)?,
            }
        }
        self.pace()
    }

    fn say(&self, p: Playing, step: &str, text: &str) {
        self.out.now(
            &p.label(),
            text,
            json!({ "type": "act", "act": p.n, "of": p.of, "kind": p.act.name(),
                    "step": step, "text": text }),
        );
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Waits `interval` while the pool works, unless the drill stops.
    fn pace(&self) -> Result<(), Halt> {
        let end = Instant::now() + self.interval;
        while Instant::now() < end {
            if self.stopping() {
                return Err(Halt::Interrupted);
            }
            std::thread::sleep(POLL.min(end.saturating_duration_since(Instant::now())));
        }
        Ok(())
    }

    /// Polls `check` until it holds, `timeout` passes, or the drill stops.
    fn wait<T>(
        &self,
        p: Option<Playing>,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut() -> Result<T, String>,
    ) -> Result<T, Halt> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stopping() {
                return Err(Halt::Interrupted);
            }
            match check() {
                Ok(v) => return Ok(v),
                Err(last) if Instant::now() >= deadline => {
                    return Err(Halt::Failed(DrillError::Story {
                        act: p.map_or_else(
                            || "warm-up".to_owned(),
                            |p| format!("{}/{} {}", p.n, p.of, p.act.name()),
                        ),
                        detail: format!(
                            "timed out after {} waiting for {what}; last: {last}",
                            human(timeout)
                        ),
                    }));
                }
                Err(_) => std::thread::sleep(POLL),
            }
        }
    }

    fn harness(p: Playing, e: impl std::fmt::Display) -> Halt {
        Halt::Failed(DrillError::Story {
            act: format!("{}/{} {}", p.n, p.of, p.act.name()),
            detail: e.to_string(),
        })
    }

    fn master(&self, p: Playing) -> Result<NodeId, Halt> {
        self.wait(Some(p), "the sentinels to agree on a master", WAIT, || {
            self.d.master().map_err(|e| e.to_string())
        })
    }

    fn graceful(&self, p: Playing) -> Result<(), Halt> {
        let old = self.master(p)?;
        let service = self.d.service_name().to_owned();
        self.say(
            p,
            "trigger",
            &format!(
                "graceful failover: SENTINEL FAILOVER {service} (master {old} at {})",
                self.d.addr(old)
            ),
        );
        let cmd = redis::cmd("SENTINEL").arg("FAILOVER").arg(&service).clone();
        self.wait(
            Some(p),
            "a sentinel to accept SENTINEL FAILOVER",
            WAIT,
            || {
                let mut refusals = Vec::new();
                for s in self
                    .d
                    .sentinels()
                    .into_iter()
                    .filter(|&s| self.d.is_running(s))
                {
                    match self.d.query::<String>(s, &cmd) {
                        Ok(_) => return Ok(()),
                        Err(e) => refusals.push(format!("{s}: {e}")),
                    }
                }
                Err(refusals.join("; "))
            },
        )?;
        self.switched(p, old)?;
        self.healthy(p)
    }

    /// A graceful failover led by the first sentinel, restarted a moment before: only the
    /// leader publishes a failover's early signals, and the supervisor's listener to it is
    /// waiting its backoff.
    fn unheard(&self, p: Playing) -> Result<(), Halt> {
        let old = self.master(p)?;
        let leader = self.d.sentinels()[0];
        self.say(
            p,
            "restart",
            &format!(
                "restarting sentinel {leader} at {}: the supervisor's listener to it reconnects \
                 at once, fails, and waits its backoff",
                self.d.addr(leader)
            ),
        );
        self.d.stop_sentinel(leader);
        std::thread::sleep(POLL);
        self.d
            .start_sentinel(leader)
            .map_err(|e| Self::harness(p, e))?;
        self.say(
            p,
            "trigger",
            &format!(
                "SENTINEL FAILOVER sent to {leader}, which leads it unheard (master {old} at {}); \
                 the promoted replica closes its connections, which the supervisor watches",
                self.d.addr(old)
            ),
        );
        self.d
            .failover_led_by(leader)
            .map_err(|e| Self::harness(p, e))?;
        self.switched(p, old)?;
        self.healthy(p)
    }

    fn kill(&self, p: Playing) -> Result<(), Halt> {
        let old = self.master(p)?;
        let pid = self
            .d
            .pid(old)
            .map_or_else(|| "?".to_owned(), |p| p.to_string());
        self.say(
            p,
            "kill",
            &format!(
                "SIGKILL the master {old} at {} (pid {pid}); the sentinels notice after \
                 down-after-milliseconds ({})",
                self.d.addr(old),
                human(self.d.down_after())
            ),
        );
        self.d.kill(old);
        self.switched(p, old)?;
        self.say(
            p,
            "revive",
            &format!("restarting {old}: it rejoins as a replica"),
        );
        self.d.revive(old).map_err(|e| Self::harness(p, e))?;
        self.healthy(p)
    }

    fn freeze(&self, p: Playing) -> Result<(), Halt> {
        let old = self.master(p)?;
        self.say(
            p,
            "freeze",
            &format!(
                "SIGSTOP the master {old} at {}: it hangs with its connections open",
                self.d.addr(old)
            ),
        );
        self.d.freeze(old).map_err(|e| Self::harness(p, e))?;
        self.switched(p, old)?;
        self.say(
            p,
            "thaw",
            &format!("SIGCONT {old}: it rejoins as a replica"),
        );
        self.d.thaw(old).map_err(|e| Self::harness(p, e))?;
        self.healthy(p)
    }

    /// Waits until the sentinels agree on a new master and the supervisor uses it.
    fn switched(&self, p: Playing, old: NodeId) -> Result<(), Halt> {
        let new = self.wait(
            Some(p),
            "the sentinels to agree on a new master",
            WAIT,
            || {
                let node = self.d.master().map_err(|e| e.to_string())?;
                if node == old {
                    return Err(format!("they still agree on {old}"));
                }
                match self.d.role(node) {
                    Ok(role) if role.is_master() => Ok(node),
                    Ok(role) => Err(format!("{node} has ROLE {role:?}")),
                    Err(e) => Err(e.to_string()),
                }
            },
        )?;
        let want = addr(self.d.addr(new));
        let already = (self.supervisor_master)().as_ref() == Some(&want);
        self.wait(
            Some(p),
            "the supervisor to use the new master",
            WAIT,
            || {
                let now = (self.supervisor_master)();
                if now.as_ref() == Some(&want) {
                    Ok(())
                } else {
                    Err(format!("it uses {now:?}"))
                }
            },
        )?;
        self.say(
            p,
            "agreed",
            &format!(
                "the sentinels agree on {new} at {want}; the supervisor {}",
                if already {
                    "was already on it"
                } else {
                    "followed"
                }
            ),
        );
        Ok(())
    }

    /// Waits until every replica is linked to the master and the sentinels agree again.
    fn healthy(&self, p: Playing) -> Result<(), Halt> {
        self.wait(
            Some(p),
            "the deployment to be healthy again",
            2 * WAIT,
            || {
                self.d
                    .wait_healthy(Duration::from_millis(500))
                    .map_err(|e| e.to_string())
            },
        )?;
        self.say(
            p,
            "healthy",
            "deployment healthy again: every replica linked to the new master",
        );
        Ok(())
    }
}
