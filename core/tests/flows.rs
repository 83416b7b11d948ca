//! Hand-written flows through the core: startup, a `+switch-master`, an early-signal switch,
//! an aborted failover. They document the action sequence a runtime sees.

use dramatiq_sentinel_core::{
    Action, Addr, Config, Core, DetectionPath, Event, Input, IoError, OpId, Reply, TimerReason,
};
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
    fn feed(&mut self, input: Input) {
        self.core.handle(self.now, input);
    }
    fn subscribed(&mut self, op: OpId) {
        self.feed(Input::Subscribed { op });
    }
    fn message(&mut self, op: OpId, channel: &[u8], payload: &[u8]) {
        self.feed(Input::Message {
            op,
            channel: channel.to_vec(),
            payload: payload.to_vec(),
        });
    }
    fn listener_failed(&mut self, op: OpId, reason: &str) {
        let error = IoError::unreachable(reason);
        self.feed(Input::ListenerFailed { op, error });
    }
    fn sentinel_reply(&mut self, op: OpId, reply: Result<Reply, &str>) {
        let reply = reply.map_err(IoError::unreachable);
        self.feed(Input::SentinelReply { op, reply });
    }
    fn node_reply(&mut self, op: OpId, reply: Result<Reply, &str>) {
        let reply = reply.map_err(IoError::unreachable);
        self.feed(Input::NodeReply { op, reply });
    }
    fn watch_closed(&mut self, op: OpId) {
        self.feed(Input::WatchClosed { op });
    }
    fn activated(&mut self, op: OpId) {
        self.feed(Input::Activated { op });
    }
    fn activation_failed(&mut self, op: OpId, reason: &str) {
        let reason = reason.to_owned();
        self.feed(Input::ActivationFailed { op, reason });
    }
    fn paused(&mut self, op: OpId) {
        self.feed(Input::Paused { op });
    }
}

fn config() -> Config {
    Config::builder()
        .watch_replicas(false) // flows with replica watches are at the end
        .deposed_pause(None) // its own flow: a_deposed_master_alive_at_the_fence_is_paused
        .sentinels(["127.0.0.1:26379", "127.0.0.1:26380"])
        .service_name("svc")
        .refresh_sentinels(false)
        .build()
        .expect("valid")
}

/// After the activation of a switch away from a master, `a`: the lost-write check (the new
/// master's `INFO replication`, the old master's `ROLE`) and `Resume` after it, when the old
/// master answered the fence (writes it acknowledged after that are handed back first); else
/// `Resume` at once, the check going on. Answers the check with "nothing lost".
fn assert_resumed(h: &mut Harness, a: Vec<Action>) {
    match a.as_slice() {
        [
            Action::QueryReplication { .. },
            Action::PollRole { .. },
            Action::Resume,
        ] => {}
        [
            Action::QueryReplication { op: info, .. },
            Action::PollRole { op: role_op, .. },
        ] => {
            let (info, role_op) = (*info, *role_op);
            h.node_reply(info, Ok(promoted_at(-1)));
            assert!(h.actions().is_empty(), "no resume before the check");
            h.node_reply(role_op, Ok(master_role_at(0)));
            assert_eq!(h.actions(), vec![Action::Resume]);
        }
        other => panic!("the lost-write check and resume: {other:?}"),
    }
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
        h.subscribed(*op);
        // The sentinels' epoch: every message of a failover follows its `+new-epoch` (sent by
        // the leader when it starts the attempt, by the others when they vote or learn it).
        h.message(*op, b"+new-epoch", b"1");
    }
    h.sentinel_reply(query.expect("queried"), Ok(master_reply("127.0.0.1", 7000)));
    let a = h.actions();
    let [Action::Connect { op, node }] = a.as_slice() else {
        panic!("connect expected: {a:?}")
    };
    assert_eq!(*node, Addr::new("127.0.0.1", 7000));
    h.node_reply(*op, Ok(role(true)));
    let a = h.actions();
    let [
        Action::Activate {
            op,
            node,
            old: None,
            ..
        },
    ] = a.as_slice()
    else {
        panic!("activate expected: {a:?}")
    };
    assert_eq!(*node, Addr::new("127.0.0.1", 7000));
    h.activated(*op);
    if h.core.config().watch_replicas() {
        return listeners; // `start_watching` goes on
    }
    assert_eq!(h.actions(), vec![Action::Resume]);
    assert!(h.events.iter().any(|e| matches!(e, Event::Ready { .. })));
    assert_eq!(h.core.master(), Some(&Addr::new("127.0.0.1", 7000)));
    listeners
}

/// A `+switch-master`: fence, connect, activate, resume. Without a drain (the default) the
/// workers resume the moment the new master is active; with `drain`, only once the jobs in
/// flight are done.
fn switch_master_flow(drain: bool) {
    let cfg = Config::builder()
        .watch_replicas(false) // flows with replica watches are at the end
        .deposed_pause(None) // its own flow: a_deposed_master_alive_at_the_fence_is_paused
        .sentinels(["127.0.0.1:26379", "127.0.0.1:26380"])
        .service_name("svc")
        .refresh_sentinels(false)
        .drain(drain)
        .build()
        .expect("valid");
    let mut h = Harness::new(cfg);
    let listeners = start(&mut h);
    h.advance(10);
    h.message(
        listeners[0],
        b"+switch-master",
        b"svc 127.0.0.1 7000 127.0.0.1 7001",
    );
    let a = h.actions();
    // Fence, ask the old master its replication offset, (drain,) connect to the new one.
    let (probe, pause, conn, node) = match a.as_slice() {
        [
            Action::Fence,
            Action::PollRole { op: probe, .. },
            Action::PauseWorkers { op: pause },
            Action::Connect { op, node },
        ] if drain => (*probe, Some(*pause), *op, node.clone()),
        [
            Action::Fence,
            Action::PollRole { op: probe, .. },
            Action::Connect { op, node },
        ] if !drain => (*probe, None, *op, node.clone()),
        other => panic!("drain {drain}: {other:?}"),
    };
    assert_eq!(node, Addr::new("127.0.0.1", 7001));
    h.node_reply(probe, Ok(role(true)));
    // The same event from the second sentinel coalesces.
    h.message(
        listeners[1],
        b"+switch-master",
        b"svc 127.0.0.1 7000 127.0.0.1 7001",
    );
    assert!(h.actions().is_empty());
    h.node_reply(conn, Ok(role(true)));
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
    h.activated(*op);
    let a = h.actions();
    if let Some(pause) = pause {
        assert!(!a.contains(&Action::Resume), "no resume before the drain");
        h.advance(5);
        h.paused(pause);
        assert_resumed(&mut h, a);
    } else {
        assert_resumed(&mut h, a);
    }
    let to_paused = h.events.iter().find_map(|e| match e {
        Event::SwitchCompleted {
            old: Some(_),
            to_paused,
            ..
        } => Some(*to_paused),
        _ => None,
    });
    assert_eq!(to_paused.expect("switch completed").is_some(), drain);
    assert!(
        !h.events
            .iter()
            .any(|e| matches!(e, Event::WritesLost { .. })),
        "nothing lost"
    );
}

