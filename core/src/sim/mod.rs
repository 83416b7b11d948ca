//! A deterministic simulator: the core against a simulated Sentinel deployment on a virtual
//! clock, with failovers, crashes, frozen masters, sentinel outages and partitions, message
//! drops, duplicates, delays and garbage, slow replies, slow or stuck worker pauses, and
//! failing broker connections as first-class steps. Every action and event the core emits is
//! checked against the oracles (see [`Sim::apply`]); a broken rule is a [`Violation`].
//!
//! Fuzz your own configuration offline:
//!
//! ```
//! use dramatiq_sentinel_core::sim::{Op, Settings, Sim};
//! use std::time::{Duration, Instant};
//!
//! # #[allow(clippy::disallowed_methods)]
//! let epoch = Instant::now(); // any instant: the simulation never reads the clock
//! let mut sim = Sim::new(Settings::default(), |c| c.periodic_check(Some(Duration::from_secs(5))), epoch)
//!     .expect("valid configuration");
//! for op in [Op::Advance(Duration::from_secs(1)), Op::GracefulFailover, Op::Advance(Duration::from_secs(3))] {
//!     sim.apply(&op).expect("no rule broken");
//! }
//! sim.settle(Duration::from_secs(120)).expect("converges to the new master");
//! assert_eq!(sim.stats().switches, 1);
//! assert_eq!(sim.stats().writes_lost, 0);
//! ```

mod oracle;
mod runtime;
mod world;

use crate::addr::Addr;
use crate::config::{Config, ConfigBuilder};
use crate::config_error::ConfigError;
use crate::event::AppErrorKind;
use crate::input::IoError;
use crate::machine::Core;
use crate::op::OpId;
use crate::reply::Reply;
use crate::rng::Rng;
use oracle::Oracle;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};
use world::{Health, Script, World};

/// The shape of the simulated deployment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Data nodes (the first starts as master), at least 2.
    pub nodes: usize,
    /// Sentinels, at least 1.
    pub sentinels: usize,
    /// How many of the sentinels the core's configuration lists (at least 1); it learns the
    /// others from `SENTINEL SENTINELS` when `refresh_sentinels` is on.
    pub configured: usize,
    /// Nodes and sentinels announce `10.0.x.y:6379` addresses that only the NAT map reaches.
    pub nat: bool,
    /// One-way network latency bounds.
    pub latency: (Duration, Duration),
    /// How long sentinels take to agree a dead or frozen master is down.
    pub down_after: Duration,
    /// The application writes through the master connection at this interval.
    pub write_interval: Duration,
    /// Seed of every random choice of the world.
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            nodes: 3,
            sentinels: 3,
            configured: 3,
            nat: false,
            latency: (Duration::from_micros(200), Duration::from_millis(2)),
            down_after: Duration::from_secs(2),
            write_interval: Duration::from_millis(50),
            seed: 0,
        }
    }
}

/// Faults applied to every pub/sub message a sentinel publishes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageFaults {
    /// Percent of messages lost with their connection (the listener hears of the break).
    pub drop_pct: u8,
    /// Percent of messages delivered twice.
    pub duplicate_pct: u8,
    /// Extra delay up to this bound (reorders messages across sentinels).
    pub max_delay: Duration,
}

/// How the workers respond to a pause request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseBehaviour {
    /// The jobs in flight finish after this long.
    Takes(Duration),
    /// A job never finishes: the pause times out.
    Stuck,
}

