//! A worker pool on a reliable Redis queue that survives Sentinel failovers, on smol.
//!
//! ```text
//! cargo run -p dramatiq-sentinel-smol --example smol_worker -- \
//!     127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381 mymaster
//! ```
//!
//! Workers take a permit from the gate per job, move a job from `queue` to `processing`
//! (`LMOVE`), record its effect and remove it from `processing` (the acknowledgement). A
//! producer pushes a job every 50 ms. Events are printed as they come; Ctrl-C (or SIGTERM)
//! shuts down.

use async_signal::{Signal, Signals};
use dramatiq_sentinel_smol::redis::{AsyncCommands, Direction, RedisResult};
use dramatiq_sentinel_smol::{Config, Event, MasterConnection, Supervisor, WorkerGate};
use smol::stream::StreamExt;
use smol::{Timer, future};
use std::time::Duration;

async fn worker(id: usize, gate: WorkerGate, mut redis: MasterConnection) {
    // Stops when the supervisor stops (the gate fails).
    while let Ok(permit) = gate.enter().await {
        let job: Option<String> = match redis
            .lmove("queue", "processing", Direction::Right, Direction::Left)
            .await
        {
            Ok(job) => job,
            Err(e) => {
                eprintln!("worker {id}: fetch failed: {e}");
                continue;
            }
        };
        let Some(job) = job else {
            drop(permit);
            Timer::after(Duration::from_millis(20)).await;
            continue;
        };
        Timer::after(Duration::from_millis(10)).await; // the job's work
        // Record the effect idempotently, then acknowledge; retry until both succeed (the
        // handle holds commands during a failover and sends them to the new master).
        loop {
            let done: RedisResult<()> = async {
                let _: () = redis.sadd("done", &job).await?;
                let _: () = redis.lrem("processing", 1, &job).await?;
                Ok(())
            }
            .await;
            match done {
                Ok(()) => break,
                Err(e) => eprintln!("worker {id}: ack of {job} failed, retrying: {e}"),
            }
        }
        drop(permit);
    }
}

async fn producer(mut redis: MasterConnection) {
    for n in 0u64.. {
        let pushed: RedisResult<()> = redis.lpush("queue", format!("job-{n}")).await;
        if let Err(e) = pushed {
            eprintln!("producer: {e}");
        }
        Timer::after(Duration::from_millis(50)).await;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    smol::block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let sentinels = args.next().unwrap_or_else(|| "127.0.0.1:26379".to_owned());
    let service = args.next().unwrap_or_else(|| "mymaster".to_owned());
    let config = Config::builder()
        .set("sentinels", &sentinels)?
        .service_name(service)
        .pause_timeout(Duration::from_secs(30))
        .build()?;
    let mut signals = Signals::new([Signal::Int, Signal::Term])?;

    let builder = Supervisor::builder(config)
        .on_switch_detected(|old, new, sentinel| {
            println!("switch detected: {old:?} -> {new} (reported by {sentinel:?})")
        })
        .before_reset(|old, new| println!("moving the connection: {old:?} -> {new}"))
        .after_reset(|old, new| println!("connection moved: {old:?} -> {new}"));
    let mut events = builder.subscribe();
    let supervisor = builder.start().await?;
    println!("master: {:?}", supervisor.current_master());
    if let Ok(status) = supervisor.status().await {
        println!(
            "{} replicas, {} other sentinels, quorum: {}",
            status.replicas.len(),
            status.sentinels.len(),
            status.quorum.message
        );
    }

    smol::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Event::SwitchCompleted {
                old,
                new,
                path,
                total,
                ..
            } = &event
            {
                println!("switched {old:?} -> {new} via {path} in {total:?}");
            }
        }
    })
    .detach();
    for id in 0..4 {
        smol::spawn(worker(id, supervisor.gate(), supervisor.master())).detach();
    }
    smol::spawn(producer(supervisor.master())).detach();

    future::or(
        async {
            signals.next().await;
            println!("shutting down");
            Ok(())
        },
        supervisor.wait(),
    )
    .await?;
    supervisor.shutdown().await?;
    Ok(())
}
