//! The connections a switch costs, against a real TCP stand-in ([`FakeRedis`]): the new
//! master's `INFO replication` (the lost-write check) comes with the `ROLE` of the connection
//! that verified it, not over a connection of its own.

use crate::config::Config;
use crate::drive::driver::Driver;
use crate::drive::shared::Input;
use crate::fake_redis::FakeRedis;
use crate::runtime::Runtime;
use crate::testing::{TokioRuntime, shared_on};
use dramatiq_sentinel_core::{Action, Core, Input as CoreInput, OpId};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the test waits for an answer that should come at once (generous: the machine may
/// be loaded).
const PATIENCE: Duration = Duration::from_secs(30);

#[test]
fn the_new_masters_replication_comes_with_its_role() {
    let server = FakeRedis::start(true);
    let node = server.addr.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let rt: Arc<dyn Runtime> = Arc::new(TokioRuntime(runtime.handle().clone()));
    let config = Config::builder().build().expect("valid");
    let core = Core::new(config.core().clone(), Instant::now());
    let (shared, inbox) = shared_on(rt, config);
    let (started, _) = async_channel::bounded(1);
    let mut driver = Driver::new(core, shared, inbox.clone(), started);
    let next = || async {
        let input = tokio::time::timeout(PATIENCE, inbox.recv()).await;
        input.expect("an answer in time").expect("inbox open")
    };
    runtime.block_on(async {
        let (connect, info, later) = (OpId(1), OpId(2), OpId(3));
        driver
            .execute(Action::Connect {
                op: connect,
                node: node.clone(),
            })
            .await;
        let Input::Connected(op, Ok((_, prepared))) = next().await else {
            panic!("the connection should have been prepared");
        };
        assert_eq!(op, connect);
        let replication = prepared.replication.clone().expect("INFO answered");
        driver.prepared.insert(op, prepared);
        driver
            .execute(Action::Activate {
                op: connect,
                node: node.clone(),
                old: None,
                release: true,
            })
            .await;
        driver
            .execute(Action::QueryReplication {
                op: info,
                node: node.clone(),
            })
            .await;
        let answered = driver.outcomes.iter().any(|o| {
            matches!(o, CoreInput::NodeReply { op, reply: Ok(r) } if *op == info && *r == replication)
        });
        assert!(answered, "answered from the activation: {:?}", driver.outcomes);
        // One connection, `ROLE` and `INFO` in one round trip.
        assert_eq!((server.accepted(), server.commands()), (1, 2));
        // Asked again later: the answer is not stale, a probe asks the node.
        driver
            .execute(Action::QueryReplication {
                op: later,
                node: node.clone(),
            })
            .await;
        let Input::Core(CoreInput::NodeReply { op, reply }) = next().await else {
            panic!("the probe should have answered");
        };
        assert_eq!(op, later);
        assert!(reply.is_ok(), "{reply:?}");
        assert_eq!((server.accepted(), server.commands()), (2, 3));
    });
}