/// One step of a simulated scenario. Indexes are taken modulo the number of nodes or sentinels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Let virtual time pass.
    Advance(Duration),
    /// `SENTINEL FAILOVER`: the master is healthy, a replica is promoted.
    GracefulFailover,
    /// `SENTINEL FAILOVER` sent to this sentinel, which leads the failover (heard or not).
    GracefulFailoverLedBy(usize),
    /// The master is killed; sentinels fail over after `down_after`.
    CrashMaster,
    /// The master is frozen (SIGSTOP) and thawed after the duration; sentinels fail over
    /// meanwhile if it is long enough.
    FreezeMaster(Duration),
    /// A failover starts and the leader aborts it.
    AbortedFailover,
    /// A killed node starts again (as a replica unless it is still the master).
    RestartNode(usize),
    /// A sentinel is killed: its connections break, it refuses new ones.
    SentinelDown(usize),
    /// A sentinel is back.
    SentinelUp(usize),
    /// A sentinel is partitioned half-open: connections hang, its listeners go silent for good.
    SentinelPartition(usize),
    /// The process is cut off from a sentinel (its connections break, new ones are refused),
    /// which goes on with the others and may lead a failover nobody tells the process about.
    CutOff(usize),
    /// The process reaches a sentinel it was cut off from again.
    Reach(usize),
    /// Sets the message faults.
    Faults(MessageFaults),
    /// A sentinel publishes bytes of its own making to its subscribers.
    Garbage {
        /// The sentinel.
        sentinel: usize,
        /// Channel bytes.
        channel: Vec<u8>,
        /// Payload bytes.
        payload: Vec<u8>,
    },
    /// A service this process does not use fails over on the same sentinels.
    OtherServiceFailover,
    /// Sentinel replies are delayed by up to this (stale answers).
    SlowReplies(Duration),
    /// How workers respond to the next pause requests.
    Pause(PauseBehaviour),
    /// The next `n` broker connections fail.
    ConnectFailures(u32),
    /// The next `n` broker connections land on a replica (their `ROLE` says slave).
    ConnectToReplica(u32),
    /// The runtime fails the next `n` activations (the prepared connection is gone).
    ActivateFailures(u32),
    /// The application reports an error on the master connection.
    AppError(AppErrorKind),
}

/// A broken rule, with the end of the trace that led to it.
#[derive(Debug, Clone)]
pub struct Violation {
    /// Virtual time since the start.
    pub at: Duration,
    /// The rule and the facts.
    pub what: String,
    /// The last trace lines.
    pub trace: Vec<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "at {:?}: {}", self.at, self.what)?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violation {}

/// Counters of one simulation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Inputs fed to the core.
    pub inputs: u64,
    /// Actions the core emitted.
    pub actions: u64,
    /// Application writes acknowledged.
    pub writes_acked: u64,
    /// Acknowledged writes that a deposed master accepted (lost).
    pub writes_lost: u64,
    /// Switches completed.
    pub switches: u64,
    /// Failovers the world played.
    pub failovers: u64,
    /// Worker pauses the core asked for and the workers completed.
    pub pauses: u64,
    /// `ROLE` requests (`PollRole`, `Watch` and `Connect` actions) to the candidate of a
    /// failover in progress.
    pub role_requests: u64,
    /// Watch connections opened (on candidates and replicas).
    pub watches: u64,
    /// `WritesLost` events the core emitted.
    pub writes_lost_events: u64,
    /// Of those, the ones that carried the lost commands (read back from the old master).
    pub writes_handed_back: u64,
    /// Hand-backs of lost commands to the application before a switch resumed.
    pub handbacks: u64,
    /// Failovers led by a sentinel the process was cut off from, or had no listener subscribed
    /// to, when it began.
    pub unheard_failovers: u64,
    /// Switches the core detected by a replica's watch closing (path `replica-watch`).
    pub replica_watch_switches: u64,
    /// Watches on a candidate, on a replica of the master in use, that its promotion closed
    /// and whose closing reached the core while it used the old master.
    pub promotions_seen_by_watch: u64,
}

#[derive(Debug, Clone)]
enum Input {
    Subscribed(OpId),
    Message(OpId, Vec<u8>, Vec<u8>, Option<usize>),
    ListenerFailed(OpId, String),
    Pong(OpId),
    SentinelReply(OpId, Result<Reply, IoError>),
    NodeReply(OpId, Result<Reply, IoError>),
    Backlog(OpId, Result<Vec<u8>, IoError>),
    HandedBack(OpId),
    ResetDone(OpId),
    ResetFailed(OpId),
    WatchClosed(OpId),
    Paused(OpId),
    AppError(Addr, AppErrorKind),
}

#[derive(Debug, Clone)]
enum Due {
    World(Script),
    Input(Input),
    WriteTick,
}

/// The application's view: where its connection points and whether its commands are held
/// (from a fence until the new master is activated or the fence is lifted). Jobs in flight
/// write whenever commands are not held, also while new jobs wait for `Resume`.
#[derive(Debug, Default)]
struct App {
    node: Option<Addr>,
    held: bool,
    blocked_until: Option<Instant>,
}

