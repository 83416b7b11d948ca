//! `failover-bench`: the failover benchmark of dramatiq-sentinel against peer clients on a real
//! Redis Sentinel deployment. See `failover-bench --help` and
//! [`dramatiq_sentinel_bench`].

fn main() -> std::process::ExitCode {
    dramatiq_sentinel_bench::main(std::env::args().skip(1).collect())
}