#[test]
fn startup_then_switch_master() {
    switch_master_flow(false);
}

#[test]
fn startup_then_switch_master_with_a_drain() {
    switch_master_flow(true);
}

#[test]
fn early_signal_switches_before_switch_master() {
    let mut h = Harness::new(config());
    let listeners = start(&mut h);
    h.message(listeners[0], b"+try-failover", b"master svc 127.0.0.1 7000");
    let a = h.actions();
    let [Action::Fence, Action::PollRole { .. }] = a.as_slice() else {
        panic!("{a:?}")
    };
    h.message(
        listeners[1],
        b"+selected-slave",
        b"slave 127.0.0.1:7001 127.0.0.1 7001 @ svc 127.0.0.1 7000",
    );
    // The candidate is watched: one connection, its ROLE reply is the first poll.
    let a = h.actions();
    let [Action::Watch { op: watch, node }] = a.as_slice() else {
        panic!("{a:?}")
    };
    let watch = *watch;
    assert_eq!(*node, Addr::new("127.0.0.1", 7001));
    h.node_reply(watch, Ok(role(false)));
    assert!(h.actions().is_empty());
    // A slow fallback poll runs on the open watch's node meanwhile.
    let t = h.core.poll_timeout().expect("deadline");
    h.now = t.at;
    h.core.handle_timeout(h.now);
    let a = h.actions();
    let [Action::PollRole { op, .. }] = a.as_slice() else {
        panic!("{a:?}")
    };
    h.node_reply(*op, Ok(role(false)));
    assert!(h.actions().is_empty());
    // Sentinel promotes the candidate and closes its client connections: the watch closes,
    // and the broker connection to the candidate opens at once (its ROLE reply decides).
    h.advance(3);
    h.watch_closed(watch);
    let a = h.actions();
    let [Action::Connect { op, node }] = a.as_slice() else {
        panic!("{a:?}")
    };
    assert_eq!(*node, Addr::new("127.0.0.1", 7001));
    h.node_reply(*op, Ok(role(true)));
    let a = h.actions();
    let [Action::Activate { op, .. }] = a.as_slice() else {
        panic!("{a:?}")
    };
    h.activated(*op);
    let a = h.actions();
    assert_resumed(&mut h, a);
    // The late +switch-master is a duplicate.
    h.message(
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
    h.message(
        listeners[0],
        b"+odown",
        b"master svc 127.0.0.1 7000 #quorum 2/2",
    );
    let a = h.actions();
    let [Action::Fence, Action::PollRole { .. }] = a.as_slice() else {
        panic!("{a:?}")
    };
    h.message(listeners[0], b"-odown", b"master svc 127.0.0.1 7000");
    let a = h.actions();
    let [Action::PollRole { op, node }] = a.as_slice() else {
        panic!("{a:?}")
    };
    assert_eq!(*node, Addr::new("127.0.0.1", 7000));
    h.node_reply(*op, Ok(role(true)));
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
    h.message(
        listeners[0],
        b"+switch-master",
        b"other 127.0.0.1 8000 127.0.0.1 8001",
    );
    h.message(
        listeners[0],
        b"+try-failover",
        b"master other 127.0.0.1 8000",
    );
    assert!(h.actions().is_empty());
    assert!(!h.core.is_fenced());
}

/// Runs every deadline up to `until`, collecting the actions.
fn run_until(h: &mut Harness, until: Instant) -> Vec<Action> {
    let mut out = h.actions();
    while let Some(t) = h.core.poll_timeout().filter(|t| t.at <= until) {
        h.now = t.at;
        h.core.handle_timeout(h.now);
        out.extend(h.actions());
    }
    h.now = until;
    out
}

#[test]
fn a_failed_activation_is_verified_again_not_waited_on() {
    let mut h = Harness::new(config());
    let a = h.actions();
    let Some(query) = a.iter().find_map(|a| match a {
        Action::QueryMaster { op, .. } => Some(*op),
        _ => None,
    }) else {
        panic!("{a:?}")
    };
    h.sentinel_reply(query, Ok(master_reply("127.0.0.1", 7000)));
    let a = h.actions();
    let [Action::Connect { op, .. }] = a.as_slice() else {
        panic!("{a:?}")
    };
    h.node_reply(*op, Ok(role(true)));
    let a = h.actions();
    let [Action::Activate { op, .. }] = a.as_slice() else {
        panic!("{a:?}")
    };
    h.activation_failed(*op, "no prepared connection");
    assert!(h.actions().is_empty(), "nothing until the retry delay");
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::VerificationFailed { reason, .. } if reason.contains("activation failed")
    )));
    assert!(h.core.is_fenced() && h.core.master().is_none());
    // The sentinels are asked again after the (jittered) retry delay, and the node connected anew.
    let until = h.now + Duration::from_millis(200);
    let a = run_until(&mut h, until);
    let Some(query) = a.iter().find_map(|a| match a {
        Action::QueryMaster { op, .. } => Some(*op),
        _ => None,
    }) else {
        panic!("{a:?}")
    };
    h.sentinel_reply(query, Ok(master_reply("127.0.0.1", 7000)));
    let a = h.actions();
    let [Action::Connect { op, .. }] = a.as_slice() else {
        panic!("{a:?}")
    };
    h.node_reply(*op, Ok(role(true)));
    let a = h.actions();
    let [Action::Activate { op, .. }] = a.as_slice() else {
        panic!("{a:?}")
    };
    h.activated(*op);
    assert_eq!(h.actions(), vec![Action::Resume]);
}

