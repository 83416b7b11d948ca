//! Hand-written flows through the core: startup, a `+switch-master`, an early-signal switch,
//! an aborted failover. They document the action sequence a runtime sees.

use dramatiq_sentinel_core::{Action, Addr, Config, Core, Event, OpId, Reply};
use std::time::{Duration, Instant};

fn data(s: &str) -> Reply {
    Reply::Data(s.as_bytes().to_vec())
}

fn master_reply(host: &str, port: u16) -> Reply {
    Reply::Array(vec![
        data("name"),
        data("svc"),
        data("ip"),
        data(host),
        data("port"),
        data(&port.to_string()),
        data("flags"),
        data("master"),
    ])
}

fn role(master: bool) -> Reply {
    if master {
        Reply::Array(vec![data("master"), Reply::Int(0), Reply::Array(vec![])])
    } else {
        Reply::Array(vec![
            data("slave"),
            data("127.0.0.1"),
            Reply::Int(7000),
            data("connected"),
            Reply::Int(0),
        ])
    }
}

struct Harness {
    core: Core,
    now: Instant,
    events: Vec<Event>,
}

impl Harness {
    fn new(cfg: Config) -> Self {
        // The one clock read: an arbitrary epoch for the virtual clock of the test.
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        Harness {
            core: Core::new(cfg, now),
            now,
            events: vec![],
        }
    }
    fn actions(&mut self) -> Vec<Action> {
        while let Some(e) = self.core.poll_event() {
            self.events.push(e);
        }
        std::iter::from_fn(|| self.core.poll_action()).collect()
    }
    fn advance(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
    }
}

fn config() -> Config {
    Config::builder()
        .sentinels(["127.0.0.1:26379", "127.0.0.1:26380"])
        .service_name("svc".into())
        .refresh_sentinels(false)
        .build()
        .expect("valid")
}

/// Startup: subscribe to both, query the first, connect, activate, resume.
fn start(h: &mut Harness) -> Vec<OpId> {
    let a = h.actions();
    let mut listeners = vec![];
    let mut query = None;
    for action in a {
        match action {
            Action::Subscribe { op, .. } => listeners.push(op),
            Action::QueryMaster {
                op,
                sentinel,
                service,
            } => {
                assert_eq!(sentinel, Addr::new("127.0.0.1", 26379));
                assert_eq!(service, "svc");
                query = Some(op);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(listeners.len(), 2);
    for op in &listeners {
        h.core.handle_listener_subscribed(h.now, *op);
    }
    h.core.handle_sentinel_reply(
        h.now,
        query.expect("queried"),
        Ok(master_reply("127.0.0.1", 7000)),
    );
    let a = h.actions();
    let [Action::Connect { op, node }] = a.as_slice() else {
        panic!("connect expected: {a:?}")
    };
    assert_eq!(*node, Addr::new("127.0.0.1", 7000));
    h.core.handle_node_reply(h.now, *op, Ok(role(true)));
    let a = h.actions();
    let [
        Action::Activate {
            op,
            node,
            old: None,
        },
    ] = a.as_slice()
    else {
        panic!("activate expected: {a:?}")
    };
    assert_eq!(*node, Addr::new("127.0.0.1", 7000));
    h.core.handle_reset_done(h.now, *op);
    assert_eq!(h.actions(), vec![Action::Resume]);
    assert!(h.events.iter().any(|e| matches!(e, Event::Ready { .. })));
    assert_eq!(h.core.master(), Some(&Addr::new("127.0.0.1", 7000)));
    listeners
}

#[test]
fn startup_then_switch_master() {
    let mut h = Harness::new(config());
    let listeners = start(&mut h);
    h.advance(10);
    h.core.handle_listener_message(
        h.now,
        listeners[0],
        b"+switch-master",
        b"svc 127.0.0.1 7000 127.0.0.1 7001",
    );
    let a = h.actions();
    assert!(
        matches!(
            a.as_slice(),
            [
                Action::Fence,
                Action::PauseWorkers { .. },
                Action::Connect { .. }
            ]
        ),
        "{a:?}"
    );
    let (Action::PauseWorkers { op: pause }, Action::Connect { op: conn, node }) = (&a[1], &a[2])
    else {
        unreachable!()
    };
    assert_eq!(*node, Addr::new("127.0.0.1", 7001));
    // The same event from the second sentinel coalesces.
    h.core.handle_listener_message(
        h.now,
        listeners[1],
        b"+switch-master",
        b"svc 127.0.0.1 7000 127.0.0.1 7001",
    );
    assert!(h.actions().is_empty());
    h.core.handle_node_reply(h.now, *conn, Ok(role(true)));
    let a = h.actions();
    let [
        Action::Activate {
            op, old: Some(old), ..
        },
    ] = a.as_slice()
    else {
        panic!("{a:?}")
    };
    assert_eq!(*old, Addr::new("127.0.0.1", 7000));
    h.core.handle_reset_done(h.now, *op);
    assert!(
        h.actions().is_empty(),
        "no resume before the workers paused"
    );
    h.advance(5);
    h.core.handle_workers_paused(h.now, *pause);
    assert_eq!(h.actions(), vec![Action::Resume]);
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::SwitchCompleted { .. }))
    );
}

