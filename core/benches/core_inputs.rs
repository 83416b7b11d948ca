//! Core throughput: inputs handled per second, steady state and a failover-heavy mix.
//!
//! Run: `cargo bench -p dramatiq-sentinel-core --bench core_inputs`
//! Prints a table (median and min..max of 5 runs). Not a test: nothing is asserted.
#![allow(clippy::disallowed_methods)] // a benchmark reads the clock to time itself

use dramatiq_sentinel_core::sim::{MessageFaults, Op, Settings, Sim};
use dramatiq_sentinel_core::{Action, Config, Core, Input, OpId, Reply};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn data(s: &str) -> Reply {
    Reply::Data(s.as_bytes().to_vec())
}

/// A core that finished startup, with its listener op ids.
fn ready_core(now: Instant) -> (Core, Vec<dramatiq_sentinel_core::OpId>) {
    let cfg = Config::builder()
        .sentinels(["127.0.0.1:26379", "127.0.0.1:26380", "127.0.0.1:26381"])
        .service_name("svc")
        .refresh_sentinels(false)
        .build()
        .expect("valid config");
    let mut core = Core::new(cfg, now);
    let mut listeners = vec![];
    let master = Reply::Array(vec![
        data("ip"),
        data("127.0.0.1"),
        data("port"),
        data("7000"),
        data("flags"),
        data("master"),
    ]);
    let role = Reply::Array(vec![data("master"), Reply::Int(0), Reply::Array(vec![])]);
    loop {
        while core.poll_event().is_some() {}
        let Some(a) = core.poll_action() else { break };
        match a {
            Action::Subscribe { op, .. } => {
                listeners.push(op);
                core.handle(now, Input::Subscribed { op });
            }
            Action::QueryMaster { op, .. } => {
                let reply = Ok(master.clone());
                core.handle(now, Input::SentinelReply { op, reply })
            }
            Action::Connect { op, .. } => {
                let reply = Ok(role.clone());
                core.handle(now, Input::NodeReply { op, reply })
            }
            Action::Activate { op, .. } => core.handle(now, Input::Activated { op }),
            _ => {}
        }
    }
    assert!(core.master().is_some(), "startup completed");
    (core, listeners)
}

fn message(op: OpId, channel: &[u8], payload: &[u8]) -> Input {
    Input::Message {
        op,
        channel: channel.to_vec(),
        payload: payload.to_vec(),
    }
}

/// Steady state: messages of another service, sentinel chatter, pongs, spurious timeouts.
fn steady(iterations: u64) -> (u64, Duration) {
    let start = Instant::now();
    let (mut core, listeners) = ready_core(start);
    let mut now = start;
    let t0 = Instant::now();
    let mut inputs = 0;
    for i in 0..iterations {
        now += Duration::from_micros(100);
        let op = listeners[(i % listeners.len() as u64) as usize];
        match i % 4 {
            0 => core.handle(
                now,
                message(op, b"+switch-master", b"other 10.0.0.1 6379 10.0.0.2 6379"),
            ),
            1 => core.handle(
                now,
                message(
                    op,
                    b"+sdown",
                    b"slave 10.0.0.3:6379 10.0.0.3 6379 @ svc 127.0.0.1 7000",
                ),
            ),
            2 => core.handle(now, Input::Pong { op }),
            _ => core.handle_timeout(now),
        }
        inputs += 1;
        while let Some(e) = core.poll_event() {
            black_box(e);
        }
        while let Some(a) = core.poll_action() {
            let _ = black_box(a);
        }
    }
    (inputs, t0.elapsed())
}

/// Failover-heavy: the simulator plays graceful failovers, crashes and faults back to back.
/// Includes the simulator's own work (it is the harness feeding the inputs).
fn failovers(rounds: u64) -> (u64, Duration) {
    let t0 = Instant::now();
    let mut inputs = 0;
    for seed in 0..rounds {
        let settings = Settings {
            seed,
            ..Settings::default()
        };
        let mut sim = Sim::new(
            settings,
            |b| {
                b.min_backoff(Duration::from_millis(200))
                    .max_backoff(Duration::from_secs(2))
            },
            t0,
        )
        .expect("valid config");
        let ms = Duration::from_millis;
        let ops = [
            Op::GracefulFailover,
            Op::Advance(ms(4000)),
            Op::Faults(MessageFaults {
                drop_pct: 20,
                duplicate_pct: 20,
                max_delay: ms(200),
            }),
            Op::GracefulFailover,
            Op::Advance(ms(4000)),
            Op::CrashMaster,
            Op::Advance(ms(6000)),
            Op::RestartNode(0),
            Op::SentinelDown(1),
            Op::GracefulFailover,
            Op::Advance(ms(4000)),
            Op::SentinelUp(1),
        ];
        for op in &ops {
            sim.apply(op).expect("rules hold");
        }
        sim.settle(Duration::from_secs(60)).expect("converges");
        inputs += sim.stats().inputs;
    }
    (inputs, t0.elapsed())
}

fn summary(mut rates: Vec<f64>) -> String {
    rates.sort_by(f64::total_cmp);
    format!(
        "{:>12.0} | {:>12.0} .. {:<12.0}",
        rates[rates.len() / 2],
        rates[0],
        rates[rates.len() - 1]
    )
}

fn main() {
    // `cargo test --all-targets` runs this too (without `--bench`): then only a smoke run.
    if !std::env::args().any(|a| a == "--bench") {
        steady(1000);
        failovers(1);
        return;
    }
    const RUNS: usize = 5;
    let steady_rates: Vec<f64> = (0..RUNS)
        .map(|_| {
            let (n, d) = steady(2_000_000);
            n as f64 / d.as_secs_f64()
        })
        .collect();
    let failover_rates: Vec<f64> = (0..RUNS)
        .map(|_| {
            let (n, d) = failovers(300);
            n as f64 / d.as_secs_f64()
        })
        .collect();
    println!("core inputs per second (median | min .. max of {RUNS} runs)");
    println!("| mix | inputs/s median | min .. max |");
    println!("|---|---|---|");
    println!(
        "| steady state (other-service events, chatter, pongs, spurious timeouts) | {} |",
        summary(steady_rates)
    );
    println!(
        "| failover-heavy (simulated failovers, crashes, faults; includes simulator) | {} |",
        summary(failover_rates)
    );
    println!("reproduce: cargo bench -p dramatiq-sentinel-core --bench core_inputs");
}
