//! The fleet benchmark: N supervisors (spread over processes of 50, or of any size) with a worker
//! gate each, on one deployment, through a graceful failover, a master kill, or a sentinel
//! restart. Measured across the fleet: candidate writable (the observer's probe) to each
//! supervisor's workers resumed; the client processes' CPU time the switch took, per
//! supervisor; commands and connections the candidate and each sentinel received during the
//! failover (`INFO commandstats` / `INFO stats` deltas); sentinel CPU; connections per second
//! to the dead master (a counting stand-in bound to its port after the kill); after a sentinel
//! restart, when each supervisor's listener reconnected to it.

use super::child::Child;
use super::clock::{ms_between, now_ns};
use super::error::{Result, err};
use super::observer::Observer;
use super::overhead::cpu_ns;
use super::run::{Ctx, load1, trigger};
use super::scenario::Scenario;
use dramatiq_sentinel_harness::{Deployment, DeploymentOptions, NodeId, ProcessId, SentinelId};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Supervisors per child process, unless `--fleet-per-process` says otherwise.
pub(crate) const PER_PROCESS: usize = 50;
/// Worker tasks per supervisor.
pub(crate) const TASKS: usize = 2;
/// Worker tasks per supervisor of [`FleetScenario::KillBusy`].
pub(crate) const BUSY_TASKS: usize = 10;
/// The largest fleet [`FleetScenario::KillBusy`] runs with.
pub(crate) const BUSY_MAX: usize = 50;
/// The fleet sizes of a full run.
pub(crate) const SIZES: [usize; 4] = [1, 50, 200, 500];

/// What happens to the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FleetScenario {
    /// A failover: graceful or a master kill.
    Failover(Scenario),
    /// A master kill with [`BUSY_TASKS`] worker tasks per supervisor instead of [`TASKS`]
    /// (fleets of at most [`BUSY_MAX`]): the connects to the dead master must not grow.
    KillBusy,
    /// A sentinel stopped for 2 s, then started again.
    SentinelRestart,
}

impl FleetScenario {
    /// The scenario with this id (as in file names).
    pub(crate) fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.id() == id)
    }

    /// The scenarios of a full run.
    pub(crate) const ALL: [FleetScenario; 4] = [
        FleetScenario::Failover(Scenario::Graceful),
        FleetScenario::Failover(Scenario::Kill),
        FleetScenario::KillBusy,
        FleetScenario::SentinelRestart,
    ];

    /// Whether a fleet of `n` runs this scenario.
    pub(crate) fn runs_with(self, n: usize) -> bool {
        self != FleetScenario::KillBusy || n <= BUSY_MAX
    }

    /// Worker tasks per supervisor.
    pub(crate) fn tasks(self) -> usize {
        match self {
            FleetScenario::KillBusy => BUSY_TASKS,
            _ => TASKS,
        }
    }

    /// The id in file names.
    pub(crate) fn id(self) -> &'static str {
        match self {
            FleetScenario::Failover(s) => s.id(),
            FleetScenario::KillBusy => "kill-busy",
            FleetScenario::SentinelRestart => "sentinel-restart",
        }
    }

    /// The label in the tables.
    pub(crate) fn label(self) -> &'static str {
        match self {
            FleetScenario::Failover(s) => s.label(),
            FleetScenario::KillBusy => "master SIGKILL, 10 tasks per supervisor",
            FleetScenario::SentinelRestart => "sentinel restarted after 2 s",
        }
    }
}

