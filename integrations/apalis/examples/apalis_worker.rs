//! apalis workers on apalis-redis storage that survive Sentinel failovers (tokio).
//!
//! ```text
//! cargo run -p dramatiq-sentinel-apalis --features tokio --example apalis_worker -- \
//!     127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381 mymaster
//! ```
//!
//! Two apalis workers (4 tasks at once each) consume the `emails` queue; a producer pushes a
//! task every 50 ms. Storage and workers go through the supervisor: commands are held while a
//! failover is in progress and sent to the verified new master, so no task is lost or run
//! twice. Ctrl-C stops the workers (tasks in flight finish) and the supervisor.

use apalis::layers::WorkerBuilderExt;
use apalis_core::backend::TaskSink;
use apalis_core::backend::ext::BackendExt;
use apalis_core::worker::builder::WorkerBuilder;
use dramatiq_sentinel_apalis::tokio::{Config, Event, Supervisor};
use dramatiq_sentinel_apalis::{ApalisWorkers, apalis_redis, storage};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Serialize, Deserialize)]
struct Email {
    to: String,
}

async fn send_email(email: Email) -> Result<(), std::io::Error> {
    tokio::time::sleep(Duration::from_millis(10)).await; // the task's work
    println!("sent to {}", email.to);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let sentinels = args.next().unwrap_or_else(|| "127.0.0.1:26379".to_owned());
    let service = args.next().unwrap_or_else(|| "mymaster".to_owned());
    let config = Config::builder()
        .set("sentinels", &sentinels)?
        .service_name(service)
        .build()?;

    // The apalis workers, as the supervisor sees them (stopped at shutdown; paused only if
    // you ask for a drain with `.with_drain(true)`).
    let pool = ApalisWorkers::new();
    let supervisor = Supervisor::builder(config)
        .workers(pool.clone())
        .on_event(|e| {
            if let Event::SwitchCompleted {
                old, new, total, ..
            } = e
            {
                println!("master {old:?} -> {new} in {total:?}");
            }
        })
        .start()
        .await?;
    let master = supervisor.master();
    let queue = apalis_redis::Config::default().queue("emails");

    let mut workers = Vec::new();
    for n in 0..2 {
        let worker = WorkerBuilder::new(pool.context(&format!("email-worker-{n}")))
            // apalis-redis polls an idle queue only at each heartbeat unless told otherwise.
            .backend(
                storage::<Email>(&master, queue.clone())
                    .poll_with_interval(Duration::from_millis(50)),
            )
            .concurrency(4)
            .build(send_email);
        workers.push(tokio::spawn(worker.run()));
    }

    let mut producer = storage::<Email>(&master, queue);
    tokio::spawn(async move {
        for n in 0u64.. {
            let email = Email {
                to: format!("user-{n}@example.com"),
            };
            if let Err(e) = producer.push(email).await {
                eprintln!("push failed: {e}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    tokio::signal::ctrl_c().await?;
    // Stops the apalis workers (tasks in flight get `stop_grace`), then the supervisor.
    supervisor.shutdown().await?;
    for w in workers {
        if let Ok(Err(e)) = w.await {
            eprintln!("worker stopped with an error: {e}");
        }
    }
    Ok(())
}
