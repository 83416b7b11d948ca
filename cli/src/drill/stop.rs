//! Why the drill stops, and the Ctrl-C / SIGTERM handler that asks it to.

use super::error::DrillError;
use dramatiq_sentinel_supervisor::SupervisorError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use tracing::warn;

/// Why the drill stops producing and settles its accounts.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Ctrl-C or SIGTERM.
    Signal,
    /// The requested number of completed switches was observed.
    Failovers(usize),
    /// `--duration` passed.
    Duration,
    /// The local story played to its end.
    StoryDone,
    /// An act of the local story failed.
    StoryFailed(DrillError),
    /// The supervisor stopped by itself (a pause timeout with the `fail` policy).
    Supervisor(Result<(), SupervisorError>),
}

impl Stop {
    /// For the timeline.
    pub(crate) fn describe(&self) -> String {
        match self {
            Stop::Signal => "interrupted (Ctrl-C or SIGTERM)".to_owned(),
            Stop::Failovers(n) => format!("{n} failover(s) observed"),
            Stop::Duration => "--duration reached".to_owned(),
            Stop::StoryDone => "the story is over".to_owned(),
            Stop::StoryFailed(e) => format!("the story failed: {e}"),
            Stop::Supervisor(Ok(())) => "the supervisor stopped".to_owned(),
            Stop::Supervisor(Err(e)) => format!("the supervisor stopped: {e}"),
        }
    }
}

/// Sends [`Stop::Signal`] on the first Ctrl-C or SIGTERM; on the second, kills the local
/// deployment's Redis processes and exits with 130 ([`crate::exit::INTERRUPTED`]).
/// Installed once per process.
pub(crate) fn handle_signals(stop: Sender<Stop>) -> Result<(), DrillError> {
    let count = AtomicUsize::new(0);
    ctrlc::set_handler(move || {
        if count.fetch_add(1, Ordering::SeqCst) == 0 {
            warn!("stop requested by a signal; a second one exits at once");
            let _ = stop.send(Stop::Signal);
        } else {
            eprintln!("dramatiq-sentinel drill: second interrupt, exiting without a summary");
            // The local deployment runs in process groups of its own: stop it here, as no
            // drop will run.
            dramatiq_sentinel_harness::kill_detached();
            std::process::exit(i32::from(crate::exit::INTERRUPTED));
        }
    })?;
    Ok(())
}
