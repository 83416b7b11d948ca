//! Executing the core's actions: every Redis call, task and gate operation, and nothing that
//! decides anything.

use crate::drive::driver::Driver;
use crate::drive::shared::Input;
use crate::drive::worker_calls::{HandBack, Want};
use crate::handles::master::line::{Active, Line};
use crate::net::convert::{io_error, to_reply};
use crate::net::link::{Prepared, refused_select};
use crate::net::listener::{Listener, ListenerCmd, ListenerHandle};
use crate::runtime::timeout;
use crate::sync::Cancel;
use dramatiq_sentinel_core::{
    Action, Addr, FatalError, Input as CoreInput, IoError, OpId, Reply, Shutdown,
};
use redis::aio::ConnectionLike;
use std::io::Write;
use std::sync::Arc;
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
            Action::QueryReplicas {
                op,
                sentinel,
                service,
            } => self.query_sentinel(op, sentinel, "REPLICAS", service),
            Action::PollRole { op, node } => self.probe(op, node, redis::cmd("ROLE")),
            Action::PauseWrites { node, duration } => self.pause_writes(node, Some(duration)),
            Action::UnpauseWrites { node } => self.pause_writes(node, None),
            Action::QueryReplication { op, node } => {
                // Asked with the `ROLE` of the connection just activated on `node`, if it was.
                match self.replication.take().filter(|(n, _)| *n == node) {
                    Some((_, info)) => self.outcomes.push_back(CoreInput::NodeReply {
                        op,
                        reply: Ok(info),
                    }),
                    None => {
                        let mut info = redis::cmd("INFO");
                        info.arg("replication");
                        self.probe(op, node, info);
                    }
                }
            }
            Action::ReadBacklog {
                op,
                node,
                replid,
                offset,
                bytes,
            } => {
                let read = crate::net::backlog::Read {
                    op,
                    node,
                    replid,
                    offset,
                    bytes,
                };
                let endpoint = shared.probes.endpoint().clone();
                crate::net::backlog::start(endpoint, read, shared.inbox.clone());
            }
            Action::Watch { op, node } => {
                let handle = crate::net::watch::start(&self.shared, op, node);
                self.watches.insert(op, handle);
            }
            Action::Unwatch { op } => {
                self.watches.remove(&op);
            }
            Action::Connect { op, node } => self.connect(op, node),
            // The old master's probe connection stays: the core pauses its writes and asks
            // its offset right after this (one the old master closed is replaced when used).
            Action::Activate {
                op,
                node,
                old: _,
                release,
            } => self.activate(op, node, release),
            // The worker task hands them to the pool, in order with its other calls.
            Action::HandBack {
                op,
                old,
                new,
                commands,
            } => shared.workers_calls.hand_back(HandBack {
                op,
                old,
                new,
                commands,
            }),
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
            endpoint: shared.sentinels.endpoint().clone(),
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
            let reply = Input::Core(CoreInput::SentinelReply { op, reply });
            let _ = shared.inbox.send(reply).await;
        }));
    }

    /// One command on a data node's probe connection (`ROLE`, `INFO replication`), or on its
    /// watch connection when one is open.
    fn probe(&self, op: OpId, node: Addr, cmd: redis::Cmd) {
        let shared = Arc::clone(&self.shared);
        let watch = self.watches.values().find_map(|w| w.conn_to(&node));
        self.shared.rt.spawn(Box::pin(async move {
            let limit = shared.cfg.connect_timeout();
            let reply = shared
                .probes
                .query_on(&*shared.rt, &node, watch, &cmd, limit)
                .await;
            let reply = Input::Core(CoreInput::NodeReply { op, reply });
            let _ = shared.inbox.send(reply).await;
        }));
    }

    /// `CLIENT PAUSE <ms> WRITE` on a deposed master (`duration`), or `CLIENT UNPAUSE`, on its
    /// probe connection; the outcome is logged, not reported.
    fn pause_writes(&self, node: Addr, duration: Option<std::time::Duration>) {
        let shared = Arc::clone(&self.shared);
        self.shared.rt.spawn(Box::pin(async move {
            let mut cmd = redis::cmd("CLIENT");
            match duration {
                Some(d) => cmd
                    .arg("PAUSE")
                    .arg(d.as_millis().max(1) as u64)
                    .arg("WRITE"),
                None => cmd.arg("UNPAUSE"),
            };
            let limit = shared.cfg.query_timeout();
            let reply = shared.probes.query(&*shared.rt, &node, &cmd, limit).await;
            let pause_ms = duration.map(|d| d.as_millis() as u64);
            let error = match reply {
                Ok(Reply::Error(e)) => Some(e),
                Err(e) => Some(e.to_string()),
                Ok(_) => None,
            };
            match (error, duration) {
                (None, Some(_)) => info!(node = %node, pause_ms,
                    "writes paused on the deposed master"),
                (None, None) => info!(node = %node, "writes unpaused: this process paused them \
                    when the node was deposed, and it is the master again"),
                (Some(e), Some(_)) => warn!(node = %node, error = %e, pause_ms,
                    "writes not paused on the deposed master (CLIENT PAUSE needs Redis 6.2 \
                     or later and the command in the data-node user's ACL)"),
                (Some(e), None) => warn!(node = %node, error = %e,
                    "writes not unpaused on the master (they resume when the pause ends)"),
            }
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
                let (mut link, select) = crate::net::link::open_unselected(
                    &shared.data,
                    rt,
                    &node,
                    response_timeout,
                    &cancel,
                )
                .await?;
                // `SELECT` (when the database is not 0), `ROLE` and `INFO replication` in one
                // round trip: at a switch every process connects to the node all of them reach
                // at that moment, so each round trip saved counts; and the core asks the new
                // master's replication history at once, which a probe connection of its own
                // would cost one more connect.
                let mut verify = redis::pipe();
                if let Some(db) = select {
                    verify.cmd("SELECT").arg(db);
                }
                verify.cmd("ROLE").cmd("INFO").arg("replication");
                let count = verify.len();
                let mut replies = link
                    .conn
                    .req_packed_commands(&verify, 0, count)
                    .await
                    .map_err(|e| io_error(&e))?
                    .into_iter();
                if let Some(db) = select {
                    // Refused, the connection fails as if the `redis` crate had selected it.
                    replies
                        .next()
                        .ok_or_else(|| IoError::unreachable("no reply to SELECT"))?
                        .extract_error()
                        .map_err(|e| refused_select(db, &e))?;
                }
                // A server error in reply to `ROLE` fails the connection as it would alone.
                let role = replies
                    .next()
                    .ok_or_else(|| IoError::unreachable("no reply to ROLE"))?
                    .extract_error()
                    .map_err(|e| io_error(&e))?;
                // An `INFO` refused (an ACL without it) leaves the core's query to a probe.
                let replication = replies
                    .next()
                    .and_then(|v| v.extract_error().ok())
                    .map(to_reply);
                let prepared = Prepared {
                    link,
                    cancel: Arc::clone(&cancel),
                    replication,
                };
                Ok::<(Reply, _), IoError>((to_reply(role), prepared))
            })
            .await
            .unwrap_or_else(|| {
                Err(IoError::unreachable(format!(
                    "no ROLE answer within {limit:?}"
                )))
            });
            let _ = shared.inbox.send(Input::Connected(op, result)).await;
        }));
    }

    /// Installs the prepared connection as the master connection and closes everything to the
    /// previous one: its connections close (commands in flight on them fail), dedicated
    /// connections to it are dropped, and every handle's next command finds the new master
    /// (the slot's version changes). Without `release`, commands keep waiting (fenced) until
    /// the core releases them. The `INFO replication` read with the connection's `ROLE` is
    /// kept for the core's next question.
    fn activate(&mut self, op: OpId, node: Addr, release: bool) {
        let Some(Prepared {
            link,
            cancel,
            replication,
        }) = self.prepared.remove(&op)
        else {
            let reason = "no prepared connection under this op".to_owned();
            warn!(op = %op, node = %node, reason, "activation failed");
            self.outcomes
                .push_back(CoreInput::ActivationFailed { op, reason });
            return;
        };
        self.generation += 1;
        let generation = self.generation;
        let shared = &self.shared;
        shared.activate(
            Active {
                generation,
                node: node.clone(),
                line: Arc::new(Line::new(generation, link)),
                cancel,
            },
            release,
        );
        self.replication = replication.map(|info| (node.clone(), info));
        info!(node = %node, generation, "master connection installed");
        self.outcomes.push_back(CoreInput::Activated { op });
    }

    /// The pause timed out and the policy is to exit: run the before-exit hooks, flush, exit.
    fn exit(&self, code: u8) -> ! {
        error!(code, "exiting the process: workers could not be paused");
        self.shared.events.run_before_exit(code);
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        std::process::exit(i32::from(code))
    }
}
