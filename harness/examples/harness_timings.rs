//! Measures how long the harness needs to start a default deployment, to complete a graceful
//! failover (until all sentinels agree on the new master and it says `ROLE` master), and to get
//! a killed master replaced (same criterion; down-after is 2000 ms).
//!
//! `cargo run -p dramatiq-sentinel-harness --example harness_timings -- [runs]` (default 5 runs).

use std::time::{Duration, Instant};

use dramatiq_sentinel_harness::{Deployment, DeploymentOptions, HarnessError};

fn main() -> Result<(), HarnessError> {
    let runs = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(5_usize);
    let mut starts = Vec::new();
    let mut failovers = Vec::new();
    let mut kills = Vec::new();
    for run in 1..=runs {
        let begin = Instant::now();
        let deployment = Deployment::start(DeploymentOptions::default())?;
        let started = begin.elapsed();
        let begin = Instant::now();
        let (old, new) = deployment.failover_and_wait(Duration::from_secs(60))?;
        let failed_over = begin.elapsed();
        let begin = Instant::now();
        let killed = deployment.kill_master()?;
        let replacement = deployment.wait_for_new_master(killed, Duration::from_secs(60))?;
        let replaced = begin.elapsed();
        println!(
            "run {run}: start {started:?}, graceful failover {failed_over:?} ({old} -> {new}), \
             killed master replaced {replaced:?} ({killed} -> {replacement})"
        );
        starts.push(started);
        failovers.push(failed_over);
        kills.push(replaced);
    }
    report("start", &mut starts);
    report("graceful failover", &mut failovers);
    report("killed master replaced", &mut kills);
    Ok(())
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let median = samples[samples.len() / 2];
    let (min, max) = (samples[0], samples[samples.len() - 1]);
    println!(
        "{what}: median {:.0} ms (min {:.0} ms, max {:.0} ms, {} runs)",
        median.as_secs_f64() * 1e3,
        min.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        samples.len()
    );
}
