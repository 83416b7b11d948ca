//! Executing the core's actions: every Redis call, task and gate operation, and nothing that
//! decides anything.

use crate::driver::Driver;
use crate::link::Prepared;
use crate::listener::{Listener, ListenerCmd, ListenerHandle};
use crate::master::{Active, Line};
use crate::runtime::timeout;
use crate::shared::Input;
use crate::sync::Cancel;
use crate::workers::Want;
use dramatiq_sentinel_core::{Action, Addr, FatalError, OpId, Shutdown};
use redis::aio::ConnectionLike;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;
use tracing::{error, info, warn};

impl Driver {
    /// Executes one action. Returns how the supervisor ends, for `Shutdown`.
    pub(crate) async fn execute(&mut self, action: Action) -> Option<Result<(), FatalError>> {
        let shared = &self.shared;
        match action {
            Action::Subscribe { op, sentinel } => self.subscribe(op, sentinel),
            Action::PingListener { op } => {
                if let Some(h) = self.listeners.get(&op) {
                    let _ = h.cmds.try_send(ListenerCmd::Ping);
                }
            }
            Action::CloseListener { op } => {
                self.listeners.remove(&op);
            }
            Action::QueryMaster {
                op,
                sentinel,
                service,
            } => self.query_sentinel(op, sentinel, "MASTER", service),
            Action::QuerySentinels {
                op,
                sentinel,
                service,
            } => self.query_sentinel(op, sentinel, "SENTINELS", service),
            Action::PollRole { op, node } => self.poll_role(op, node),
            Action::Watch { op, node } => {
                let handle = crate::watch::start(&self.shared, op, node);
                self.watches.insert(op, handle);
            }
            Action::Unwatch { op } => {
                self.watches.remove(&op);
            }
            Action::Connect { op, node } => self.connect(op, node),
            Action::Activate { op, node, old } => self.activate(op, node, old),
            Action::Discard { op } => {
                self.prepared.remove(&op);
            }
            // New commands are held from the fence until the verified new master is installed
            // (`Activate`) or the fence is lifted (`Resume`); releasing them at `Activate`
            // lets jobs in flight acknowledge on the new master, so the pause can complete.
            Action::Fence => {
                shared.slot.fence();
                shared.gate.close();
            }
            // The worker task drains the gate, pauses the pool and reports, in order with
            // every other pool call.
            Action::PauseWorkers { op } => shared.workers_calls.want(Want::Pause(op)),
            Action::Resume => {
                shared.slot.release();
                shared.gate.open();
                shared.workers_calls.want(Want::Run);
            }
            Action::StopWorkers { grace } => self.stop_workers(grace).await,
            Action::Shutdown(Shutdown::Exit { code }) => self.exit(code),
            Action::Shutdown(Shutdown::Fail(e)) => return Some(Err(e)),
        }
        None
    }

    fn subscribe(&mut self, op: OpId, sentinel: Addr) {
        let shared = &self.shared;
        let (tx, rx) = async_channel::bounded(8);
        self.listeners.insert(op, ListenerHandle { cmds: tx });
        let listener = Listener {
            rt: Arc::clone(&shared.rt),
            op,
            sentinel,
            endpoint: shared.sentinel.clone(),
            ping_timeout: shared.cfg.query_timeout(),
            inbox: shared.inbox.clone(),
            service: shared.cfg.service_name().to_owned(),
        };
        shared.rt.spawn(Box::pin(listener.run(rx)));
    }

    fn query_sentinel(&self, op: OpId, sentinel: Addr, sub: &'static str, service: String) {
        let shared = Arc::clone(&self.shared);
        self.shared.rt.spawn(Box::pin(async move {
            let mut cmd = redis::cmd("SENTINEL");
            cmd.arg(sub).arg(service);
            let limit = shared.cfg.query_timeout();
            let reply = shared
                .sentinels
                .query(&*shared.rt, &sentinel, &cmd, limit)
                .await;
            let _ = shared.inbox.send(Input::SentinelReply(op, reply)).await;
        }));
    }

    fn poll_role(&self, op: OpId, node: Addr) {
        let shared = Arc::clone(&self.shared);
        self.shared.rt.spawn(Box::pin(async move {
            let limit = shared.cfg.connect_timeout();
            let reply = shared
                .probes
                .query(&*shared.rt, &node, &redis::cmd("ROLE"), limit)
                .await;
            let _ = shared.inbox.send(Input::NodeReply(op, reply)).await;
        }));
    }

    /// A new broker connection, kept aside with its `ROLE` reply until `Activate`/`Discard`.
    /// Its driver races against the cancel signal of the generation it will serve.
    fn connect(&self, op: OpId, node: Addr) {
        let shared = Arc::clone(&self.shared);
        self.shared.rt.spawn(Box::pin(async move {
            let rt = &*shared.rt;
            let limit = shared.cfg.connect_timeout();
            let cancel = Arc::new(Cancel::default());
            let result = timeout(rt, limit, async {
                let response_timeout = shared.cfg.command_timeout();
                let mut link =
                    crate::link::open(&shared.data, rt, &node, response_timeout, &cancel).await?;
                let role = link
                    .conn
                    .req_packed_command(&redis::cmd("ROLE"))
                    .await
                    .map_err(|e| crate::convert::describe(&e))?;
                Ok((crate::convert::to_reply(role), link))
            })
            .await
            .unwrap_or_else(|| Err(format!("no ROLE answer within {limit:?}")));
            let result = result.map(|(role, link)| (role, Prepared { link, cancel }));
            let _ = shared.inbox.send(Input::Connected(op, result)).await;
        }));
    }

    /// Installs the prepared connection as the master connection and closes everything to the
    /// previous one: its connections close (commands in flight on them fail), dedicated
    /// connections and probes to it are dropped, and every handle's next command finds the
    /// new master (the slot's version changes).
    fn activate(&mut self, op: OpId, node: Addr, old: Option<Addr>) {
        let Some(Prepared { link, cancel }) = self.prepared.remove(&op) else {
            let reason = "no prepared connection under this op";
            warn!(op = %op, node = %node, reason, "activation failed");
            self.core.handle_reset_failed(Instant::now(), op, reason);
            return;
        };
        self.generation += 1;
        let generation = self.generation;
        let shared = &self.shared;
        shared.activate(Active {
            generation,
            node: node.clone(),
            line: Arc::new(Line::new(generation, link)),
            cancel,
        });
        if let Some(old) = &old {
            shared.probes.forget(old);
        }
        info!(node = %node, generation, "master connection installed");
        self.core.handle_reset_done(Instant::now(), op);
    }

    /// The pause timed out and the policy is to exit: run the before-exit hooks, flush, exit.
    fn exit(&self, code: u8) -> ! {
        error!(code, "exiting the process: workers could not be paused");
        self.shared.hooks.run_before_exit(code);
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        std::process::exit(i32::from(code))
    }
}
