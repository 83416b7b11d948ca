//! `dramatiq-sentinel`: the operator command (`status`, `watch`, `drill`). See
//! `dramatiq-sentinel --help` and the crate documentation of `dramatiq_sentinel_cli`.

fn main() -> std::process::ExitCode {
    dramatiq_sentinel_cli::main(std::env::args().skip(1))
}
