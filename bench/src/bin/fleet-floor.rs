//! `fleet-floor`: N connections opened at once from one process, each with the one round trip
//! that verifies a new master, with nothing else going on: the floor under the fleet
//! benchmark's switch time on this machine. See [`dramatiq_sentinel_bench::floor_main`].

fn main() -> std::process::ExitCode {
    dramatiq_sentinel_bench::floor_main(std::env::args().skip(1).collect())
}