/// The core in a simulated world. See the module documentation.
#[derive(Debug)]
pub struct Sim {
    core: Core,
    world: World,
    settings: Settings,
    rng: Rng,
    epoch: Instant,
    now: Instant,
    seq: u64,
    queue: BTreeMap<(Instant, u64), Due>,
    /// Live listener connections: op → sentinel.
    subs: BTreeMap<OpId, usize>,
    /// Delivery time of the last message per listener connection (FIFO order).
    fifo: BTreeMap<OpId, Instant>,
    /// The last epoch a `+new-epoch` delivered on each listener connection announced.
    conn_epochs: BTreeMap<OpId, u64>,
    app: App,
    /// A stuck pause was injected: a stop on a pause timeout is expected.
    stuck_injected: bool,
    faults: MessageFaults,
    slow_replies: Duration,
    pause: PauseBehaviour,
    connect_failures: u32,
    connect_to_replica: u32,
    activate_failures: u32,
    prepared: BTreeSet<OpId>,
    /// Open watch connections: op → the node, and the node it said it follows (its `ROLE`).
    watches: BTreeMap<OpId, (usize, Option<usize>)>,
    /// Watch connections a promotion closed: op → the failover, and the node the watched
    /// replica followed.
    promotion_closes: BTreeMap<OpId, (usize, Option<usize>)>,
    oracle: Oracle,
    stats: Stats,
    trace: Vec<String>,
    trace_window: usize,
}

const TRACE_KEEP: usize = 400;

impl Sim {
    /// A simulation of `settings`; `configure` adjusts the core's configuration (sentinels,
    /// service name and NAT map are set by the simulator). `epoch` is any instant: virtual
    /// time starts there.
    pub fn new(
        settings: Settings,
        configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
        epoch: Instant,
    ) -> Result<Self, ConfigError> {
        let world = World::new(
            settings.nodes.max(2),
            settings.sentinels.max(1),
            settings.nat,
            settings.down_after,
        );
        let mut builder = configure(Config::builder())
            .sentinels(
                world
                    .sentinels
                    .iter()
                    .take(settings.configured.max(1))
                    .map(|s| s.reachable.to_string()),
            )
            .service_name(world.service.clone());
        if settings.nat {
            for n in &world.nodes {
                builder = builder.nat(n.announced.to_string(), n.reachable.to_string());
            }
            for s in &world.sentinels {
                builder = builder.nat(s.announced.to_string(), s.reachable.to_string());
            }
        }
        let cfg = builder.build()?;
        let mut sim = Sim {
            core: Core::new(cfg.clone(), epoch),
            oracle: Oracle::new(cfg),
            rng: Rng::new(settings.seed),
            world,
            epoch,
            now: epoch,
            seq: 0,
            queue: BTreeMap::new(),
            subs: BTreeMap::new(),
            fifo: BTreeMap::new(),
            conn_epochs: BTreeMap::new(),
            app: App {
                held: true,
                ..App::default()
            },
            stuck_injected: false,
            faults: MessageFaults::default(),
            slow_replies: Duration::ZERO,
            pause: PauseBehaviour::Takes(Duration::from_millis(20)),
            connect_failures: 0,
            connect_to_replica: 0,
            activate_failures: 0,
            prepared: BTreeSet::new(),
            watches: BTreeMap::new(),
            promotion_closes: BTreeMap::new(),
            stats: Stats::default(),
            trace: Vec::new(),
            trace_window: 60,
            settings,
        };
        sim.schedule(sim.settings.write_interval, Due::WriteTick);
        sim.drain().map_err(|v| ConfigError::new("sim", v.what))?;
        Ok(sim)
    }

    /// The core under test.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The last lines of the trace (inputs, actions, events with virtual times).
    pub fn trace(&self) -> &[String] {
        &self.trace
    }

    /// How many trace lines a [`Violation`] carries (default 60).
    pub fn set_trace_window(&mut self, lines: usize) {
        self.trace_window = lines;
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now.saturating_duration_since(self.epoch)
    }

