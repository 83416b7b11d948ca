//! `fleet-floor`: the floor under the fleet benchmark's switch time on this machine. N tasks in
//! one process (one two-thread tokio runtime, as a fleet child) each open one connection to the
//! same Redis master at the same moment and make the one round trip a supervisor makes on the
//! connection that verifies a new master (`SELECT` of the fleet's database, `ROLE`, `INFO
//! replication`, pipelined), with nothing else going on: no sentinel, no old master, no
//! workers, no core. The time until the last of them has its answer is less than any switch of
//! N supervisors in one process can take here, since every supervisor must do at least this.
//! The fleet section of `failover-bench` measures it too, after each failover of a fleet in one
//! process, against that run's new master ([`p99_ms`]).
//!
//! Twice: *warm*, against a node that already held that many connections, and *cold*, against
//! a node restarted before each repetition, which holds as few connections as a replica whose
//! clients were few (a candidate watched through [`SharedConnections`]). A cold server grows
//! its descriptor table while it accepts them, and each doubling stalls it for an RCU grace
//! period (why: `supervisor/src/net/fd_table.rs`, which spares the client the same). A new
//! master takes its clients' connections cold, so the cold floor is the one under a switch.
//!
//! [`SharedConnections`]: dramatiq_sentinel_tokio::SharedConnections

use super::clock::now_ns;
use super::error::{Result, err};
use super::fleet_child::FLEET_DB;
use super::metrics::{pct, stats};
use super::ours;
use super::overhead::cpu_ns;
use super::tables::cell;
use dramatiq_sentinel_harness::{Deployment, DeploymentOptions, NodeId};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// Fleet sizes measured, and repetitions of each.
const SIZES: [usize; 3] = [50, 200, 500];
const REPS: usize = 5;

/// One repetition: the completion times (ms from the start) and the process's CPU per
/// connection (ms).
struct Rep {
    done_ms: Vec<f64>,
    cpu_ms: f64,
}

/// Runs `fleet-floor` (no arguments) and prints its table.
pub fn floor_main(args: Vec<String>) -> ExitCode {
    if !args.is_empty() {
        eprintln!("usage: fleet-floor (no arguments; see the module documentation)");
        return ExitCode::from(2);
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleet-floor: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `REPS` repetitions of `n` connections at once to `addr`, each on a runtime as a fleet
/// child's, after `prepare` (a pause, or a restart of the server).
fn measure(
    addr: SocketAddr,
    n: usize,
    mut prepare: impl FnMut() -> Result<()>,
) -> Result<Vec<Rep>> {
    let mut reps = Vec::new();
    for _ in 0..REPS {
        prepare()?;
        reps.push(ours::on_tokio(once(addr, n))??);
    }
    Ok(reps)
}

/// Warm: the connections of the repetition before have left the server and the kernel.
fn measure_warm(master: SocketAddr, n: usize) -> Result<Vec<Rep>> {
    measure(master, n, || {
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    })
}

/// Cold: `node` restarted before each repetition, its descriptor table as small as a node's
/// with few clients.
fn measure_cold(d: &Deployment, node: NodeId, n: usize) -> Result<Vec<Rep>> {
    measure(d.addr(node), n, || Ok(d.restart(node)?))
}

/// The median over the repetitions of their p99 (ms).
fn median_p99(reps: &[Rep]) -> Result<f64> {
    stats(&quantile(reps, 0.99))
        .map(|s| s.median)
        .ok_or_else(|| err("no repetition"))
}

/// The floor for a fleet run of `n` supervisors in one process, on the same machine and
/// deployment: the median over `REPS` repetitions of the p99 of `n` connections opened at once
/// to `master` (ms), warm.
pub(crate) fn p99_ms(master: SocketAddr, n: usize) -> Result<f64> {
    median_p99(&measure_warm(master, n)?)
}

/// [`p99_ms`], cold: against `node` (a replica) restarted before each repetition.
pub(crate) fn cold_p99_ms(d: &Deployment, node: NodeId, n: usize) -> Result<f64> {
    median_p99(&measure_cold(d, node, n)?)
}

/// Each repetition's completion time at quantile `q` (ms).
fn quantile(reps: &[Rep], q: f64) -> Vec<f64> {
    reps.iter().filter_map(|r| pct(&r.done_ms, q)).collect()
}

fn run() -> Result<()> {
    let d = Deployment::start(DeploymentOptions::default())?;
    let master = d.master()?;
    let replica = d
        .nodes()
        .into_iter()
        .find(|&node| node != master)
        .ok_or_else(|| err("the deployment has no replica"))?;
    println!(
        "N connections opened at once from one process (two-thread tokio runtime), each with \
         one pipelined `SELECT {FLEET_DB}` + `ROLE` + `INFO replication`; {REPS} repetitions \
         each, medians (min..max). Server *warm*: the master, which held as many connections \
         in the repetition before; *cold*: a replica restarted before each repetition (its \
         descriptor table grows while it accepts them, as a new master's does)\n"
    );
    println!("| N | server | p50 (ms) | p99 (ms) | last (ms) | client CPU per connection (ms) |");
    println!("|---|---|---|---|---|---|");
    let shown = |values: Vec<f64>| cell(&values.into_iter().map(Some).collect::<Vec<_>>());
    for n in SIZES {
        let warm = measure_warm(d.addr(master), n)?;
        let cold = measure_cold(&d, replica, n)?;
        for (server, reps) in [("warm", warm), ("cold", cold)] {
            println!(
                "| {n} | {server} | {} | {} | {} | {} |",
                shown(quantile(&reps, 0.5)),
                shown(quantile(&reps, 0.99)),
                shown(quantile(&reps, 1.0)),
                shown(reps.iter().map(|r| r.cpu_ms).collect())
            );
        }
    }
    println!(
        "\nReproduce: `cargo run --release -p dramatiq-sentinel-bench --bin fleet-floor` \
         ({})",
        dramatiq_sentinel_harness::RedisBinary::locate()?.describe()
    );
    Ok(())
}

/// `n` connections at once: their completion times and the CPU they cost.
async fn once(master: SocketAddr, n: usize) -> Result<Rep> {
    let info = ConnectionAddr::Tcp(master.ip().to_string(), master.port())
        .into_connection_info()?
        .set_redis_settings(RedisConnectionInfo::default().set_skip_set_lib_name());
    let client = redis::Client::open(info)?;
    let pid = std::process::id();
    let cpu_before = cpu_ns(pid)?;
    let start = now_ns();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut conn: MultiplexedConnection = client
                    .get_multiplexed_async_connection_with_config(&AsyncConnectionConfig::new())
                    .await?;
                let mut verify = redis::pipe();
                verify
                    .cmd("SELECT")
                    .arg(FLEET_DB)
                    .cmd("ROLE")
                    .cmd("INFO")
                    .arg("replication");
                conn.req_packed_commands(&verify, 0, 3).await?;
                Ok::<_, redis::RedisError>((now_ns(), conn))
            })
        })
        .collect();
    let mut done_ms = Vec::with_capacity(n);
    let mut open = Vec::with_capacity(n);
    for t in tasks {
        let (at, conn) = t.await.map_err(|e| err(format!("task: {e}")))??;
        done_ms.push((at - start) as f64 / 1e6);
        open.push(conn);
    }
    let cpu = cpu_ns(pid)?.saturating_sub(cpu_before) as f64;
    drop(open);
    Ok(Rep {
        done_ms,
        cpu_ms: cpu / 1e6 / n as f64,
    })
}