fn sentinels_reply(ports: &[u16]) -> Reply {
    Reply::Array(
        ports
            .iter()
            .map(|p| {
                Reply::Array(vec![
                    data("ip"),
                    data("127.0.0.1"),
                    data("port"),
                    data(&p.to_string()),
                ])
            })
            .collect(),
    )
}

/// Answers a `QueryMaster` with the master 7000 and a `Connect` with `ROLE` master, and
/// completes activations; returns the other actions.
fn serve(h: &mut Harness, actions: Vec<Action>) -> Vec<Action> {
    let mut rest = vec![];
    let mut queue: std::collections::VecDeque<Action> = actions.into();
    while let Some(a) = queue.pop_front() {
        match a {
            Action::QueryMaster { op, .. } => {
                h.sentinel_reply(op, Ok(master_reply("127.0.0.1", 7000)));
            }
            Action::Connect { op, .. } => h.node_reply(op, Ok(role(true))),
            Action::Activate { op, .. } => h.activated(op),
            other => rest.push(other),
        }
        queue.extend(h.actions());
    }
    rest
}

/// A started core with one configured sentinel (whose listener is up) that lists `learned`:
/// the harness and the learned sentinels' listener ops.
fn start_learning(max_sentinels: usize, learned: &[u16]) -> (Harness, Vec<(OpId, Addr)>) {
    let cfg = Config::builder()
        .watch_replicas(false) // flows with replica watches are at the end
        .deposed_pause(None) // its own flow: a_deposed_master_alive_at_the_fence_is_paused
        .sentinels(["127.0.0.1:26379"])
        .service_name("svc")
        .max_sentinels(max_sentinels)
        .forget_sentinel_after(Duration::from_secs(60))
        .min_backoff(Duration::from_secs(1))
        .max_backoff(Duration::from_secs(8))
        .build()
        .expect("valid");
    let mut h = Harness::new(cfg);
    let first = h.actions();
    let rest = serve(&mut h, first);
    for a in &rest {
        if let Action::Subscribe { op, .. } = a {
            h.subscribed(*op);
        }
    }
    let refresh = rest.iter().find_map(|a| match a {
        Action::QuerySentinels { op, .. } => Some(*op),
        _ => None,
    });
    assert!(h.core.master().is_some() && !h.core.is_fenced());
    h.sentinel_reply(refresh.expect("refresh"), Ok(sentinels_reply(learned)));
    // (the configured listener's subscription started a re-check: answer it too)
    let next = h.actions();
    let subs = serve(&mut h, next)
        .into_iter()
        .filter_map(|a| match a {
            Action::Subscribe { op, sentinel } => Some((op, sentinel)),
            _ => None,
        })
        .collect();
    (h, subs)
}

/// A listener (re)subscribes: the core re-checks the master with the sentinels, which
/// refreshes the sentinel list; answers the refresh with `listed`.
fn refresh_through(h: &mut Harness, subscribed: OpId, listed: &[u16]) -> Vec<Action> {
    h.subscribed(subscribed);
    let first = h.actions();
    let rest = serve(h, first);
    let Some(refresh) = rest.iter().find_map(|a| match a {
        Action::QuerySentinels { op, .. } => Some(*op),
        _ => None,
    }) else {
        panic!("no refresh: {rest:?}")
    };
    h.sentinel_reply(refresh, Ok(sentinels_reply(listed)));
    h.actions()
}

fn forgotten(h: &Harness) -> Vec<(Addr, String)> {
    h.events
        .iter()
        .filter_map(|e| match e {
            Event::SentinelForgotten { sentinel, reason } => {
                Some((sentinel.clone(), reason.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn learned_sentinels_no_longer_listed_are_forgotten() {
    let (mut h, subs) = start_learning(8, &[26380, 26381]);
    assert_eq!(subs.len(), 2);
    assert_eq!(h.core.sentinels().count(), 3);
    // An operator replaced 26381 by 26382: a refresh lists 26380 and 26382 only.
    let a = refresh_through(&mut h, subs[0].0, &[26380, 26382]);
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::CloseListener { op } if *op == subs[1].0)),
        "{a:?}"
    );
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::Subscribe { sentinel, .. } if sentinel.port() == 26382))
    );
    let gone = forgotten(&h);
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!(gone[0].0, Addr::new("127.0.0.1", 26381));
    let ports: Vec<u16> = h.core.sentinels().map(Addr::port).collect();
    assert_eq!(ports, vec![26379, 26380, 26382], "the freed slot is reused");
    // A sentinel that lists nobody (just started) proves nothing: no one is forgotten.
    let (mut h, subs) = start_learning(8, &[26380]);
    let _ = refresh_through(&mut h, subs[0].0, &[]);
    assert!(forgotten(&h).is_empty());
}

#[test]
fn learned_sentinels_unreachable_for_long_are_forgotten() {
    let (mut h, subs) = start_learning(8, &[26380]);
    let (op, sentinel) = subs[0].clone();
    h.listener_failed(op, "connection refused");
    // It keeps failing: retried with backoff until forget_sentinel_after (60 s), then forgotten.
    let mut attempts = 1;
    let end = h.now + Duration::from_secs(120);
    while h.now < end && forgotten(&h).is_empty() {
        let Some(t) = h.core.poll_timeout() else {
            break;
        };
        h.now = t.at;
        h.core.handle_timeout(h.now);
        for a in h.actions() {
            if let Action::Subscribe { op, sentinel: s } = a
                && s == sentinel
            {
                attempts += 1;
                h.listener_failed(op, "connection refused");
            }
        }
        let _ = h.actions();
    }
    let gone = forgotten(&h);
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert!(gone[0].1.contains("forget_sentinel_after"), "{gone:?}");
    assert!(attempts >= 5, "retried {attempts} times first");
    // Only the configured sentinel is left: it is never forgotten, however long it fails.
    let left: Vec<Addr> = h.core.sentinels().cloned().collect();
    assert_eq!(left, vec![Addr::new("127.0.0.1", 26379)]);
    assert!(!h.core.is_stopped());
}