    /// Applies one step, running the world and the core through it.
    pub fn apply(&mut self, op: &Op) -> Result<(), Violation> {
        self.log(format!("op {op:?}"));
        let ms = Duration::from_millis;
        match op {
            Op::Advance(d) => return self.run_until(self.now + *d),
            Op::GracefulFailover => {
                let script = self
                    .world
                    .failover(Duration::ZERO, None, self.now, &mut self.rng);
                self.play(script);
            }
            Op::GracefulFailoverLedBy(i) => {
                let leader = i % self.world.sentinels.len();
                let script =
                    self.world
                        .failover(Duration::ZERO, Some(leader), self.now, &mut self.rng);
                // Unheard: cut off, or no listener subscribed to it (restarted, reconnecting).
                let listened = self.subs.values().any(|&s| s == leader);
                if !script.is_empty() && (!self.world.sentinels[leader].heard || !listened) {
                    self.stats.unheard_failovers += 1;
                }
                self.play(script);
            }
            Op::CrashMaster | Op::FreezeMaster(_) => {
                if !self.world.busy(self.now) {
                    let m = self.world.true_master();
                    let node = &mut self.world.nodes[m];
                    if node.health == Health::Up {
                        node.health = if matches!(op, Op::CrashMaster) {
                            Health::Down
                        } else {
                            Health::Hung
                        };
                        node.down_since = Some(self.now);
                        if matches!(op, Op::CrashMaster) {
                            self.close_watches(m);
                        }
                        let detect = self.world.down_after + self.rng.between(ms(0), ms(300));
                        let thaw = match op {
                            Op::FreezeMaster(d) => Some(*d),
                            _ => None,
                        };
                        if let Some(d) = thaw {
                            self.schedule(d, Due::World(Script::Thaw { node: m }));
                        }
                        // Sentinels fail over only if the master is still down when they decide.
                        if thaw.is_none_or(|d| d > detect) {
                            let script = self.world.failover(detect, None, self.now, &mut self.rng);
                            self.play(script);
                        }
                    }
                }
            }
            Op::AbortedFailover => {
                let script = self.world.aborted_failover(self.now, &mut self.rng);
                self.play(script);
            }
            Op::RestartNode(i) => {
                let i = i % self.world.nodes.len();
                let truth = self.world.true_master();
                let is_master = i == truth;
                let (offset, id) = (
                    self.world.nodes[truth].offset,
                    self.world.nodes[truth].replid,
                );
                let node = &mut self.world.nodes[i];
                if node.health == Health::Down {
                    node.health = Health::Up;
                    node.down_since = None;
                    node.writes_paused_until = None;
                    node.master = is_master;
                    node.deposed_by = None;
                    node.following = truth;
                    if !is_master {
                        // A replica resyncs with the master it comes back to.
                        node.peak_offset = node.peak_offset.max(node.offset);
                        node.offset = offset;
                        node.replid = id;
                        node.replid2 = None;
                    }
                }
            }
            Op::SentinelDown(i) => {
                let s = i % self.world.sentinels.len();
                self.world.sentinels[s].health = Health::Down;
                self.break_listeners(s);
            }
            Op::SentinelUp(i) => {
                let s = i % self.world.sentinels.len();
                self.world.sentinels[s].health = Health::Up;
            }
            Op::SentinelPartition(i) => {
                let s = i % self.world.sentinels.len();
                self.world.sentinels[s].health = Health::Hung;
                // Half-open: the listeners never hear from it again.
                self.subs.retain(|_, x| *x != s);
            }
            Op::CutOff(i) => {
                let s = i % self.world.sentinels.len();
                self.world.sentinels[s].heard = false;
                self.break_listeners(s);
            }
            Op::Reach(i) => {
                let s = i % self.world.sentinels.len();
                self.world.sentinels[s].heard = true;
            }
            Op::Faults(f) => self.faults = *f,
            Op::Garbage {
                sentinel,
                channel,
                payload,
            } => {
                let s = sentinel % self.world.sentinels.len();
                // Whatever a delivered message names counts as sentinel-reported, garbage too.
                self.publish(s, channel.clone(), payload.clone(), None);
            }
            Op::OtherServiceFailover => {
                let script = self.world.other_service_failover(&mut self.rng);
                self.play(script);
            }
            Op::SlowReplies(d) => self.slow_replies = *d,
            Op::Pause(p) => {
                self.pause = *p;
                self.stuck_injected |= *p == PauseBehaviour::Stuck;
            }
            Op::ConnectFailures(n) => self.connect_failures = *n,
            Op::ConnectToReplica(n) => self.connect_to_replica = *n,
            Op::ActivateFailures(n) => self.activate_failures = *n,
            Op::AppError(kind) => {
                if let Some(node) = self.app.node.clone() {
                    self.schedule(Duration::ZERO, Due::Input(Input::AppError(node, *kind)));
                }
            }
        }
        self.run_until(self.now)
    }

