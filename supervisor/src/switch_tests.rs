//! The master handle through switches, against real TCP servers ([`FakeRedis`]): commands in
//! flight at a switch fail and every connection to the old master closes, a handle used after
//! a switch never reaches the old master, dedicated handles follow, a stop fails everything,
//! and a broken connection is replaced for every handle. Each runs on a runtime with
//! [`Runtime::connect_tcp`] (the supervisor drives the connections: the steady-state path
//! without locks) and on one without it (the `redis` crate drives them: the slower path).

use crate::config::Config;
use crate::drive::shared::Shared;
use crate::fake_redis::FakeRedis;
use crate::handles::failure::Failure;
use crate::handles::master::MasterConnection;
use crate::handles::master::line::{Active, Line};
use crate::runtime::Runtime;
use crate::sync::Cancel;
use crate::testing::{PlainTokioRuntime, TokioRuntime, shared_on};
use redis::aio::ConnectionLike;
use redis::{RedisError, RedisResult, Value};
use std::sync::Arc;
use std::time::Duration;

/// The command timeout of the tests' handles.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the tests wait for something that should happen at once (generous: the machine
/// may be loaded).
const PATIENCE: Duration = Duration::from_secs(30);

/// Which runtime a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Driven {
    /// The supervisor drives the connections (the runtime connects).
    Ours,
    /// The `redis` crate drives them.
    Redis,
}

struct World {
    runtime: tokio::runtime::Runtime,
    shared: Arc<Shared>,
    generation: u64,
}

impl World {
    fn new(driven: Driven) -> Self {
        let runtime = crate::testing::two_thread_tokio();
        let handle = runtime.handle().clone();
        let rt: Arc<dyn Runtime> = match driven {
            Driven::Ours => Arc::new(TokioRuntime(handle)),
            Driven::Redis => Arc::new(PlainTokioRuntime(handle)),
        };
        let config = Config::builder()
            .hold_timeout(Duration::from_secs(10))
            // Far longer than any wait of these tests: a command in flight must fail because
            // of the switch, not of its timeout.
            .command_timeout(Some(COMMAND_TIMEOUT))
            .build()
            .expect("valid");
        let (shared, _inbox) = shared_on(rt, config);
        Self {
            runtime,
            shared,
            generation: 0,
        }
    }

    /// What `Activate` does: a connection to `server` opened for the next generation, then
    /// installed.
    fn switch_to(&mut self, server: &FakeRedis) {
        self.generation += 1;
        let generation = self.generation;
        let shared = Arc::clone(&self.shared);
        let node = server.addr.clone();
        let cancel = Arc::new(Cancel::default());
        let link = self
            .runtime
            .block_on(async {
                let rt = &*shared.rt;
                crate::net::link::open(&shared.data, rt, &node, Some(COMMAND_TIMEOUT), &cancel)
                    .await
            })
            .expect("connected");
        shared.activate(
            Active {
                generation,
                node,
                line: Arc::new(Line::new(generation, link)),
                cancel,
            },
            true,
        );
    }

    fn handle(&self) -> MasterConnection {
        MasterConnection::new(Arc::clone(&self.shared))
    }

    /// Sends `INCR k` on each handle from its own task; returns the tasks (each gives its
    /// handle back with the result).
    fn send_all(
        &self,
        handles: Vec<MasterConnection>,
    ) -> Vec<tokio::task::JoinHandle<(MasterConnection, RedisResult<Value>)>> {
        handles
            .into_iter()
            .map(|mut h| {
                self.runtime.spawn(async move {
                    let r = h.req_packed_command(redis::cmd("INCR").arg("k")).await;
                    (h, r)
                })
            })
            .collect()
    }

    fn join(
        &self,
        tasks: Vec<tokio::task::JoinHandle<(MasterConnection, RedisResult<Value>)>>,
    ) -> Vec<(MasterConnection, RedisResult<Value>)> {
        let all = async {
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.expect("task"));
            }
            out
        };
        self.runtime
            .block_on(async { tokio::time::timeout(PATIENCE, all).await })
            .expect("every command completed")
    }
}