#[test]
fn at_max_sentinels_an_unreachable_learned_one_makes_room() {
    let (mut h, subs) = start_learning(3, &[26380, 26381]);
    assert_eq!(h.core.sentinels().count(), 3);
    // 26381 cannot be reached; 26380 subscribes. A refresh then lists a new one, 26382.
    h.listener_failed(subs[1].0, "connection refused");
    let _ = h.actions();
    let _ = refresh_through(&mut h, subs[0].0, &[26380, 26381, 26382]);
    let gone = forgotten(&h);
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!(gone[0].0.port(), 26381);
    assert!(gone[0].1.contains("max_sentinels"), "{gone:?}");
    let ports: Vec<u16> = h.core.sentinels().map(Addr::port).collect();
    assert_eq!(ports, vec![26379, 26380, 26382]);
    // With every tracked sentinel reachable, a new one is not learned at the limit.
    let (mut h, subs) = start_learning(2, &[26380]);
    let _ = refresh_through(&mut h, subs[0].0, &[26380, 26381]);
    assert!(forgotten(&h).is_empty());
    assert_eq!(h.core.sentinels().count(), 2);
}

#[test]
fn a_watch_closed_without_a_promotion_goes_back_to_watching() {
    let mut h = Harness::new(config());
    let listeners = start(&mut h);
    h.message(
        listeners[0],
        b"+selected-slave",
        b"slave 127.0.0.1:7001 127.0.0.1 7001 @ svc 127.0.0.1 7000",
    );
    let a = h.actions();
    let Some(watch) = a.iter().find_map(|a| match a {
        Action::Watch { op, .. } => Some(*op),
        _ => None,
    }) else {
        panic!("{a:?}")
    };
    h.node_reply(watch, Ok(role(false)));
    let _ = h.actions();
    // The watch connection breaks, but the candidate is still a replica (a network blip).
    h.watch_closed(watch);
    let a = h.actions();
    let [Action::Connect { op, .. }] = a.as_slice() else {
        panic!("{a:?}")
    };
    h.node_reply(*op, Ok(role(false)));
    let a = h.actions();
    let [Action::Discard { .. }] = a.as_slice() else {
        panic!("{a:?}")
    };
    // At the next poll (within the poll interval) it is watched again.
    let t = h.core.poll_timeout().expect("the next poll");
    assert!(t.at <= h.now + Duration::from_millis(100), "{t:?}");
    h.now = t.at;
    h.core.handle_timeout(h.now);
    let a = h.actions();
    let [Action::Watch { op, node }] = a.as_slice() else {
        panic!("{a:?}")
    };
    assert_eq!(*node, Addr::new("127.0.0.1", 7001), "watched again");
    assert!(
        !h.events.iter().any(|e| matches!(
            e,
            Event::VerificationFailed { .. } | Event::SwitchDetected { old: Some(_), .. }
        )),
        "{:?}",
        h.events
    );
    // Promoted later: the new watch's ROLE says master, the switch goes on as usual.
    h.node_reply(*op, Ok(role(true)));
    let a = h.actions();
    assert!(
        matches!(
            a.as_slice(),
            [Action::Connect { .. }, Action::Unwatch { .. }]
        ),
        "{a:?}"
    );
}

#[test]
fn a_watch_killed_before_its_role_answer_connects_at_once() {
    let mut h = Harness::new(config());
    let listeners = start(&mut h);
    h.message(
        listeners[0],
        b"+selected-slave",
        b"slave 127.0.0.1:7001 127.0.0.1 7001 @ svc 127.0.0.1 7000",
    );
    let a = h.actions();
    let Some(watch) = a.iter().find_map(|a| match a {
        Action::Watch { op, .. } => Some(*op),
        _ => None,
    }) else {
        panic!("{a:?}")
    };
    // The promotion closed the watch connection before it answered ROLE.
    h.node_reply(watch, Err("connection closed"));
    let a = h.actions();
    let [Action::Connect { op, node }] = a.as_slice() else {
        panic!("{a:?}")
    };
    assert_eq!(*node, Addr::new("127.0.0.1", 7001));
    h.node_reply(*op, Ok(role(true)));
    let a = h.actions();
    assert!(matches!(a.as_slice(), [Action::Activate { .. }]), "{a:?}");
    // A candidate that refuses connections is not retried in a loop: one watch and one
    // connection per poll interval at most.
    let mut h = Harness::new(config());
    let listeners = start(&mut h);
    h.message(
        listeners[0],
        b"+selected-slave",
        b"slave 127.0.0.1:7001 127.0.0.1 7001 @ svc 127.0.0.1 7000",
    );
    let mut attempts = 0;
    let end = h.now + Duration::from_secs(1);
    let mut pending: Vec<Action> = h.actions();
    while h.now < end {
        for a in std::mem::take(&mut pending) {
            if let Action::Watch { op, .. }
            | Action::Connect { op, .. }
            | Action::PollRole { op, .. } = a
            {
                attempts += 1;
                h.node_reply(op, Err("connection refused"));
            }
        }
        pending = h.actions();
        if pending.is_empty() {
            let Some(t) = h.core.poll_timeout() else {
                break;
            };
            h.now = t.at.max(h.now);
            h.core.handle_timeout(h.now);
            pending = h.actions();
        }
    }
    assert!(attempts <= 2 * 21, "{attempts} attempts in 1 s");
    assert!(attempts >= 10, "{attempts} attempts in 1 s");
}

fn master_reply_at(host: &str, port: u16, config_epoch: u64) -> Reply {
    let Reply::Array(mut fields) = master_reply(host, port) else {
        unreachable!("an array")
    };
    fields.extend([data("config-epoch"), data(&config_epoch.to_string())]);
    Reply::Array(fields)
}

