//! Internals for this crate's own benchmarks (`cargo bench -p dramatiq-sentinel-supervisor
//! --features bench`): not an API, no stability promise.

use crate::config::Config;
use crate::drive::shared::Shared;
use crate::handles::master::MasterConnection;
use crate::handles::master::line::{Active, Line};
use crate::observe::events::{Broadcast, Hooks};
use crate::runtime::Runtime;
use crate::sync::Cancel;
use dramatiq_sentinel_core::Addr;
use std::sync::Arc;

/// A master handle of a supervisor that was never started, whose master is `host:port`
/// (opened through `rt`'s [`Runtime::connect_tcp`], so it may be any stream), with the
/// default settings.
pub async fn handle(
    rt: Arc<dyn Runtime>,
    host: &str,
    port: u16,
) -> Result<MasterConnection, String> {
    let config = Config::builder()
        .build()
        .map_err(|e| e.to_string())?
        .with_jitter_seed(1);
    let (shared, _inbox) = Shared::new(
        rt,
        config,
        None,
        Broadcast::default(),
        Hooks::default(),
        None,
    );
    let node = Addr::new(host, port);
    let cancel = Arc::new(Cancel::default());
    let timeout = shared.cfg.command_timeout();
    let link = crate::net::link::open(&shared.data, &*shared.rt, &node, timeout, &cancel)
        .await
        .map_err(String::from)?;
    if !link.cut_on_cancel {
        return Err("the runtime has no connect_tcp: the handle cannot keep a connection".into());
    }
    shared.activate(
        Active {
            generation: 1,
            node,
            line: Arc::new(Line::new(1, link)),
            cancel,
        },
        true,
    );
    Ok(MasterConnection::new(shared))
}

/// The steady-state check alone: whether `handle`'s next command goes straight to the
/// connection it kept (one atomic load and a comparison).
pub fn kept(handle: &MasterConnection) -> bool {
    handle.keeps_connection()
}

/// The length of the first complete RESP command in `buf`, if it is complete (for a
/// stand-in server).
pub fn command_len(buf: &[u8]) -> Option<usize> {
    crate::net::resp::command_len(buf)
}

/// The sizes of the futures of one command, in bytes: through `handle`, and on `plain`.
pub fn future_sizes(
    handle: &mut MasterConnection,
    plain: &mut redis::aio::MultiplexedConnection,
) -> (usize, usize) {
    let cmd = redis::cmd("PING");
    let a = std::mem::size_of_val(&handle.send_packed_command(&cmd));
    let b = std::mem::size_of_val(&plain.send_packed_command(&cmd));
    (a, b)
}
