//! The apalis example on smol: the same program as `worker.rs` with smol's executor.
//!
//! ```text
//! cargo run -p dramatiq-sentinel-apalis --features smol --example apalis_worker_smol -- \
//!     127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381 mymaster
//! ```
//!
//! Pushes 10,000 tasks (one every 50 ms), then stops the workers and the supervisor.

use apalis::layers::WorkerBuilderExt;
use apalis_core::backend::TaskSink;
use apalis_core::backend::ext::BackendExt;
use apalis_core::worker::builder::WorkerBuilder;
use dramatiq_sentinel_apalis::smol::{Config, Supervisor};
use dramatiq_sentinel_apalis::{ApalisWorkers, apalis_redis, storage};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Serialize, Deserialize)]
struct Email {
    to: String,
}

async fn send_email(email: Email) -> Result<(), std::io::Error> {
    smol::Timer::after(Duration::from_millis(10)).await; // the task's work
    println!("sent to {}", email.to);
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let sentinels = args.next().unwrap_or_else(|| "127.0.0.1:26379".to_owned());
    let service = args.next().unwrap_or_else(|| "mymaster".to_owned());
    smol::block_on(async {
        let config = Config::builder()
            .set("sentinels", &sentinels)?
            .service_name(service)
            .build()?;
        let pool = ApalisWorkers::new();
        let supervisor = Supervisor::builder(config)
            .workers(pool.clone())
            .start()
            .await?;
        let master = supervisor.master();
        let queue = apalis_redis::Config::default().queue("emails");
        let mut workers = Vec::new();
        for n in 0..2 {
            let worker = WorkerBuilder::new(pool.context(&format!("email-worker-{n}")))
                .backend(
                    storage::<Email>(&master, queue.clone())
                        .poll_with_interval(Duration::from_millis(50)),
                )
                .concurrency(4)
                .build(send_email);
            workers.push(smol::spawn(worker.run()));
        }
        let mut producer = storage::<Email>(&master, queue);
        for n in 0..10_000u64 {
            let email = Email {
                to: format!("user-{n}@example.com"),
            };
            if let Err(e) = producer.push(email).await {
                eprintln!("push failed: {e}");
            }
            smol::Timer::after(Duration::from_millis(50)).await;
        }
        // Stops the apalis workers (tasks in flight get `stop_grace`), then the supervisor.
        supervisor.shutdown().await?;
        for w in workers {
            if let Err(e) = w.await {
                eprintln!("worker stopped with an error: {e}");
            }
        }
        Ok(())
    })
}
