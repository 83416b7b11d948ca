//! `fleet-floor`: the floor under the fleet benchmark's switch time on this machine. N tasks in
//! one process (one two-thread tokio runtime, as a fleet child) each open one connection to the
//! same Redis master at the same moment and make the one round trip a supervisor makes on the
//! connection that verifies a new master (`SELECT` of the fleet's database, `ROLE`, `INFO
//! replication`, pipelined), with nothing else going on: no sentinel, no old master, no
//! workers, no core. The time until the last of them has its answer is less than any switch of
//! N supervisors in one process can take here, since every supervisor must do at least this.
//! The fleet section of `failover-bench` measures it too, after each failover of a fleet in one
//! process, against that run's new master ([`p99_ms`]).

use super::clock::now_ns;
use super::error::{Result, err};
use super::fleet_child::FLEET_DB;
use super::metrics::{pct, stats};
use super::ours;
use super::overhead::cpu_ns;
use super::tables::cell;
use dramatiq_sentinel_harness::{Deployment, DeploymentOptions};
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

/// `REPS` repetitions of `n` connections at once to `master`, on a runtime as a fleet child's.
fn measure(master: SocketAddr, n: usize) -> Result<Vec<Rep>> {
    ours::on_tokio(async move {
        let mut reps = Vec::new();
        for _ in 0..REPS {
            reps.push(once(master, n).await?);
            // The closed connections leave the server and the kernel before the next round.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Ok(reps)
    })?
}

/// The floor for a fleet run of `n` supervisors in one process, on the same machine and
/// deployment: the median over `REPS` repetitions of the p99 of `n` connections opened at once
/// to `master` (ms).
pub(crate) fn p99_ms(master: SocketAddr, n: usize) -> Result<f64> {
    let p99s = quantile(&measure(master, n)?, 0.99);
    stats(&p99s)
        .map(|s| s.median)
        .ok_or_else(|| err("no repetition"))
}

/// Each repetition's completion time at quantile `q` (ms).
fn quantile(reps: &[Rep], q: f64) -> Vec<f64> {
    reps.iter().filter_map(|r| pct(&r.done_ms, q)).collect()
}

fn run() -> Result<()> {
    let d = Deployment::start(DeploymentOptions::default())?;
    let master = d.addr(d.master()?);
    println!(
        "N connections opened at once from one process (two-thread tokio runtime), each with \
         one pipelined `SELECT {FLEET_DB}` + `ROLE` + `INFO replication`; {REPS} repetitions \
         each, medians (min..max)\n"
    );
    println!("| N | p50 (ms) | p99 (ms) | last (ms) | client CPU per connection (ms) |");
    println!("|---|---|---|---|---|");
    let shown = |values: Vec<f64>| cell(&values.into_iter().map(Some).collect::<Vec<_>>());
    for n in SIZES {
        let reps = measure(master, n)?;
        println!(
            "| {n} | {} | {} | {} | {} |",
            shown(quantile(&reps, 0.5)),
            shown(quantile(&reps, 0.99)),
            shown(quantile(&reps, 1.0)),
            shown(reps.iter().map(|r| r.cpu_ms).collect())
        );
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