/// One fleet run.
#[derive(Debug, Clone)]
pub(crate) struct FleetResult {
    pub(crate) processes: usize,
    /// Supervisors per process (the last one may have fewer).
    pub(crate) per_process: usize,
    /// The client processes' CPU time for the switch, per supervisor (ms): their CPU time from
    /// the trigger to 1 s after the last supervisor was done, less what they use at rest over
    /// as long (measured over the 2 s before the trigger).
    pub(crate) switch_cpu_ms: Option<f64>,
    /// The client processes' CPU use over that window, % of one core.
    pub(crate) client_cpu_pct: Option<f64>,
    /// Supervisors still running 45 s after the shutdown of their process began.
    pub(crate) not_stopped: u64,
    /// Per supervisor that reported it: candidate writable to workers resumed (ms).
    pub(crate) resumed_ms: Vec<f64>,
    /// Supervisors that did not report what the scenario waits for.
    pub(crate) missing: usize,
    /// The window the rates are over: trigger to the last supervisor done (s).
    pub(crate) window_s: f64,
    /// Commands per second the candidate (the new master) received, and its top commands.
    pub(crate) candidate_cmds_per_s: Option<f64>,
    pub(crate) candidate_top: Vec<(String, u64)>,
    /// Connections the candidate accepted during the window.
    pub(crate) candidate_connects: Option<u64>,
    /// Commands per second each sentinel received, and its CPU (% of a core).
    pub(crate) sentinel_cmds_per_s: Vec<f64>,
    pub(crate) sentinel_cpu_pct: Vec<f64>,
    /// Kill: connections per second to the dead master's port.
    pub(crate) dead_connects_per_s: Option<f64>,
    /// Sentinel restart: restart to each supervisor's listener up again (ms).
    pub(crate) reconnect_ms: Vec<f64>,
    /// Connections the kernel dropped because a listen queue was full (`ListenOverflows` of
    /// `/proc/net/netstat`, the whole machine) during the window.
    pub(crate) listen_overflows: Option<u64>,
    /// The data nodes' `tcp-backlog` (`None`: Redis's default, 511).
    pub(crate) backlog: Option<u32>,
    pub(crate) load: f64,
    /// A failover of a fleet in one process: the floor under its switch, measured right after
    /// it on the new master (`fleet-floor`'s p99 for N connections, median of its
    /// repetitions, ms), whose descriptor table is warm by then.
    pub(crate) floor_p99_ms: Option<f64>,
    /// The same against a replica restarted before each repetition: a server whose descriptor
    /// table grows while it accepts them, as the new master's did in the switch.
    pub(crate) cold_floor_p99_ms: Option<f64>,
}

/// Counters of one server, from `INFO` (sentinels have no `commandstats` section: only the
/// total of `INFO stats`).
#[derive(Debug, Clone, Default)]
struct Counters {
    calls: BTreeMap<String, u64>,
    commands: u64,
    connections: u64,
}

fn counters(d: &Deployment, id: impl Into<ProcessId>) -> Option<Counters> {
    let id = id.into();
    let stats: String = d.query(id, redis::cmd("INFO").arg("commandstats")).ok()?;
    let info: String = d.query(id, redis::cmd("INFO").arg("stats")).ok()?;
    let mut c = Counters::default();
    for line in stats.lines() {
        // cmdstat_role:calls=12,usec=...
        if let Some((name, rest)) = line
            .strip_prefix("cmdstat_")
            .and_then(|l| l.split_once(':'))
            && let Some(calls) = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))
                .and_then(|v| v.parse().ok())
        {
            c.calls.insert(name.to_owned(), calls);
        }
    }
    let stat = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    c.connections = stat("total_connections_received");
    c.commands = stat("total_commands_processed");
    Some(c)
}