    /// Makes the world quiet (faults off, sentinels up, frozen nodes thawed, killed nodes
    /// restarted, pauses quick) and runs until the core uses the true master, unfenced, or
    /// `limit` passes (a [`Violation`]). Returns the virtual time it took. A core stopped by
    /// a pause timeout counts as settled only when a stuck pause was injected
    /// ([`PauseBehaviour::Stuck`]); any other stop is a [`Violation`].
    pub fn settle(&mut self, limit: Duration) -> Result<Duration, Violation> {
        self.log("settle".into());
        self.faults = MessageFaults::default();
        self.slow_replies = Duration::ZERO;
        self.connect_failures = 0;
        self.connect_to_replica = 0;
        self.activate_failures = 0;
        if self.pause != PauseBehaviour::Stuck {
            self.pause = PauseBehaviour::Takes(Duration::from_millis(20));
        }
        for s in 0..self.world.sentinels.len() {
            self.world.sentinels[s].health = Health::Up;
            self.world.sentinels[s].heard = true;
        }
        for n in 0..self.world.nodes.len() {
            match self.world.nodes[n].health {
                Health::Hung => self.schedule(Duration::ZERO, Due::World(Script::Thaw { node: n })),
                Health::Down => {
                    self.apply(&Op::RestartNode(n))?;
                }
                Health::Up => {}
            }
        }
        let start = self.now;
        let deadline = self.now + limit;
        while self.now < deadline {
            self.run_until(self.now + Duration::from_millis(100))?;
            if self.oracle.stopped {
                if self.stuck_injected && self.oracle.stopped_on_pause_timeout() {
                    return Ok(self.now.saturating_duration_since(start));
                }
                return Err(self.violation(format!(
                    "the core stopped without a stuck pause (pause timed out: {})",
                    self.oracle.stopped_on_pause_timeout()
                )));
            }
            if self.converged() && !self.world.busy(self.now) {
                return Ok(self.now.saturating_duration_since(start));
            }
        }
        let truth = &self.world.nodes[self.world.true_master()].reachable;
        Err(self.violation(format!(
            "no convergence within {limit:?}: core uses {:?} (fenced: {}), true master {truth}",
            self.core.master(),
            self.core.is_fenced()
        )))
    }

    fn converged(&self) -> bool {
        let truth = &self.world.nodes[self.world.true_master()].reachable;
        self.core.master() == Some(truth) && !self.core.is_fenced()
    }

    fn log(&mut self, line: String) {
        let keep = TRACE_KEEP.max(self.trace_window);
        if self.trace.len() >= keep * 2 {
            self.trace.drain(..keep);
        }
        let t = self.elapsed();
        self.trace.push(format!("{:>9.3}s {line}", t.as_secs_f64()));
    }

    fn violation(&self, what: String) -> Violation {
        let from = self.trace.len().saturating_sub(self.trace_window);
        Violation {
            at: self.elapsed(),
            what: format!("{what} (core epochs: {:?})", self.core.epochs()),
            trace: self.trace[from..].to_vec(),
        }
    }

    fn latency(&mut self) -> Duration {
        let (lo, hi) = self.settings.latency;
        self.rng.between(lo, hi)
    }

    fn schedule(&mut self, after: Duration, what: Due) {
        self.seq += 1;
        self.queue.insert((self.now + after, self.seq), what);
    }

    fn play(&mut self, script: Vec<(Duration, Script)>) {
        if script
            .iter()
            .any(|(_, s)| matches!(s, Script::Promote { .. }))
        {
            self.stats.failovers += 1;
        }
        for (at, step) in script {
            self.schedule(at, Due::World(step));
        }
    }