/// A `+switch-master` on a connection whose epoch the core does not know yet (subscribed
/// after the sentinel's last `+new-epoch`) may be old news: the core fences and asks the
/// sentinels, whose answers carry the configuration epoch, instead of following it. An answer
/// naming an older configuration than one already named is not believed either.
#[test]
fn unknown_epochs_are_asked_not_followed() {
    let mut h = Harness::new(config());
    let listeners = start(&mut h);
    // The first listener reconnects (at once: it was subscribed): its epoch is unknown again.
    h.listener_failed(listeners[0], "connection reset");
    let until = h.now + Duration::from_millis(1);
    let a = run_until(&mut h, until);
    let Some(resubscribe) = a.iter().find_map(|a| match a {
        Action::Subscribe { op, .. } => Some(*op),
        _ => None,
    }) else {
        panic!("{a:?}")
    };
    h.subscribed(resubscribe);
    // After a reconnection the core checks the master: confirmed at epoch 1.
    let a = h.actions();
    let Some(check) = a.iter().find_map(|a| match a {
        Action::QueryMaster { op, .. } => Some(*op),
        _ => None,
    }) else {
        panic!("{a:?}")
    };
    h.sentinel_reply(check, Ok(master_reply_at("127.0.0.1", 7000, 1)));
    let _ = h.actions();
    assert_eq!(h.core.master_epoch(), Some(1));
    h.message(
        resubscribe,
        b"+switch-master",
        b"svc 127.0.0.1 7000 127.0.0.1 7001",
    );
    let a = h.actions();
    assert!(a.contains(&Action::Fence), "{a:?}");
    assert!(
        !a.iter().any(|a| matches!(a, Action::Connect { .. })),
        "not followed: {a:?}"
    );
    let Some(query) = a.iter().find_map(|a| match a {
        Action::QueryMaster { op, .. } => Some(*op),
        _ => None,
    }) else {
        panic!("the sentinels are asked: {a:?}")
    };
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::MessageIgnored {
            reason: dramatiq_sentinel_core::IgnoreReason::Unproven(_),
            ..
        }
    )));
    // A sentinel names 7001 at epoch 3: the core moves there.
    h.sentinel_reply(query, Ok(master_reply_at("127.0.0.1", 7001, 3)));
    let a = h.actions();
    let Some((op, node)) = a.iter().find_map(|a| match a {
        Action::Connect { op, node } => Some((*op, node.clone())),
        _ => None,
    }) else {
        panic!("{a:?}")
    };
    assert_eq!(node, Addr::new("127.0.0.1", 7001));
    h.node_reply(op, Ok(role(true)));
    let a = h.actions();
    let [Action::Activate { op, .. }] = a.as_slice() else {
        panic!("{a:?}")
    };
    h.activated(*op);
    let a = h.actions();
    assert_resumed(&mut h, a);
    assert_eq!(h.core.master_epoch(), Some(3));
}

fn master_role_at(offset: i64) -> Reply {
    Reply::Array(vec![
        data("master"),
        Reply::Int(offset),
        Reply::Array(vec![]),
    ])
}

/// `INFO replication` of a master promoted from history `a1` at `second` (its
/// `second_repl_offset`).
fn promoted_at(second: i64) -> Reply {
    data(&format!(
        "# Replication\r\nrole:master\r\nmaster_replid:b2\r\nmaster_replid2:a1\r\n\
         master_repl_offset:{}\r\nsecond_repl_offset:{second}\r\n",
        second + 10
    ))
}

/// After a switch the core asks the new master where it left the old history (`INFO
/// replication`) and the old master how far that history went (`ROLE`): when the old master
/// went further and still says master, the missing bytes are read from its backlog (`PSYNC`)
/// and handed back with `WritesLost`; when it no longer answers as a master, the loss is
/// reported with the offset it gave at the fence, without the commands; nothing when the new
/// master has everything, or when the bytes read back are only the stream's own traffic
/// (replication pings, Sentinel's hello messages).
#[test]
fn lost_writes_are_read_back_from_the_old_master() {
    #[derive(PartialEq)]
    enum Old {
        Master,
        /// A master whose stream went further with pings and Sentinel's hellos only.
        Quiet,
        Demoted,
    }
    let cases = [
        (4201, Old::Master, Some(800)),
        (5001, Old::Master, None),
        (4201, Old::Quiet, Some(800)),
        (4201, Old::Demoted, Some(800)),
    ];
    for (second, old, lost) in cases {
        let mut h = Harness::new(config());
        let listeners = start(&mut h);
        h.message(
            listeners[0],
            b"+switch-master",
            b"svc 127.0.0.1 7000 127.0.0.1 7001",
        );
        let a = h.actions();
        let [
            Action::Fence,
            Action::PollRole { op: probe, node },
            Action::Connect { op: conn, .. },
        ] = a.as_slice()
        else {
            panic!("{a:?}")
        };
        assert_eq!(node.port(), 7000, "the old master is asked at the fence");
        h.node_reply(*probe, Ok(master_role_at(5000)));
        h.node_reply(*conn, Ok(role(true)));
        let a = h.actions();
        let [Action::Activate { op, .. }] = a.as_slice() else {
            panic!("{a:?}")
        };
        h.activated(*op);
        let a = h.actions();
        // The old master answered the fence: the check holds the resumption.
        let [
            Action::QueryReplication {
                op: info,
                node: new,
            },
            Action::PollRole {
                op: role_op,
                node: old_node,
            },
        ] = a.as_slice()
        else {
            panic!("the check, no resume yet: {a:?}")
        };
        assert_eq!((new.port(), old_node.port()), (7001, 7000));
        h.node_reply(*info, Ok(promoted_at(second)));
        let old_role = match old {
            Old::Master | Old::Quiet => master_role_at(5000),
            Old::Demoted => replica_of(7001),
        };
        h.node_reply(*role_op, Ok(old_role));
        let a = h.actions();
        if let (Old::Master | Old::Quiet, Some(bytes)) = (&old, lost) {
            let [
                Action::ReadBacklog {
                    op,
                    node,
                    replid,
                    offset,
                    bytes: b,
                },
            ] = a.as_slice()
            else {
                panic!("a backlog read: {a:?}")
            };
            assert_eq!(
                (node.port(), replid.as_str(), *offset, *b),
                (7000, "a1", 4201, bytes)
            );
            let mut stream = b"*1\r\n$4\r\nPING\r\n".to_vec();
            stream.extend(b"*3\r\n$7\r\nPUBLISH\r\n$18\r\n__sentinel__:hello\r\n$2\r\nhi\r\n");
            if old == Old::Master {
                stream.extend(b"*3\r\n$5\r\nRPUSH\r\n$1\r\nq\r\n$2\r\nj1\r\n");
            }
            h.feed(Input::Backlog {
                op: *op,
                result: Ok(stream),
            });
            if old == Old::Quiet {
                assert_eq!(h.actions(), vec![Action::Resume], "nothing to hand back");
                assert!(
                    h.events.iter().any(|e| matches!(
                        e,
                        Event::NothingLost {
                            old_offset: Some(5000),
                            new_offset: Some(4200),
                            old_answered: true,
                            ..
                        }
                    )),
                    "{:?}",
                    h.events
                );
                assert!(
                    !h.events
                        .iter()
                        .any(|e| matches!(e, Event::WritesLost { .. }))
                );
                continue;
            }
            // Handed to the application before anything else reaches the new master.
            let a = h.actions();
            let [
                Action::HandBack {
                    op,
                    old,
                    new,
                    commands,
                },
            ] = a.as_slice()
            else {
                panic!("a hand-back: {a:?}")
            };
            assert_eq!((old.port(), new.port(), commands.len()), (7000, 7001, 1));
            let op = *op;
            h.advance(3);
            h.feed(Input::HandedBack { op });
            assert_eq!(h.actions(), vec![Action::Resume]);
        } else {
            assert_eq!(a, vec![Action::Resume], "nothing to hand back");
        }
        let reported: Vec<_> = h
            .events
            .iter()
            .filter_map(|e| match e {
                Event::WritesLost {
                    old,
                    new,
                    old_offset: 5000,
                    new_offset: 4200,
                    bytes,
                    commands,
                    unread,
                } => Some((
                    old.port(),
                    new.port(),
                    *bytes,
                    commands.clone(),
                    unread.clone(),
                )),
                Event::WritesLost { .. } => panic!("wrong offsets: {e:?}"),
                _ => None,
            })
            .collect();
        match (old, lost) {
            (_, None) => assert!(reported.is_empty(), "{reported:?}"),
            (Old::Master | Old::Quiet, Some(bytes)) => {
                let [(7000, 7001, b, Some(commands), None)] = reported.as_slice() else {
                    panic!("{reported:?}")
                };
                assert_eq!(*b, bytes);
                assert_eq!(
                    commands.len(),
                    1,
                    "PING and hellos are the stream's own: {commands:?}"
                );
                assert_eq!(commands[0].args, [&b"RPUSH"[..], b"q", b"j1"]);
            }
            (Old::Demoted, Some(bytes)) => {
                let [(7000, 7001, b, None, Some(why))] = reported.as_slice() else {
                    panic!("{reported:?}")
                };
                assert_eq!(*b, bytes);
                assert!(why.contains("no longer answers as a master"), "{why}");
            }
        }
    }
}

