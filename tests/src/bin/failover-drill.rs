//! `failover-drill`: runs a worker pool and a producer on a reliable Redis queue behind a
//! Sentinel supervisor, prints a live timeline of its events and a summary of every job.
//! See `failover-drill --help` and [`dramatiq_sentinel_tests::drill`].

fn main() -> std::process::ExitCode {
    dramatiq_sentinel_tests::drill::main(std::env::args().skip(1))
}