    fn run_until(&mut self, until: Instant) -> Result<(), Violation> {
        loop {
            let next_due = self.queue.keys().next().map(|(t, _)| *t);
            let next_timer = self.core.poll_timeout().map(|d| d.at);
            let next = match (next_due, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            if next_due == Some(next) {
                if let Some(((_, _), due)) = self.queue.pop_first() {
                    self.handle_due(due)?;
                }
            } else {
                self.core.handle_timeout(self.now);
                self.stats.inputs += 1;
                if let Some(d) = self.core.poll_timeout()
                    && d.at <= self.now
                {
                    return Err(
                        self.violation(format!("busy loop: deadline {:?} not after now", d.reason))
                    );
                }
            }
            self.drain()?;
        }
        self.now = self.now.max(until);
        Ok(())
    }

    fn handle_due(&mut self, due: Due) -> Result<(), Violation> {
        match due {
            Due::World(Script::Publish {
                sentinel,
                channel,
                payload,
                f,
            }) => {
                self.publish(sentinel, channel.into_bytes(), payload.into_bytes(), f);
            }
            Due::World(step) => {
                if let Script::Thaw { node } = step
                    && self.world.nodes[node].master
                    && node != self.world.true_master()
                {
                    // Sentinels reconfigure the thawed old master soon after.
                    let d = self
                        .rng
                        .between(Duration::from_millis(100), Duration::from_millis(300));
                    self.schedule(d, Due::World(Script::Demote { node }));
                }
                match step {
                    // Sentinel closes every client connection of the replica it promotes and
                    // of the nodes it reconfigures as replicas.
                    Script::Promote { f } => {
                        for (op, follows) in self.close_watches(self.world.failovers[f].candidate) {
                            self.promotion_closes.insert(op, (f, follows));
                        }
                    }
                    Script::Demote { node } => {
                        self.close_watches(node);
                    }
                    Script::Repoint { f } => {
                        for n in self.world.repointed(f) {
                            self.close_watches(n);
                        }
                    }
                    _ => {}
                }
                let demoted = match step {
                    Script::Demote { node } => self.world.nodes[node].master,
                    _ => false,
                };
                if let Some((s, ch, payload)) = self.world.apply(&step, self.now) {
                    let f = match step {
                        Script::Adopt { f, .. } => Some(f),
                        _ => None,
                    };
                    self.publish(s, ch.into_bytes(), payload.into_bytes(), f);
                    // A sentinel that adopts a new master finds its replicas anew (`+slave`).
                    if let Script::Adopt { s, .. } = step {
                        for (channel, payload) in self.world.replica_events("+slave", None) {
                            self.publish(s, channel, payload, None);
                        }
                    }
                }
                // A sentinel reconfigures a deposed master as a replica (`+convert-to-slave`).
                if let Script::Demote { node } = step
                    && demoted
                    && !self.world.nodes[node].master
                    && let Some(s) = self.world.random_up_sentinel(&mut self.rng)
                {
                    for (channel, payload) in
                        self.world.replica_events("+convert-to-slave", Some(node))
                    {
                        self.publish(s, channel, payload, None);
                    }
                }
            }
            Due::WriteTick => {
                self.write()?;
                let every = self.settings.write_interval;
                self.schedule(every, Due::WriteTick);
            }
            Due::Input(input) => self.feed(input)?,
        }
        Ok(())
    }

    /// The node closes the watch connections open on it; returns each with the node its
    /// `ROLE` said it followed.
    fn close_watches(&mut self, node: usize) -> Vec<(OpId, Option<usize>)> {
        let closed: Vec<(OpId, Option<usize>)> = self
            .watches
            .iter()
            .filter(|(_, (n, _))| *n == node)
            .map(|(op, (_, follows))| (*op, *follows))
            .collect();
        for &(op, _) in &closed {
            self.watches.remove(&op);
            let d = self.latency();
            self.schedule(d, Due::Input(Input::WatchClosed(op)));
        }
        closed
    }

    /// The live listener connections to sentinel `s`.
    fn listeners_of(&self, s: usize) -> Vec<OpId> {
        let ops = self.subs.iter().filter(|(_, x)| **x == s);
        ops.map(|(o, _)| *o).collect()
    }

    /// Every listener connection to sentinel `s` breaks.
    fn break_listeners(&mut self, s: usize) {
        for op in self.listeners_of(s) {
            self.subs.remove(&op);
            let d = self.latency();
            self.schedule(
                d,
                Due::Input(Input::ListenerFailed(op, "connection reset".into())),
            );
        }
    }

    /// Records the addresses a message delivered to the core names (master, candidate, new
    /// master) as sentinel-reported.
    pub(super) fn note_reported(&mut self, channel: &[u8], payload: &[u8]) {
        use crate::parse::{SentinelMessage, parse_message};
        let named = match parse_message(channel, payload) {
            Ok(Some(SentinelMessage::Failover {
                master, replica, ..
            })) => vec![Some(master), replica],
            Ok(Some(SentinelMessage::SwitchMaster { old, new, .. })) => vec![Some(old), Some(new)],
            _ => vec![],
        };
        for addr in named.into_iter().flatten() {
            let addr = self.core.config().nat.map(&addr);
            self.oracle.reported.insert(addr);
        }
    }

    fn publish(&mut self, s: usize, channel: Vec<u8>, payload: Vec<u8>, f: Option<usize>) {
        if self.world.sentinels[s].health != Health::Up {
            return;
        }
        for op in self.listeners_of(s) {
            if self.rng.chance(self.faults.drop_pct) {
                // A pub/sub connection loses nothing while it lives: a lost message means a
                // broken connection, which its listener hears of after the messages before.
                self.subs.remove(&op);
                let at = (self.now + self.latency())
                    .max(self.fifo.get(&op).copied().unwrap_or(self.now));
                let failed = Input::ListenerFailed(op, "connection reset".into());
                self.schedule(at.saturating_duration_since(self.now), Due::Input(failed));
                continue;
            }
            let copies = if self.rng.chance(self.faults.duplicate_pct) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                // One connection is FIFO: a delayed message holds back the ones behind it.
                // Messages of different sentinels reorder freely.
                let d = self.latency() + self.rng.between(Duration::ZERO, self.faults.max_delay);
                let at = (self.now + d).max(self.fifo.get(&op).copied().unwrap_or(self.now));
                self.fifo.insert(op, at);
                let msg = Input::Message(op, channel.clone(), payload.clone(), f);
                self.schedule(at.saturating_duration_since(self.now), Due::Input(msg));
            }
        }
    }