fn replicas_reply(ports: &[u16]) -> Reply {
    Reply::Array(
        ports
            .iter()
            .map(|p| {
                Reply::Array(vec![
                    data("ip"),
                    data("127.0.0.1"),
                    data("port"),
                    data(&p.to_string()),
                    data("flags"),
                    data("slave"),
                ])
            })
            .collect(),
    )
}

/// `ROLE` of a replica of the node on `port`.
fn replica_of(port: u16) -> Reply {
    Reply::Array(vec![
        data("slave"),
        data("127.0.0.1"),
        Reply::Int(i64::from(port)),
        data("connected"),
        Reply::Int(0),
    ])
}

/// Startup with replica watches (the default): after `Resume`, the replicas are asked for and
/// each is watched; every watch answers that it replicates from the master in use. Returns the
/// watch of each replica, by port.
fn start_watching(h: &mut Harness, replicas: &[u16]) -> Vec<(u16, OpId)> {
    start(h);
    let a = h.actions();
    let [
        Action::Resume,
        Action::QueryReplicas {
            op,
            sentinel,
            service,
        },
    ] = a.as_slice()
    else {
        panic!("resume and a replicas query expected: {a:?}")
    };
    assert!(h.events.iter().any(|e| matches!(e, Event::Ready { .. })));
    assert_eq!((sentinel.port(), service.as_str()), (26379, "svc"));
    h.sentinel_reply(*op, Ok(replicas_reply(replicas)));
    let watches: Vec<(u16, OpId)> = h
        .actions()
        .into_iter()
        .map(|a| match a {
            Action::Watch { op, node } => (node.port(), op),
            other => panic!("a watch expected: {other:?}"),
        })
        .collect();
    assert_eq!(watches.iter().map(|w| w.0).collect::<Vec<_>>(), replicas);
    for (_, op) in &watches {
        h.node_reply(*op, Ok(replica_of(7000)));
    }
    assert!(h.actions().is_empty(), "watches are silent");
    watches
}

fn watching_config() -> Config {
    Config::builder()
        .deposed_pause(None) // its own flow: a_deposed_master_alive_at_the_fence_is_paused
        .sentinels(["127.0.0.1:26379", "127.0.0.1:26380"])
        .service_name("svc")
        .refresh_sentinels(false)
        .build()
        .expect("valid")
}

/// A promotion no sentinel announced (its leader is not heard): Sentinel closes the promoted
/// replica's connections, the watch's closing fences at once, a connection to the replica
/// finds it master, and the switch completes on the replica-watch path.
#[test]
fn a_promotion_nobody_announced_is_fenced_at_the_replicas_closing() {
    let mut h = Harness::new(watching_config());
    let watches = start_watching(&mut h, &[7001, 7002]);
    h.advance(1000);
    h.watch_closed(watches[0].1);
    let a = h.actions();
    let [
        Action::Fence,
        Action::PollRole {
            op: probe,
            node: old,
        },
        Action::Connect { op: conn, node },
    ] = a.as_slice()
    else {
        panic!("fence and connect expected: {a:?}")
    };
    assert_eq!((old.port(), node.port()), (7000, 7001));
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::Fenced {
            path: DetectionPath::ReplicaWatch,
            sentinel: None,
            ..
        }
    )));
    h.node_reply(*probe, Ok(role(true)));
    h.node_reply(*conn, Ok(role(true)));
    let a = h.actions();
    let [Action::Activate { op, node, .. }] = a.as_slice() else {
        panic!("{a:?}")
    };
    assert_eq!(node.port(), 7001);
    h.activated(*op);
    let a = h.actions();
    // The old master answered the fence: nothing lost, then resumed; the old master's
    // replicas are no longer watched, the new master's are asked for.
    let [
        Action::QueryReplication { op: info, .. },
        Action::PollRole { op: role_op, .. },
        Action::Unwatch { op: unwatched },
    ] = a.as_slice()
    else {
        panic!("the lost-write check: {a:?}")
    };
    assert_eq!(*unwatched, watches[1].1, "the old master's other replica");
    let (info, role_op) = (*info, *role_op);
    h.node_reply(info, Ok(promoted_at(-1)));
    h.node_reply(role_op, Ok(master_role_at(0)));
    let a = h.actions();
    assert!(matches!(a.as_slice(), [Action::Resume]), "{a:?}");
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::SwitchCompleted {
            path: DetectionPath::ReplicaWatch,
            ..
        }
    )));
    assert_eq!(h.core.master(), Some(&Addr::new("127.0.0.1", 7001)));
    // The new master's replicas are asked for once the sentinels had time to re-point them,
    // within a second (a jittered delay: a fleet of processes does not ask together).
    let due = h.core.poll_timeout().expect("a deadline");
    assert_eq!(due.reason, TimerReason::ReplicasQuery);
    let delay = due.at - h.now;
    assert!(
        (Duration::from_millis(500)..=Duration::from_secs(1)).contains(&delay),
        "{delay:?}"
    );
    h.now = due.at;
    h.core.handle_timeout(h.now);
    let a = h.actions();
    assert!(
        matches!(a.as_slice(), [Action::QueryReplicas { .. }]),
        "{a:?}"
    );
}

