//! The listener task: one pub/sub connection to one sentinel, subscribed to every channel,
//! forwarding raw messages to the supervisor's task and answering its health-check pings.

use crate::drive::shared::Input;
use crate::net::connect::Endpoint;
use crate::runtime::{Runtime, timeout};
use async_channel::{Receiver, Sender};
use dramatiq_sentinel_core::{
    Addr, Input as CoreInput, IoError, LISTENER_PATTERN, OpId, message_concerns,
};
use futures_lite::StreamExt;
use futures_lite::future::or;
use std::sync::Arc;
use std::time::Duration;

/// A request from the supervisor's task to a listener task.
pub(crate) enum ListenerCmd {
    Ping,
}

/// Owned by the supervisor's task; dropping it ends the listener task and closes its connection.
pub(crate) struct ListenerHandle {
    pub(crate) cmds: Sender<ListenerCmd>,
}

/// What the listener task needs.
pub(crate) struct Listener {
    pub(crate) rt: Arc<dyn Runtime>,
    pub(crate) op: OpId,
    pub(crate) sentinel: Addr,
    pub(crate) endpoint: Endpoint,
    pub(crate) ping_timeout: Duration,
    pub(crate) inbox: Sender<Input>,
    /// The service the core watches: messages about others are dropped here.
    pub(crate) service: String,
}

enum Step {
    Message(Option<redis::Msg>),
    Cmd(Option<ListenerCmd>),
}

/// Completes when the handle is dropped (the channel closes); ignores stray commands.
async fn closed(cmds: &Receiver<ListenerCmd>) {
    while cmds.recv().await.is_ok() {}
}

impl Listener {
    /// Sends `input` to the supervisor's task, waiting for room; fails once it is gone.
    async fn report(&self, input: CoreInput) -> Result<(), ()> {
        self.inbox.send(Input::Core(input)).await.map_err(|_| ())
    }

    /// Runs until the connection breaks (reported) or the handle is dropped (not reported).
    pub(crate) async fn run(self, cmds: Receiver<ListenerCmd>) {
        let rt = &*self.rt;
        let connecting = async {
            Some(
                self.endpoint
                    .subscribe(rt, &self.sentinel, LISTENER_PATTERN)
                    .await,
            )
        };
        let pubsub = match or(connecting, async {
            closed(&cmds).await;
            None
        })
        .await
        {
            None => return,
            Some(Err(error)) => {
                let _ = self
                    .report(CoreInput::ListenerFailed { op: self.op, error })
                    .await;
                return;
            }
            Some(Ok(pubsub)) => pubsub,
        };
        if self
            .report(CoreInput::Subscribed { op: self.op })
            .await
            .is_err()
        {
            return;
        }
        let (sink, mut stream) = pubsub.split();
        loop {
            let step = or(async { Step::Message(stream.next().await) }, async {
                Step::Cmd(cmds.recv().await.ok())
            })
            .await;
            match step {
                Step::Message(Some(msg)) => {
                    let channel: Vec<u8> = msg.get_channel().unwrap_or_default();
                    let payload = msg.get_payload_bytes();
                    // Sentinel chatter and other services' events never reach the queue.
                    if !message_concerns(&self.service, &channel, payload) {
                        continue;
                    }
                    let input = CoreInput::Message {
                        op: self.op,
                        channel,
                        payload: payload.to_vec(),
                    };
                    // Waits for room: a message is never dropped.
                    if self.report(input).await.is_err() {
                        return;
                    }
                }
                Step::Message(None) => {
                    let error = IoError::unreachable("connection closed");
                    let _ = self
                        .report(CoreInput::ListenerFailed { op: self.op, error })
                        .await;
                    return;
                }
                Step::Cmd(Some(ListenerCmd::Ping)) => {
                    // Answered on its own task so messages keep flowing; a lost PONG needs no
                    // report (the core times the ping out).
                    let mut sink = sink.clone();
                    let (rt2, inbox, op, limit) = (
                        Arc::clone(&self.rt),
                        self.inbox.clone(),
                        self.op,
                        self.ping_timeout,
                    );
                    self.rt.spawn(Box::pin(async move {
                        let pong = timeout(&*rt2, limit, sink.ping::<redis::Value>()).await;
                        if let Some(Ok(_)) = pong {
                            let _ = inbox.send(Input::Core(CoreInput::Pong { op })).await;
                        }
                    }));
                }
                Step::Cmd(None) => return,
            }
        }
    }
}
