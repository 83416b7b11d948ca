//! The master handle's steady-state path without a network: what a command costs through a
//! `MasterConnection` that kept its connection, against the same command on a plain
//! `MultiplexedConnection`, both over an in-memory stream to an in-process stand-in server
//! that answers `:1` to every command (so the figures are client-side work only), on a
//! current-thread tokio runtime. Also the steady-state check alone (handle -> connection).
//!
//! Run: `cargo bench -p dramatiq-sentinel-supervisor --features bench --bench fast_path`
//! Prints a table (median and min..max of 5 alternating runs; CPU time of the runtime's one
//! thread, from `/proc/thread-self/schedstat`). Not a test: nothing is asserted.
//!
//! For a profiler (e.g. `valgrind --tool=callgrind`, whose instruction counts are exact on a
//! busy machine): `ONLY=ours` or `ONLY=plain` (and `TASKS=n`, default 1) runs only that
//! client's round trips, once.

use dramatiq_sentinel_supervisor::bench;
use dramatiq_sentinel_supervisor::redis::aio::{ConnectionLike, MultiplexedConnection};
use dramatiq_sentinel_supervisor::{BoxFuture, RedisStream, Runtime};
use redis::{AsyncConnectionConfig, RedisConnectionInfo};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// Runs of each measurement.
const RUNS: usize = 5;
/// Commands per run of the round-trip measurements.
const COMMANDS: usize = 400_000;
/// Iterations per run of the steady-state check alone.
const CHECKS: u64 = 100_000_000;
/// The response timeout of both clients (the supervisor's default `command_timeout`).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A stand-in server on the other end of `stream`: `:1` for every command.
async fn serve(mut stream: DuplexStream) {
    let mut buf = Vec::with_capacity(1 << 16);
    let mut chunk = vec![0_u8; 1 << 16];
    let mut replies = Vec::with_capacity(1 << 12);
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut used = 0;
        while let Some(len) = bench::command_len(&buf[used..]) {
            used += len;
            replies.extend_from_slice(b":1\r\n");
        }
        buf.drain(..used);
        if !replies.is_empty() {
            if stream.write_all(&replies).await.is_err() {
                return;
            }
            replies.clear();
        }
    }
}

/// An in-memory stream to a new stand-in server.
fn stream(handle: &tokio::runtime::Handle) -> DuplexStream {
    let (client, server) = tokio::io::duplex(1 << 16);
    handle.spawn(serve(server));
    client
}

/// Tokio, whose `connect_tcp` gives an in-memory stream to a stand-in server.
struct InMemory(tokio::runtime::Handle);

impl Runtime for InMemory {
    fn spawn(&self, future: BoxFuture<'static, ()>) {
        drop(self.0.spawn(future));
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        let _entered = self.0.enter();
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn connect_tcp(
        &self,
        _host: &str,
        _port: u16,
    ) -> Option<BoxFuture<'static, std::io::Result<RedisStream>>> {
        let client = stream(&self.0);
        Some(Box::pin(async move { Ok(Box::pin(client) as RedisStream) }))
    }
}

/// A plain connection over an in-memory stream, set up as the supervisor sets up its own.
async fn plain(handle: &tokio::runtime::Handle) -> MultiplexedConnection {
    let info = RedisConnectionInfo::default().set_skip_set_lib_name();
    let config = AsyncConnectionConfig::new().set_response_timeout(Some(RESPONSE_TIMEOUT));
    let (conn, driver) = MultiplexedConnection::new_with_config(&info, stream(handle), config)
        .await
        .expect("plain connection");
    handle.spawn(driver);
    conn
}

/// CPU time of this thread (where the current-thread runtime runs every task), ns.
fn thread_cpu_ns() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// `tasks` tasks sending `INCR` on clones of `conn` until `COMMANDS` were answered: CPU ns
/// per command of the one thread everything runs on.
async fn round_trips<C: ConnectionLike + Clone + Send + 'static>(conn: &C, tasks: usize) -> f64 {
    let per_task = COMMANDS / tasks;
    let started = thread_cpu_ns();
    let mut running = Vec::new();
    for _ in 0..tasks {
        let mut conn = conn.clone();
        running.push(tokio::spawn(async move {
            let mut cmd = redis::cmd("INCR");
            cmd.arg("k");
            for _ in 0..per_task {
                let v: i64 = cmd.query_async(&mut conn).await.expect("answered");
                black_box(v);
            }
        }));
    }
    for t in running {
        t.await.expect("task");
    }
    (thread_cpu_ns() - started) / (per_task * tasks) as f64
}

/// Median, min and max.
fn summary(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn cell((median, min, max): (f64, f64, f64)) -> String {
    format!("{median:.1} ({min:.1}..{max:.1})")
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let handle = runtime.handle().clone();
    let rt: Arc<dyn Runtime> = Arc::new(InMemory(handle.clone()));
    let (ours, plain) = runtime.block_on(async {
        let mut ours = bench::handle(rt, "127.0.0.1", 6379).await.expect("handle");
        let plain = plain(&handle).await;
        // The first command takes the slow path and keeps the connection.
        let _: i64 = redis::cmd("INCR")
            .arg("k")
            .query_async(&mut ours)
            .await
            .expect("answered");
        assert!(bench::kept(&ours), "the handle kept its connection");
        (ours, plain)
    });

    if let Ok(only) = std::env::var("ONLY") {
        runtime.block_on(async {
            let tasks = std::env::var("TASKS")
                .ok()
                .and_then(|t| t.parse().ok())
                .unwrap_or(1);
            if only == "ours" {
                round_trips(&ours, tasks).await
            } else {
                round_trips(&plain, tasks).await
            }
        });
        return;
    }
    println!(
        "| measurement (CPU ns per command) | ours | plain `MultiplexedConnection` | ours - plain |"
    );
    println!("|---|---|---|---|");
    let mut checks = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        for _ in 0..CHECKS {
            black_box(bench::kept(black_box(&ours)));
        }
        checks.push(started.elapsed().as_nanos() as f64 / CHECKS as f64);
    }
    println!(
        "| steady-state check alone (handle -> its connection) | {} | – | – |",
        cell(summary(checks))
    );
    for tasks in [1, 16] {
        let (mut o, mut p, mut d) = (Vec::new(), Vec::new(), Vec::new());
        runtime.block_on(async {
            round_trips(&ours, tasks).await; // warm-up
            round_trips(&plain, tasks).await;
            for run in 0..RUNS {
                let (a, b) = if run % 2 == 0 {
                    let a = round_trips(&ours, tasks).await;
                    (a, round_trips(&plain, tasks).await)
                } else {
                    let b = round_trips(&plain, tasks).await;
                    (round_trips(&ours, tasks).await, b)
                };
                o.push(a);
                p.push(b);
                d.push(a - b);
            }
        });
        println!(
            "| `INCR` round trip in memory, {tasks} task{} on one thread | {} | {} | {} |",
            if tasks == 1 { "" } else { "s" },
            cell(summary(o)),
            cell(summary(p)),
            cell(summary(d))
        );
    }
    let (mut ours, mut plain) = (ours, plain);
    let (a, b) = bench::future_sizes(&mut ours, &mut plain);
    println!(
        "\nThe future of one command: {a} bytes through the handle, {b} on the plain connection."
    );
}
