//! Workers on a reliable Redis queue that survive Sentinel failovers (the README's example).
//!
//! ```text
//! cargo run -p dramatiq-sentinel-tokio --example worker -- 127.0.0.1:26379,127.0.0.1:26380 mymaster
//! ```
use dramatiq_sentinel_tokio::redis::{AsyncCommands, Direction, RedisResult};
use dramatiq_sentinel_tokio::{Config, Event, Failure, MasterConnection, Supervisor, WorkerGate};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Every decision of the supervisor is logged with `tracing`: a subscriber shows them.
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let mut args = std::env::args().skip(1);
    let sentinels = args.next().unwrap_or_else(|| "127.0.0.1:26379".into());
    let service = args.next().unwrap_or_else(|| "mymaster".into());
    let config = Config::builder()
        .set("sentinels", &sentinels)? // "host:port,host:port"
        .service_name(service)
        .build()?; // an invalid value is rejected with the name of its field
    let builder = Supervisor::builder(config)
        // Both hooks also run once at startup, for the first master, with `old = None`.
        .on_switch_detected(|old, new, by| println!("switch detected: {old:?} -> {new} ({by:?})"))
        .after_reset(|old, new| println!("connection moved: {old:?} -> {new}"));
    let mut events = builder.subscribe();
    let supervisor = builder.start().await?; // returns once a verified master is in use
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Event::SwitchCompleted {
                old: Some(old),
                new,
                path,
                total,
                ..
            } = &event
            {
                println!("switched {old} -> {new} via {path}: resumed after {total:?}");
            }
        }
    });
    for id in 0..4 {
        tokio::spawn(worker(id, supervisor.gate(), supervisor.master()));
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => println!("shutting down"),
        ended = supervisor.wait() => ended?, // a fatal error (e.g. a pause timeout, `fail`)
    }
    supervisor.shutdown().await?; // jobs in flight get `stop_grace`
    Ok(())
}

/// Runs jobs from `queue` until the supervisor stops: a permit per job (no job starts while a
/// failover is in progress), the job moved to `processing` while it runs, its effect recorded
/// in `done` (idempotent), then acknowledged.
async fn worker(id: usize, gate: WorkerGate, mut redis: MasterConnection) {
    while let Ok(permit) = gate.enter().await {
        let moved = redis.lmove("queue", "processing", Direction::Right, Direction::Left);
        let job: String = match moved.await {
            Ok(Some(job)) => job,
            Ok(None) => {
                drop(permit); // the queue is empty: look again soon
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            // NotSent: nothing happened, take the next one. InFlight (the master died with
            // the command in flight): the job may sit in `processing`; your reaper requeues it.
            Err(e) => {
                eprintln!("worker {id}: fetch failed ({:?}): {e}", Failure::of(&e));
                continue;
            }
        };
        tokio::time::sleep(Duration::from_millis(10)).await; // the job's work
        // A failover between the two commands holds them and sends them to the new master;
        // an error a caller may retry is retried until the supervisor stops.
        while let Err(e) = acknowledge(&mut redis, &job).await {
            if Failure::of(&e).is_none_or(|f| f == Failure::Stopped) {
                eprintln!("worker {id}: {job} not acknowledged: {e}");
                return;
            }
        }
        drop(permit);
    }
}

async fn acknowledge(redis: &mut MasterConnection, job: &str) -> RedisResult<()> {
    let () = redis.sadd("done", job).await?;
    redis.lrem("processing", 1, job).await
}