/// A replica restarted (or its idle connection closed for another reason): the fence lasts
/// until two answers say it still replicates from the master in use (the connection opened
/// for the switch, then a new watch, which stays), then the master in use is verified and the
/// fence lifted.
#[test]
fn a_replica_closing_without_a_promotion_lifts_the_fence() {
    let mut h = Harness::new(watching_config());
    let watches = start_watching(&mut h, &[7001]);
    h.advance(1000);
    h.watch_closed(watches[0].1);
    let a = h.actions();
    let [
        Action::Fence,
        Action::PollRole { op: probe, .. },
        Action::Connect { op: conn, .. },
    ] = a.as_slice()
    else {
        panic!("{a:?}")
    };
    h.node_reply(*probe, Ok(role(true)));
    h.node_reply(*conn, Ok(replica_of(7000)));
    let a = h.actions();
    let [Action::Discard { .. }, Action::Watch { op: watch, node }] = a.as_slice() else {
        panic!("a second answer, on a watch, expected: {a:?}")
    };
    assert_eq!(node.port(), 7001);
    h.node_reply(*watch, Ok(replica_of(7000)));
    let a = h.actions();
    let [Action::PollRole { op: verify, node }] = a.as_slice() else {
        panic!("the master in use verified: {a:?}")
    };
    assert_eq!(node.port(), 7000);
    h.node_reply(*verify, Ok(role(true)));
    let a = h.actions();
    assert!(matches!(a.as_slice(), [Action::Resume, ..]), "{a:?}");
    assert!(
        !a.iter()
            .any(|a| matches!(a, Action::Unwatch { .. } | Action::Watch { .. })),
        "{a:?}"
    );
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::FenceLifted { .. }))
    );
    // The new watch stays: its closing fences again.
    h.watch_closed(*watch);
    assert!(matches!(h.actions().first(), Some(Action::Fence)));
}

/// A replica re-pointed to another replica of the master in use (the failover's other
/// replicas are re-pointed after the promotion) names the promoted one: it becomes the
/// candidate, and the switch follows its answer.
#[test]
fn a_replica_re_pointed_elsewhere_names_the_promoted_one() {
    let mut h = Harness::new(watching_config());
    let watches = start_watching(&mut h, &[7001, 7002]);
    h.advance(1000);
    h.watch_closed(watches[1].1);
    let a = h.actions();
    let [
        Action::Fence,
        Action::PollRole { op: probe, .. },
        Action::Connect { op: conn, .. },
    ] = a.as_slice()
    else {
        panic!("{a:?}")
    };
    h.node_reply(*probe, Ok(role(true)));
    h.node_reply(*conn, Ok(replica_of(7001)));
    let a = h.actions();
    let poll = a
        .iter()
        .find_map(|a| match a {
            Action::PollRole { op, node } if node.port() == 7001 => Some(*op),
            _ => None,
        })
        .unwrap_or_else(|| panic!("7001 asked: {a:?}"));
    h.node_reply(poll, Ok(role(true)));
    let a = h.actions();
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::Connect { node, .. } if node.port() == 7001)),
        "{a:?}"
    );
}

/// The first query of every startup round, answered by `answer`; returns the next actions.
fn answer_round(h: &mut Harness, answer: impl Fn(u16) -> Result<Reply, IoError>) -> Vec<Action> {
    let mut a = h.actions();
    while let Some(op) = a.iter().find_map(|a| match a {
        Action::QueryMaster { op, sentinel, .. } => Some((*op, sentinel.port())),
        _ => None,
    }) {
        let reply = answer(op.1);
        h.feed(Input::SentinelReply { op: op.0, reply });
        a = h.actions();
    }
    a
}

fn shutdown_error(a: &[Action]) -> Option<&dramatiq_sentinel_core::FatalError> {
    a.iter().find_map(|a| match a {
        Action::Shutdown(dramatiq_sentinel_core::Shutdown::Fail(e)) => Some(e),
        _ => None,
    })
}

/// Every sentinel answers with an error retrying will not fix (a wrong password, a service it
/// does not monitor, not a sentinel at all): startup stops with it at once instead of waiting
/// for `startup_timeout`, unless `startup_fail_fast` is off. One sentinel that cannot be
/// reached keeps startup patient (it may know the service once it is back).
#[test]
fn startup_fails_fast_when_every_sentinel_refuses() {
    use dramatiq_sentinel_core::{DiscoveryError, FatalError};
    let refusals = |port: u16| match port {
        26379 => Ok(Reply::Error(
            "WRONGPASS invalid username-password pair".into(),
        )),
        _ => Ok(Reply::Error("ERR unknown command 'SENTINEL'".into())),
    };
    let mut h = Harness::new(config());
    let a = answer_round(&mut h, refusals);
    match shutdown_error(&a) {
        Some(FatalError::StartupRefused {
            error: DiscoveryError::SentinelsUnreachable { failures },
            ..
        }) => assert_eq!(failures.len(), 2, "{failures:?}"),
        other => panic!("startup refused expected: {other:?} in {a:?}"),
    }
    assert!(h.core.is_stopped());
    // A service none of them knows.
    let mut h = Harness::new(config());
    let a = answer_round(&mut h, |_| Ok(Reply::Nil));
    assert!(
        matches!(
            shutdown_error(&a),
            Some(FatalError::StartupRefused {
                error: DiscoveryError::MasterNameUnknown { .. },
                ..
            })
        ),
        "{a:?}"
    );
    // Patient when asked to be, and when a sentinel could not be reached.
    let patient = Config::builder()
        .watch_replicas(false)
        .sentinels(["127.0.0.1:26379", "127.0.0.1:26380"])
        .service_name("svc")
        .refresh_sentinels(false)
        .startup_fail_fast(false)
        .build()
        .expect("valid");
    let mut h = Harness::new(patient);
    let a = answer_round(&mut h, refusals);
    assert!(
        shutdown_error(&a).is_none() && !h.core.is_stopped(),
        "{a:?}"
    );
    let mut h = Harness::new(config());
    let a = answer_round(&mut h, |port| match port {
        26379 => Err(IoError::unreachable("connection refused")),
        _ => Ok(Reply::Nil),
    });
    assert!(
        shutdown_error(&a).is_none() && !h.core.is_stopped(),
        "{a:?}"
    );
}