#[test]
fn early_signal_switches_before_switch_master() {
    let mut h = Harness::new(config());
    let listeners = start(&mut h);
    h.core.handle_listener_message(
        h.now,
        listeners[0],
        b"+try-failover",
        b"master svc 127.0.0.1 7000",
    );
    let a = h.actions();
    let [Action::Fence, Action::PauseWorkers { op: pause }] = a.as_slice() else {
        panic!("{a:?}")
    };
    let pause = *pause;
    h.core.handle_listener_message(
        h.now,
        listeners[1],
        b"+selected-slave",
        b"slave 127.0.0.1:7001 127.0.0.1 7001 @ svc 127.0.0.1 7000",
    );
    let a = h.actions();
    let [Action::PollRole { op, node }] = a.as_slice() else {
        panic!("{a:?}")
    };
    assert_eq!(*node, Addr::new("127.0.0.1", 7001));
    h.core.handle_node_reply(h.now, *op, Ok(role(false)));
    assert!(h.actions().is_empty());
    let t = h.core.poll_timeout().expect("deadline");
    h.now = t.at;
    h.core.handle_timeout(h.now);
    let a = h.actions();
    let [Action::PollRole { op, .. }] = a.as_slice() else {
        panic!("{a:?}")
    };
    h.core.handle_node_reply(h.now, *op, Ok(role(true)));
    let a = h.actions();
    let [Action::Connect { op, .. }] = a.as_slice() else {
        panic!("{a:?}")
    };
    h.core.handle_node_reply(h.now, *op, Ok(role(true)));
    let a = h.actions();
    let [Action::Activate { op, .. }] = a.as_slice() else {
        panic!("{a:?}")
    };
    h.core.handle_reset_done(h.now, *op);
    h.core.handle_workers_paused(h.now, pause);
    assert_eq!(h.actions(), vec![Action::Resume]);
    // The late +switch-master is a duplicate.
    h.core.handle_listener_message(
        h.now,
        listeners[0],
        b"+switch-master",
        b"svc 127.0.0.1 7000 127.0.0.1 7001",
    );
    assert!(h.actions().is_empty());
}

#[test]
fn aborted_failover_lifts_the_fence() {
    let mut h = Harness::new(config());
    let listeners = start(&mut h);
    h.core.handle_listener_message(
        h.now,
        listeners[0],
        b"+odown",
        b"master svc 127.0.0.1 7000 #quorum 2/2",
    );
    let a = h.actions();
    let [Action::Fence, Action::PauseWorkers { op: pause }] = a.as_slice() else {
        panic!("{a:?}")
    };
    let pause = *pause;
    h.core.handle_workers_paused(h.now, pause);
    h.core
        .handle_listener_message(h.now, listeners[0], b"-odown", b"master svc 127.0.0.1 7000");
    let a = h.actions();
    let [Action::PollRole { op, node }] = a.as_slice() else {
        panic!("{a:?}")
    };
    assert_eq!(*node, Addr::new("127.0.0.1", 7000));
    h.core.handle_node_reply(h.now, *op, Ok(role(true)));
    assert_eq!(h.actions(), vec![Action::Resume]);
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::FenceLifted { .. }))
    );
}

#[test]
fn other_service_is_ignored() {
    let mut h = Harness::new(config());
    let listeners = start(&mut h);
    h.core.handle_listener_message(
        h.now,
        listeners[0],
        b"+switch-master",
        b"other 127.0.0.1 8000 127.0.0.1 8001",
    );
    h.core.handle_listener_message(
        h.now,
        listeners[0],
        b"+try-failover",
        b"master other 127.0.0.1 8000",
    );
    assert!(h.actions().is_empty());
    assert!(!h.core.is_fenced());
}
