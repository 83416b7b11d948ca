//! The connections and round trips a switch costs, against a real TCP stand-in
//! ([`FakeRedis`]): the new master's `INFO replication` (the lost-write check) and the
//! database's `SELECT` come with the `ROLE` of the connection that verified it, and `ROLE` polls
//! of a watched node go on its watch connection, not over connections of their own.

use crate::config::Config;
use crate::drive::driver::Driver;
use crate::drive::shared::Input;
use crate::fake_redis::FakeRedis;
use crate::runtime::Runtime;
use crate::testing::{TokioRuntime, shared_on};
use async_channel::Receiver;
use dramatiq_sentinel_core::{Action, Core, Input as CoreInput, OpId, Reply};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the test waits for an answer that should come at once (generous: the machine may
/// be loaded).
const PATIENCE: Duration = Duration::from_secs(30);

/// A supervisor's task (not running: the test executes actions itself) on a tokio runtime, and
/// its inbox.
fn driver() -> (tokio::runtime::Runtime, Driver, Receiver<Input>) {
    driver_with(Config::builder().build().expect("valid"))
}

/// [`driver`] with `config`.
fn driver_with(config: Config) -> (tokio::runtime::Runtime, Driver, Receiver<Input>) {
    let runtime = crate::testing::two_thread_tokio();
    let rt: Arc<dyn Runtime> = Arc::new(TokioRuntime(runtime.handle().clone()));
    let core = Core::new(config.core().clone(), Instant::now());
    let (shared, inbox) = shared_on(rt, config);
    let (started, _) = async_channel::bounded(1);
    let driver = Driver::new(core, shared, inbox.clone(), started);
    (runtime, driver, inbox)
}

/// The next input of the supervisor's task.
async fn next(inbox: &Receiver<Input>) -> Input {
    let input = tokio::time::timeout(PATIENCE, inbox.recv()).await;
    input.expect("an answer in time").expect("inbox open")
}

/// Executes `action` (whose op is `op`) and returns the node's answer, which must be a reply.
async fn answer(driver: &mut Driver, inbox: &Receiver<Input>, op: OpId, action: Action) -> Reply {
    driver.execute(action).await;
    let Input::Core(CoreInput::NodeReply { op: got, reply }) = next(inbox).await else {
        panic!("the node should have answered");
    };
    assert_eq!(got, op);
    reply.expect("a reply")
}

#[test]
fn the_new_masters_replication_comes_with_its_role() {
    let server = FakeRedis::start(true);
    let node = server.addr.clone();
    let (runtime, mut driver, inbox) = driver();
    let next = || next(&inbox);
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

#[test]
fn a_database_is_selected_in_the_round_trip_that_verifies_the_node() {
    let server = FakeRedis::start(true);
    let config = Config::builder().db(3).build().expect("valid");
    let (runtime, mut driver, inbox) = driver_with(config);
    runtime.block_on(async {
        let op = OpId(1);
        let node = server.addr.clone();
        driver.execute(Action::Connect { op, node }).await;
        let Input::Connected(got, Ok((_, prepared))) = next(&inbox).await else {
            panic!("the connection should have been prepared");
        };
        assert_eq!(got, op);
        assert!(prepared.replication.is_some(), "INFO answered");
        // One connection; `SELECT`, `ROLE` and `INFO` in one round trip (the `redis` crate
        // would have selected the database in a round trip of its own first).
        assert_eq!(
            (server.accepted(), server.commands(), server.rounds()),
            (1, 3, 1)
        );
    });
}

#[test]
fn role_polls_of_a_watched_node_go_on_its_watch_connection() {
    let server = FakeRedis::start(true);
    let node = server.addr.clone();
    let (runtime, mut driver, inbox) = driver();
    runtime.block_on(async {
        let (watch, poll) = (OpId(1), OpId(2));
        let action = Action::Watch {
            op: watch,
            node: node.clone(),
        };
        answer(&mut driver, &inbox, watch, action).await;
        let commands = server.commands();
        let action = Action::PollRole {
            op: poll,
            node: node.clone(),
        };
        answer(&mut driver, &inbox, poll, action).await;
        assert_eq!((server.accepted(), server.commands()), (1, commands + 1));
        // The watch closed by the server: the core hears of it, and the next poll opens a
        // probe connection.
        server.drop_connections();
        let Input::Core(CoreInput::WatchClosed { op }) = next(&inbox).await else {
            panic!("the closing should have been reported");
        };
        assert_eq!(op, watch);
        driver.watches.remove(&op);
        driver
            .execute(Action::PollRole {
                op: OpId(3),
                node: node.clone(),
            })
            .await;
        let Input::Core(CoreInput::NodeReply { reply, .. }) = next(&inbox).await else {
            panic!("the poll should have answered");
        };
        assert!(reply.is_ok(), "{reply:?}");
        assert_eq!(server.accepted(), 2, "no watch left: a probe connection");
    });
}