/// The master the sentinels name refuses our credentials: at startup, start fails at once
/// naming it; once running, it is retried with a growing delay (not every ~100 ms forever).
#[test]
fn a_master_refusing_our_credentials_is_not_hammered() {
    use dramatiq_sentinel_core::{DiscoveryError, FatalError};
    let noauth = || Err(IoError::rejected("authentication failed: WRONGPASS"));
    let mut h = Harness::new(config());
    let a = answer_round(&mut h, |_| Ok(master_reply("127.0.0.1", 7000)));
    let [Action::Connect { op, .. }] = a.as_slice() else {
        panic!("{a:?}")
    };
    h.feed(Input::NodeReply {
        op: *op,
        reply: noauth(),
    });
    let a = h.actions();
    assert!(
        matches!(
            shutdown_error(&a),
            Some(FatalError::StartupRefused {
                error: DiscoveryError::VerificationFailed { .. },
                ..
            })
        ),
        "{a:?}"
    );
    // Running: a +switch-master to a node that refuses us.
    let mut h = Harness::new(config());
    let listeners = start(&mut h);
    h.message(
        listeners[0],
        b"+switch-master",
        b"svc 127.0.0.1 7000 127.0.0.1 7001",
    );
    let mut retries = Vec::new();
    let mut last = h.now;
    let end = h.now + Duration::from_secs(20);
    let mut pending = h.actions();
    while h.now < end {
        for a in std::mem::take(&mut pending) {
            match a {
                Action::Connect { op, .. } => {
                    retries.push(h.now.saturating_duration_since(last));
                    last = h.now;
                    h.feed(Input::NodeReply {
                        op,
                        reply: noauth(),
                    });
                }
                Action::QueryMaster { op, .. } => {
                    let reply = Ok(master_reply("127.0.0.1", 7001));
                    h.feed(Input::SentinelReply { op, reply });
                }
                Action::PollRole { op, .. } => h.node_reply(op, Ok(role(true))),
                _ => {}
            }
        }
        pending = h.actions();
        if pending.is_empty() {
            let Some(t) = h.core.poll_timeout() else {
                break;
            };
            h.now = t.at.max(h.now);
            h.core.handle_timeout(h.now);
            pending = h.actions();
        }
    }
    // Delays from 100 ms growing to 5 s (jittered): a dozen attempts in 20 s, not 200.
    assert!((5..=20).contains(&retries.len()), "{retries:?}");
    assert!(
        retries
            .iter()
            .rev()
            .take(2)
            .all(|d| *d >= Duration::from_millis(1000)),
        "{retries:?}"
    );
}

/// A switch away from a master that answered the fence pauses writes on it (`deposed_pause`)
/// right before the activation, so clients still writing there (processes whose fence comes
/// later) wait instead of being acknowledged; a failover back to it while the pause lasts
/// unpauses it first. A master that did not answer the fence (dead) is not paused.
#[test]
fn a_deposed_master_alive_at_the_fence_is_paused() {
    let pause = Duration::from_secs(2);
    let mut h = Harness::new(
        Config::builder()
            .watch_replicas(false)
            .deposed_pause(Some(pause))
            .sentinels(["127.0.0.1:26379", "127.0.0.1:26380"])
            .service_name("svc")
            .refresh_sentinels(false)
            .build()
            .expect("valid"),
    );
    let listeners = start(&mut h);
    // 7000 -> 7001, 7000 alive at the fence: paused. 7001 -> 7000 within the pause, 7001
    // alive: 7001 paused, 7000 unpaused. 7000 -> 7001 again, 7000 dead: nothing paused (7001's
    // pause has ended).
    let steps: [(&[u8], u16, u16, bool); 3] = [
        (b"2", 7000, 7001, true),
        (b"3", 7001, 7000, true),
        (b"4", 7000, 7001, false),
    ];
    for (epoch, old, new, alive) in steps {
        h.message(listeners[0], b"+new-epoch", epoch);
        let payload = format!("svc 127.0.0.1 {old} 127.0.0.1 {new}");
        h.message(listeners[0], b"+switch-master", payload.as_bytes());
        let a = h.actions();
        let [
            Action::Fence,
            Action::PollRole { op: probe, .. },
            Action::Connect { op: conn, .. },
        ] = a.as_slice()
        else {
            panic!("{a:?}")
        };
        let fence_answer = if alive {
            Ok(master_role_at(5000))
        } else {
            Err("connection refused")
        };
        h.node_reply(*probe, fence_answer);
        h.node_reply(*conn, Ok(role(true)));
        let a = h.actions();
        let (pauses, activate): (Vec<_>, Vec<_>) = a
            .into_iter()
            .partition(|a| matches!(a, Action::PauseWrites { .. } | Action::UnpauseWrites { .. }));
        let expected: Vec<Action> = match (old, alive) {
            (7000, true) => vec![Action::PauseWrites {
                node: Addr::new("127.0.0.1", 7000),
                duration: pause,
            }],
            (7001, true) => vec![
                Action::PauseWrites {
                    node: Addr::new("127.0.0.1", 7001),
                    duration: pause,
                },
                Action::UnpauseWrites {
                    node: Addr::new("127.0.0.1", 7000),
                },
            ],
            _ => vec![],
        };
        assert_eq!(pauses, expected, "{old} -> {new}");
        let [Action::Activate { op, node, .. }] = activate.as_slice() else {
            panic!("{activate:?}")
        };
        assert_eq!(node.port(), new);
        h.activated(*op);
        let a = h.actions();
        assert_resumed(&mut h, a);
        if new == 7000 {
            // Past 7001's pause before the next switch away from 7000.
            h.advance(3000);
        }
    }
}