fn failure(e: &RedisError) -> Option<Failure> {
    Failure::of(e)
}

fn assert_moved(results: &[(MasterConnection, RedisResult<Value>)]) {
    for (_, r) in results {
        let e = r
            .as_ref()
            .expect_err("in flight on the old master at the switch");
        assert_eq!(failure(e), Some(Failure::InFlight), "{e}");
        assert!(e.to_string().contains("moved away"), "{e}");
    }
}

fn assert_answered(results: &[(MasterConnection, RedisResult<Value>)]) {
    for (_, r) in results {
        assert_eq!(r.as_ref().expect("answered"), &Value::Int(1));
    }
}

/// 40 handles (clones of one) and a dedicated handle each have a command in flight on a
/// master that does not answer; the switch fails every one of them with `ConnectionAborted`
/// and closes both connections to the old master; the same handles then reach the new master
/// only.
fn switch_fails_commands_in_flight(driven: Driven) {
    let (old, new) = (FakeRedis::start(false), FakeRedis::start(true));
    let mut w = World::new(driven);
    w.switch_to(&old);
    let base = w.handle();
    let mut handles: Vec<MasterConnection> = (0..40).map(|_| base.clone()).collect();
    handles.push(base.dedicated());
    let n = handles.len();
    let tasks = w.send_all(handles);
    old.wait("every command reached the old master", |s| {
        s.commands() == n
    });
    assert_eq!(
        old.accepted(),
        2,
        "the shared connection and the dedicated one"
    );
    w.switch_to(&new);
    let results = w.join(tasks);
    assert_moved(&results);
    old.wait("every connection to the old master closed", |s| {
        s.open() == 0
    });
    let handles = results.into_iter().map(|(h, _)| h).collect();
    let results = w.join(w.send_all(handles));
    assert_answered(&results);
    assert_eq!(old.commands(), n, "nothing more reached the old master");
    assert_eq!(new.commands(), n);
    assert_eq!(
        new.accepted(),
        2,
        "the shared connection and the dedicated one"
    );
}

#[test]
fn a_switch_fails_every_command_in_flight_and_closes_the_old_connections() {
    switch_fails_commands_in_flight(Driven::Ours);
}

#[test]
fn a_switch_fails_every_command_in_flight_on_redis_driven_connections() {
    switch_fails_commands_in_flight(Driven::Redis);
}

/// Handles that sent on the old master (and, when the supervisor drives the connection, kept
/// it for the next command) send their next command to the new master after a switch, never
/// to the old one, which closes its connection although every handle still holds a clone.
fn handles_used_after_a_switch(driven: Driven) {
    let (old, new) = (FakeRedis::start(true), FakeRedis::start(true));
    let mut w = World::new(driven);
    w.switch_to(&old);
    let base = w.handle();
    let handles: Vec<MasterConnection> = (0..20).map(|_| base.clone()).collect();
    let results = w.join(w.send_all(handles));
    assert_answered(&results);
    let version = w.shared.slot.version();
    for (h, _) in &results {
        // The steady-state path: the connection is kept, and still valid.
        assert_eq!(
            h.held_version(),
            (driven == Driven::Ours).then_some(version)
        );
    }
    assert_eq!(old.commands(), 20);
    w.switch_to(&new);
    old.wait("the old master's connection closed", |s| s.open() == 0);
    let handles = results.into_iter().map(|(h, _)| h).collect();
    let results = w.join(w.send_all(handles));
    assert_answered(&results);
    assert_eq!(
        old.commands(),
        20,
        "nothing reached the old master after the switch"
    );
    assert_eq!(new.commands(), 20);
}

#[test]
fn a_handle_used_after_a_switch_never_reaches_the_old_master() {
    handles_used_after_a_switch(Driven::Ours);
}