/// `after - before`: the commands in all, and per command, largest first.
fn delta(before: Option<&Counters>, after: &Counters) -> (u64, Vec<(String, u64)>) {
    let mut rows: Vec<(String, u64)> = after
        .calls
        .iter()
        .map(|(k, v)| {
            let was = before.and_then(|b| b.calls.get(k)).copied().unwrap_or(0);
            (k.clone(), v.saturating_sub(was))
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    let total = after
        .commands
        .saturating_sub(before.map_or(0, |b| b.commands));
    (total, rows)
}

/// Accepts and closes every connection to `addr` (a killed master's port), counting them.
struct DeadMaster {
    accepted: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl DeadMaster {
    fn bind(addr: SocketAddr) -> Result<Self> {
        let deadline = Instant::now() + Duration::from_secs(2);
        let listener = loop {
            match TcpListener::bind(addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() >= deadline => {
                    return Err(err(format!(
                        "cannot bind the dead master's port {addr}: {e}"
                    )));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        listener.set_nonblocking(true)?;
        let accepted = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, done) = (Arc::clone(&accepted), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        drop(stream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        Ok(Self { accepted, stop })
    }

    fn count(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for DeadMaster {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The fleet's children, `per_process` supervisors each: each reports its supervisors' events.
fn start_fleet(
    ctx: &Ctx,
    d: &Deployment,
    n: usize,
    per_process: usize,
    tasks: usize,
) -> Result<Vec<(usize, Child)>> {
    let mut children = Vec::new();
    let mut offset = 0;
    while offset < n {
        let k = per_process.min(n - offset);
        let mut cmd = ctx.rust_child("fleet", "ours-tokio", d);
        cmd.arg("--supervisors")
            .arg(k.to_string())
            .arg("--workers")
            .arg(tasks.to_string());
        let name = format!("fleet-{n}-{}", children.len());
        children.push((offset, Child::spawn(&name, cmd, &ctx.logs)?));
        offset += k;
    }
    for (_, child) in &mut children {
        child.wait_ready(Duration::from_secs(180))?;
    }
    Ok(children)
}

/// Per supervisor (global index), the first time of event `ev` at or after `t0` (for `up`,
/// only about `sentinel`).
fn first_events(
    children: &[(usize, Child)],
    ev: &str,
    t0: u64,
    sentinel: Option<&str>,
) -> BTreeMap<usize, u64> {
    let mut out = BTreeMap::new();
    for (offset, child) in children {
        child.with_lines(|lines| {
            for v in lines {
                let matches = v.get("ev").and_then(Value::as_str) == Some(ev)
                    && sentinel.is_none_or(|s| v.get("s").and_then(Value::as_str) == Some(s));
                let (Some(sup), Some(t)) = (
                    v.get("sup").and_then(Value::as_u64),
                    v.get("t").and_then(Value::as_u64),
                ) else {
                    continue;
                };
                if matches && t >= t0 {
                    out.entry(offset + sup as usize).or_insert(t);
                }
            }
        });
    }
    out
}

/// The CPU time of every child, ns.
fn children_cpu(children: &[(usize, Child)]) -> Option<u64> {
    children
        .iter()
        .map(|(_, c)| cpu_ns(c.pid()).ok())
        .sum::<Option<u64>>()
}

/// One fleet run of `n` supervisors, `per_process` per child process, in `scenario`.
pub(crate) fn fleet_run(
    ctx: &Ctx,
    n: usize,
    per_process: usize,
    scenario: FleetScenario,
    backlog: Option<u32>,
) -> Result<FleetResult> {
    let load = load1();
    let mut options = DeploymentOptions::default().down_after(Duration::from_millis(1000));
    if let Some(b) = backlog {
        options = options.tcp_backlog(b);
    }
    let d = Deployment::start(options)?;
    let old = d.master()?;
    let observer = Observer::start(&d, old, "bench:probe")?;
    let mut children = start_fleet(ctx, &d, n, per_process, scenario.tasks())?;
    std::thread::sleep(Duration::from_secs(2));
    // The fleet at rest, for the CPU time the switch took.
    let rest_start = (Instant::now(), children_cpu(&children));
    std::thread::sleep(Duration::from_secs(2));
    let rest_end = (Instant::now(), children_cpu(&children));
    let sentinels: Vec<SentinelId> = d.sentinels();
    let restarted = sentinels[0];
    let nodes: Vec<NodeId> = d.nodes();
    let before_nodes: BTreeMap<NodeId, Counters> = nodes
        .iter()
        .filter_map(|&id| Some((id, counters(&d, id)?)))
        .collect();
    let before_sentinels: Vec<Option<Counters>> =
        sentinels.iter().map(|&s| counters(&d, s)).collect();
    let cpu = |s: SentinelId| d.pid(s).and_then(|pid| cpu_ns(pid).ok());
    let cpu_before: Vec<Option<u64>> = sentinels.iter().map(|&s| cpu(s)).collect();
    let overflows_before = listen_overflows();
    let mut dead = None;
    let (t0, waited_ev, about) = match scenario {
        FleetScenario::Failover(Scenario::Kill) | FleetScenario::KillBusy => {
            let t0 = now_ns();
            d.kill(old);
            dead = Some(DeadMaster::bind(d.addr(old))?);
            (t0, "resumed", None)
        }
        FleetScenario::Failover(s) => (trigger(&d, s, old)?, "resumed", None),
        FleetScenario::SentinelRestart => {
            d.stop_sentinel(restarted);
            std::thread::sleep(Duration::from_secs(2));
            // Measured from the start command: listeners may reconnect before it returns.
            let t0 = now_ns();
            d.start_sentinel(restarted)?;
            (t0, "up", Some(d.addr(restarted).to_string()))
        }
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs(90);
    let done = loop {
        let done = first_events(&children, waited_ev, t0, about.as_deref());
        if done.len() >= n || Instant::now() >= deadline {
            break done;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let t_end = done.values().max().copied().unwrap_or_else(now_ns);
    let window_s = (ms_between(t0, t_end) / 1e3).max(0.001);
    // The CPU time of the switch: up to 1 s after the last supervisor was done (late pub/sub
    // messages, connections closing), less the rate at rest over as long.
    std::thread::sleep(Duration::from_secs(1));
    let busy_end = (Instant::now(), children_cpu(&children));
    let (switch_cpu_ms, client_cpu_pct) = match (rest_start, rest_end, busy_end) {
        ((a, Some(ca)), (b, Some(cb)), (c, Some(cc))) => {
            let rest_rate = cb.saturating_sub(ca) as f64 / (b - a).as_secs_f64();
            let busy = (c - b).as_secs_f64();
            let used = cc.saturating_sub(cb) as f64;
            (
                Some((used - rest_rate * busy) / 1e6 / n as f64),
                Some(used / 1e9 / busy * 100.0),
            )
        }
        _ => (None, None),
    };
    let dead_connects = dead.as_ref().map(DeadMaster::count);
    let overflows = listen_overflows()
        .zip(overflows_before)
        .map(|(a, b)| a.saturating_sub(b));
    let after_nodes: BTreeMap<NodeId, Counters> = nodes
        .iter()
        .filter_map(|&id| Some((id, counters(&d, id)?)))
        .collect();
    let after_sentinels: Vec<Option<Counters>> =
        sentinels.iter().map(|&s| counters(&d, s)).collect();
    let cpu_after: Vec<Option<u64>> = sentinels.iter().map(|&s| cpu(s)).collect();
    let seen = observer.stop();
    let candidate = match scenario {
        FleetScenario::SentinelRestart => None,
        _ => d.wait_for_new_master(old, Duration::from_secs(30)).ok(),
    };
    let (candidate_cmds, candidate_top, candidate_connects) =
        match candidate.and_then(|c| Some((before_nodes.get(&c), after_nodes.get(&c)?))) {
            Some((b, a)) => {
                let (total, top) = delta(b, a);
                let connects = a.connections - b.map_or(0, |b| b.connections);
                (Some(total as f64 / window_s), top, Some(connects))
            }
            None => (None, Vec::new(), None),
        };
    let sentinel_cmds = before_sentinels
        .iter()
        .zip(&after_sentinels)
        .map(|(b, a)| {
            a.as_ref()
                .map_or(f64::NAN, |a| delta(b.as_ref(), a).0 as f64 / window_s)
        })
        .collect();
    let sentinel_cpu = cpu_before
        .iter()
        .zip(&cpu_after)
        .enumerate()
        .map(|(i, (b, a))| match (b, a) {
            // The restarted sentinel's counters started again with its new process.
            (_, Some(a))
                if sentinels[i] == restarted && scenario == FleetScenario::SentinelRestart =>
            {
                *a as f64 / 1e9 / window_s * 100.0
            }
            (Some(b), Some(a)) => a.saturating_sub(*b) as f64 / 1e9 / window_s * 100.0,
            _ => f64::NAN,
        })
        .collect();
    let (resumed_ms, reconnect_ms) = match scenario {
        FleetScenario::Failover(_) | FleetScenario::KillBusy => {
            let writable = seen
                .writable(t0)
                .ok_or_else(|| err("the observer saw no candidate become writable"))?;
            (
                done.values().map(|&t| ms_between(writable, t)).collect(),
                Vec::new(),
            )
        }
        FleetScenario::SentinelRestart => (
            Vec::new(),
            done.values().map(|&t| ms_between(t0, t)).collect(),
        ),
    };
    let mut lines = Vec::new();
    for (offset, child) in children.drain(..) {
        for mut v in child.finish("quit", Duration::from_secs(60))? {
            if let Some(sup) = v.get("sup").and_then(Value::as_u64) {
                v["sup"] = Value::from(offset as u64 + sup);
            }
            lines.push(v);
        }
    }
    ctx.keep_raw(&format!("fleet-{n}-{}", scenario.id()), t0, &lines, &seen);
    // The children are gone: the machine is as quiet as the benchmark leaves it.
    let (floor_p99_ms, cold_floor_p99_ms) = match (scenario, candidate) {
        (FleetScenario::Failover(_), Some(new)) if n <= per_process => {
            // Cold: the replica that was neither master, restarted (the run is over).
            let third = d.nodes().into_iter().find(|&x| x != new && x != old);
            (
                super::floor::p99_ms(d.addr(new), n).ok(),
                third.and_then(|x| super::floor::cold_p99_ms(&d, x, n).ok()),
            )
        }
        _ => (None, None),
    };
    let not_stopped = lines
        .iter()
        .filter_map(|v| v.get("not_stopped").and_then(Value::as_u64))
        .sum();
    Ok(FleetResult {
        processes: n.div_ceil(per_process),
        per_process,
        not_stopped,
        switch_cpu_ms,
        client_cpu_pct,
        missing: n.saturating_sub(done.len()),
        resumed_ms,
        window_s,
        candidate_cmds_per_s: candidate_cmds,
        candidate_top,
        candidate_connects,
        sentinel_cmds_per_s: sentinel_cmds,
        sentinel_cpu_pct: sentinel_cpu,
        dead_connects_per_s: dead_connects.map(|c| c as f64 / window_s),
        reconnect_ms,
        listen_overflows: overflows,
        backlog,
        load,
        floor_p99_ms,
        cold_floor_p99_ms,
    })
}

/// `TcpExt: ListenOverflows` of `/proc/net/netstat`.
fn listen_overflows() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let at = names
        .split_whitespace()
        .position(|n| n == "ListenOverflows")?;
    values.split_whitespace().nth(at)?.parse().ok()
}
