//! The writer workload in a child process, for our variants and the `redis` crate's own
//! sentinel client: every 1 ms an `INCR <prefix>:ctr` and an `RPUSH <prefix>:list <seq>`,
//! reported as JSON lines (the protocol of `bench/bench-peers/writer.py`):
//! `{"ready": t}`, `{"a": seq, "t": t}` per acknowledged write, `{"e": seq, "t": t, "m": msg}`
//! per error surfaced, our supervisor's events as `{"ev", "t", "d"}`, and
//! `{"end": t, "acks": n, "errors": n}`. It stops on a `stop` line or EOF on stdin.

use super::child_args::ChildArgs;
use super::clock::now_ns;
use super::emit::{Sink, stop_flag};
use super::error::{Result, err};
use super::ours::{self, Exec, Ours};
use dramatiq_sentinel_supervisor::{MasterConnection, Runtime, Supervisor};
use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClient, SentinelServerType};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The pace of the workload.
const TICK: Duration = Duration::from_millis(1);
/// A writer that fell behind by less than this catches up (timers are coarse); after a longer
/// stall it goes on from now, without a burst.
const CATCH_UP: Duration = Duration::from_millis(10);

/// One write of the workload through some client.
trait WriteOnce {
    /// `INCR ctr` then `RPUSH list seq`; the error text if either failed.
    async fn write(&mut self, ctr: &str, list: &str, seq: u64) -> Result<(), String>;
}

async fn incr_rpush<C: redis::aio::ConnectionLike>(
    conn: &mut C,
    ctr: &str,
    list: &str,
    seq: u64,
) -> redis::RedisResult<()> {
    redis::cmd("INCR").arg(ctr).query_async::<i64>(conn).await?;
    redis::cmd("RPUSH")
        .arg(list)
        .arg(seq)
        .query_async::<i64>(conn)
        .await?;
    Ok(())
}

/// Our master connection: it follows failovers itself.
struct OursWriter(MasterConnection);

impl WriteOnce for OursWriter {
    async fn write(&mut self, ctr: &str, list: &str, seq: u64) -> Result<(), String> {
        incr_rpush(&mut self.0, ctr, list, seq)
            .await
            .map_err(|e| e.to_string())
    }
}

/// `redis::sentinel::SentinelClient`: a connection to the master it names, replaced (asking
/// the sentinels again) after any error, the usual way to use it.
struct RedisRsWriter {
    client: SentinelClient,
    config: redis::AsyncConnectionConfig,
    conn: Option<MultiplexedConnection>,
}

impl WriteOnce for RedisRsWriter {
    async fn write(&mut self, ctr: &str, list: &str, seq: u64) -> Result<(), String> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let conn = self
                    .client
                    .get_async_connection_with_config(&self.config)
                    .await
                    .map_err(|e| format!("connect via sentinels: {e}"))?;
                self.conn.insert(conn)
            }
        };
        let result = incr_rpush(conn, ctr, list, seq).await;
        if result.is_err() {
            self.conn = None;
        }
        result.map_err(|e| e.to_string())
    }
}

/// The loop: writes on every tick until `stop`, reporting each outcome.
async fn write_loop<R: Runtime + Default>(
    w: &mut impl WriteOnce,
    sink: &Sink,
    stop: &AtomicBool,
    prefix: &str,
) {
    let (ctr, list) = (format!("{prefix}:ctr"), format!("{prefix}:list"));
    sink.json(&json!({ "ready": now_ns() }));
    sink.flush();
    let (mut seq, mut acks, mut errors) = (0_u64, 0_u64, 0_u64);
    let mut next = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        seq += 1;
        match w.write(&ctr, &list, seq).await {
            Ok(()) => {
                sink.line(&format!("{{\"a\":{seq},\"t\":{}}}", now_ns()));
                acks += 1;
            }
            Err(m) => {
                let m: String = m.chars().take(200).collect();
                sink.json(&json!({ "e": seq, "t": now_ns(), "m": m }));
                errors += 1;
            }
        }
        next += TICK;
        let now = Instant::now();
        if next + CATCH_UP < now {
            next = now;
        } else if next > now {
            ours::sleep_until::<R>(next).await;
        }
    }
    sink.json(&json!({ "end": now_ns(), "acks": acks, "errors": errors }));
}

async fn ours_writer<R: Runtime + Default>(
    args: &ChildArgs,
    fencing: bool,
    sink: &Sink,
    stop: &AtomicBool,
) -> Result<()> {
    let (sentinels, service) = ours::target(args)?;
    let config = ours::config_with_nat(
        &sentinels,
        &service,
        fencing,
        ours::WRITER_COMMAND_TIMEOUT,
        &args.nat,
    )?;
    let builder = ours::report_events(Supervisor::<R>::builder(config), sink);
    let sup = builder.start().await?;
    let mut w = OursWriter(sup.master());
    write_loop::<R>(&mut w, sink, stop, &args.prefix).await;
    let _ = sup.shutdown().await;
    Ok(())
}

async fn redis_rs_writer(args: &ChildArgs, sink: &Sink, stop: &AtomicBool) -> Result<()> {
    let (sentinels, service) = ours::target(args)?;
    let urls: Vec<String> = sentinels.iter().map(|s| format!("redis://{s}")).collect();
    let client = SentinelClient::build(urls, service, None, SentinelServerType::Master)?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_millis(500)));
    let mut w = RedisRsWriter {
        client,
        config,
        conn: None,
    };
    // Connected before `ready`, as the other clients are.
    w.conn = Some(w.client.get_async_connection_with_config(&w.config).await?);
    write_loop::<dramatiq_sentinel_tokio::Tokio>(&mut w, sink, stop, &args.prefix).await;
    Ok(())
}

/// Runs the writer child for `args.client`.
pub(crate) fn run(args: &ChildArgs) -> Result<()> {
    let sink = Sink::new();
    let stop = stop_flag("stop");
    let result = match (args.client.as_str(), Ours::from_id(&args.client)) {
        (_, Some(o)) => match o.exec {
            Exec::Tokio => ours::on_tokio(ours_writer::<dramatiq_sentinel_tokio::Tokio>(
                args, o.fencing, &sink, &stop,
            ))?,
            Exec::Smol => ours::on_smol(ours_writer::<dramatiq_sentinel_smol::Smol>(
                args, o.fencing, &sink, &stop,
            )),
        },
        ("redis-rs", None) => ours::on_tokio(redis_rs_writer(args, &sink, &stop))?,
        (other, None) => Err(err(format!("no Rust writer for client `{other}`"))),
    };
    sink.close();
    result
}