    fn write(&mut self) -> Result<(), Violation> {
        if self.app.held
            || self.oracle.stopped
            || self.app.blocked_until.is_some_and(|t| t > self.now)
        {
            return Ok(());
        }
        self.app.blocked_until = None;
        let Some(addr) = self.app.node.clone() else {
            return Ok(());
        };
        let error = match self
            .world
            .node_at(&addr)
            .map(|n| (n, self.world.nodes[n].health))
        {
            Some((n, Health::Up))
                if self.world.nodes[n]
                    .writes_paused_until
                    .is_some_and(|t| t > self.now) =>
            {
                let what = format!(
                    "a write of the application waits on {addr}, whose writes this process paused"
                );
                return Err(self.violation(what));
            }
            Some((n, Health::Up)) if self.world.nodes[n].master => {
                self.stats.writes_acked += 1;
                self.world.nodes[n].offset += 1;
                // Replication is instant to the replicas that follow this master and are up (a
                // candidate until its promotion; the others until they are re-pointed).
                let (offset, id) = (self.world.nodes[n].offset, self.world.nodes[n].replid);
                for r in &mut self.world.nodes {
                    if !r.master && r.health == Health::Up && r.following == n {
                        r.peak_offset = r.peak_offset.max(r.offset);
                        r.offset = offset;
                        r.replid = id;
                    }
                }
                if let Some(by) = self.world.nodes[n].deposed_by {
                    self.stats.writes_lost += 1;
                    return self.check_lost_write(n, by);
                }
                return Ok(());
            }
            Some((_, Health::Up)) => AppErrorKind::ReadOnly,
            Some((_, Health::Hung)) => {
                // The application's command timeout (the runtimes' default).
                let timeout = Duration::from_secs(5);
                self.app.blocked_until = Some(self.now + timeout);
                self.schedule(
                    timeout,
                    Due::Input(Input::AppError(addr, AppErrorKind::Timeout)),
                );
                return Ok(());
            }
            _ => AppErrorKind::Io,
        };
        let d = self.latency();
        self.schedule(d, Due::Input(Input::AppError(addr, error)));
        Ok(())
    }

    /// A write reached a deposed master: a violation if the failover's early signal had reached
    /// the core while it used that master (and early fencing is on, and no fence expired since).
    fn check_lost_write(&mut self, node: usize, by: usize) -> Result<(), Violation> {
        if !self.core.config().early_fencing {
            return Ok(());
        }
        let seen = self
            .world
            .failovers
            .iter()
            .rev()
            .find(|f| f.old == node && f.candidate == by)
            .and_then(|f| f.signal_seen_at);
        if let Some(seen) = seen
            && self.oracle.fence_expired_at.is_none_or(|t| t < seen)
        {
            let what = format!(
                "write acknowledged by deposed master {} after the failover signal reached the core at {:?}",
                self.world.nodes[node].reachable,
                seen.saturating_duration_since(self.epoch)
            );
            return Err(self.violation(what));
        }
        Ok(())
    }
}
