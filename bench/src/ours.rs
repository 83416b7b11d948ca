//! Our clients as the child processes run them: the supervisor on tokio or smol, with early
//! fencing on or off, and the plumbing shared by the writer, job and idle children.

use super::clock::now_ns;
use super::emit::Sink;
use super::error::{Result, err};
use dramatiq_sentinel_harness::runtime::TestRuntime;
use dramatiq_sentinel_harness::runtime::TokioRuntime;
use dramatiq_sentinel_supervisor::{Builder, Config, FieldValue, PauseTimeoutPolicy, Runtime};
use serde_json::json;
use std::future::Future;
use std::time::{Duration, Instant};

/// The executor a child runs our supervisor on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exec {
    /// `dramatiq-sentinel-tokio` on a two-thread tokio runtime.
    Tokio,
    /// `dramatiq-sentinel-smol` on smol's global executor.
    Smol,
}

/// One of our variants: an executor and whether early fencing is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ours {
    /// The executor.
    pub(crate) exec: Exec,
    /// `early_fencing` in the supervisor's configuration.
    pub(crate) fencing: bool,
}

impl Ours {
    /// Every variant, in table order.
    pub(crate) const ALL: [Ours; 4] = [
        Ours {
            exec: Exec::Tokio,
            fencing: true,
        },
        Ours {
            exec: Exec::Tokio,
            fencing: false,
        },
        Ours {
            exec: Exec::Smol,
            fencing: true,
        },
        Ours {
            exec: Exec::Smol,
            fencing: false,
        },
    ];

    /// The id used on the command line, e.g. `ours-tokio` or `ours-smol-nofence`.
    pub(crate) fn id(self) -> &'static str {
        match (self.exec, self.fencing) {
            (Exec::Tokio, true) => "ours-tokio",
            (Exec::Tokio, false) => "ours-tokio-nofence",
            (Exec::Smol, true) => "ours-smol",
            (Exec::Smol, false) => "ours-smol-nofence",
        }
    }

    /// The variant with this id.
    pub(crate) fn from_id(id: &str) -> Option<Ours> {
        Self::ALL.into_iter().find(|o| o.id() == id)
    }

    /// The label in the tables.
    pub(crate) fn label(self) -> &'static str {
        match (self.exec, self.fencing) {
            (Exec::Tokio, true) => "ours, tokio, early fencing",
            (Exec::Tokio, false) => "ours, tokio, no early fencing",
            (Exec::Smol, true) => "ours, smol, early fencing",
            (Exec::Smol, false) => "ours, smol, no early fencing",
        }
    }
}

/// Runs `future` on a two-thread tokio runtime, with the `redis` crate told to use tokio (both
/// runtime features are built into this workspace).
pub(crate) fn on_tokio<F: Future>(future: F) -> Result<F::Output> {
    let _ = redis::aio::prefer_tokio();
    Ok(TokioRuntime::try_new()?.block_on(future))
}

/// Runs `future` with `smol::block_on` (the supervisor's tasks go to smol's global executor),
/// with the `redis` crate told to use smol.
pub(crate) fn on_smol<F: Future>(future: F) -> F::Output {
    let _ = redis::aio::prefer_smol();
    smol::block_on(future)
}

/// The command timeout of the writer workload: 0.5 s, as the peers get.
pub(crate) const WRITER_COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// The supervisor's default command timeout (5 s), for the job workload (it must exceed the
/// timeout of its `WAIT 1 2000`) and the overhead children.
pub(crate) const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// The supervisor's configuration for a child: the deployment's sentinels and service, the
/// command timeout, early fencing on or off, quick listener backoff, bounded startup.
pub(crate) fn config(
    sentinels: &[String],
    service: &str,
    fencing: bool,
    command_timeout: Duration,
) -> Result<Config> {
    config_with_nat(sentinels, service, fencing, command_timeout, &[])
}

/// [`config`] with sentinel addresses mapped (`nat`: real address, address it leads to), as
/// the child's `--nat` asks: a sentinel the child is cut off from stays unreachable however
/// the other sentinels announce it.
pub(crate) fn config_with_nat(
    sentinels: &[String],
    service: &str,
    fencing: bool,
    command_timeout: Duration,
    nat: &[(String, String)],
) -> Result<Config> {
    let builder = nat.iter().fold(Config::builder(), |b, (real, dead)| {
        b.nat(real.clone(), dead.clone())
    });
    Ok(builder
        .sentinels(sentinels.iter().cloned())
        .service_name(service.to_owned())
        .command_timeout(Some(command_timeout))
        .early_fencing(fencing)
        .min_backoff(Duration::from_millis(200))
        .max_backoff(Duration::from_secs(2))
        .startup_timeout(Some(Duration::from_secs(30)))
        .pause_timeout(Duration::from_secs(60))
        .on_pause_timeout(PauseTimeoutPolicy::Fail)
        .build()?)
}

/// Adds a hook that reports every supervisor event as `{"ev", "t", "d", "handed_back"}`: its
/// name and the commands a loss read back come from the event's description.
pub(crate) fn report_events<R: Runtime>(builder: Builder<R>, sink: &Sink) -> Builder<R> {
    let sink = sink.clone();
    builder.on_event(move |e| {
        let t = now_ns();
        let described = e.describe();
        let handed_back = match described.field("commands_read_back") {
            Some(FieldValue::Int(n)) => Some(*n),
            _ => None,
        };
        sink.json(&json!({
            "ev": described.name,
            "t": t,
            "d": format!("{e:?}"),
            "handed_back": handed_back,
        }));
    })
}

/// Sleeps until `deadline` on the runtime `R`.
pub(crate) async fn sleep_until<R: Runtime + Default>(deadline: Instant) {
    R::default().sleep_until(deadline).await;
}

/// The sentinels and service from a child's arguments.
pub(crate) fn target(args: &super::child_args::ChildArgs) -> Result<(Vec<String>, String)> {
    if args.sentinels.is_empty() {
        return Err(err("--sentinels is required"));
    }
    Ok((args.sentinels.clone(), args.service.clone()))
}