#[test]
fn a_handle_used_after_a_switch_never_reaches_the_old_master_on_redis_driven_connections() {
    handles_used_after_a_switch(Driven::Redis);
}

/// A stop fails the commands in flight, closes the connections, and fails later commands
/// with `NotConnected`.
fn stop_fails_everything(driven: Driven) {
    let master = FakeRedis::start(false);
    let mut w = World::new(driven);
    w.switch_to(&master);
    let base = w.handle();
    let mut handles: Vec<MasterConnection> = (0..10).map(|_| base.clone()).collect();
    handles.push(base.dedicated());
    let tasks = w.send_all(handles);
    master.wait("every command in flight", |s| s.commands() == 11);
    assert!(!base.is_stopped());
    w.shared.close();
    assert!(base.is_stopped());
    let results = w.join(tasks);
    assert_moved(&results);
    master.wait("every connection closed", |s| s.open() == 0);
    let handles = results.into_iter().map(|(h, _)| h).collect();
    for (_, r) in w.join(w.send_all(handles)) {
        let e = r.expect_err("stopped");
        assert_eq!(failure(&e), Some(Failure::Stopped), "{e}");
    }
    assert_eq!(master.commands(), 11);
}

#[test]
fn a_stop_fails_commands_in_flight_and_later_ones() {
    stop_fails_everything(Driven::Ours);
}

#[test]
fn a_stop_fails_commands_in_flight_and_later_ones_on_redis_driven_connections() {
    stop_fails_everything(Driven::Redis);
}

/// The master closes every connection (a restart): the first command to notice fails (it may
/// or may not have run), and the next command of any other handle, which still kept the
/// broken connection, reconnects instead of failing on it.
fn a_broken_connection_is_replaced_for_every_handle(driven: Driven) {
    let master = FakeRedis::start(true);
    let mut w = World::new(driven);
    w.switch_to(&master);
    let mut first = w.handle();
    let second = first.clone();
    let results = w.join(w.send_all(vec![first.clone(), second]));
    assert_answered(&results);
    let mut second = results.into_iter().nth(1).expect("two").0;
    master.drop_connections();
    master.wait("the connection closed", |s| s.open() == 0);
    let broke = w
        .runtime
        .block_on(first.req_packed_command(redis::cmd("INCR").arg("k")));
    let e = broke.expect_err("sent on the closed connection");
    assert_eq!(failure(&e), Some(Failure::InFlight), "{e}");
    assert!(e.to_string().contains("broke"), "{e}");
    let again = w
        .runtime
        .block_on(second.req_packed_command(redis::cmd("INCR").arg("k")));
    assert_eq!(again.expect("reconnected"), Value::Int(1));
    assert_eq!(master.accepted(), 2);
}

#[test]
fn a_broken_connection_is_replaced_for_every_handle_that_kept_it() {
    a_broken_connection_is_replaced_for_every_handle(Driven::Ours);
}

#[test]
fn a_broken_connection_is_replaced_on_redis_driven_connections() {
    a_broken_connection_is_replaced_for_every_handle(Driven::Redis);
}

/// Pipelines take the same path: their replies come back as a list, on the new master after
/// a switch.
#[test]
fn pipelines_follow_the_switch() {
    let (old, new) = (FakeRedis::start(true), FakeRedis::start(true));
    let mut w = World::new(Driven::Ours);
    w.switch_to(&old);
    let mut h = w.handle();
    let mut pipe = redis::pipe();
    pipe.cmd("INCR")
        .arg("k")
        .cmd("INCR")
        .arg("k")
        .cmd("INCR")
        .arg("k");
    let first: Vec<i64> = w.runtime.block_on(pipe.query_async(&mut h)).expect("ok");
    assert_eq!(first, vec![1, 1, 1]);
    w.switch_to(&new);
    let second: Vec<i64> = w.runtime.block_on(pipe.query_async(&mut h)).expect("ok");
    assert_eq!(second, vec![1, 1, 1]);
    assert_eq!((old.commands(), new.commands()), (3, 3));
}
