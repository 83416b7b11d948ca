//! The supervisor's metrics (the `metrics` facade) against a real deployment, read back from a
//! recorder that captures them.
//!
//! A global recorder can be installed once per process, and the supervisor records from its
//! own task and from the threads its handles are used on, so a thread-local recorder would
//! miss most of it: [`Capture::installed`] installs one capturing recorder per test process,
//! and the scenario uses a service name no other scenario uses ([`SERVICE`]), so every series
//! it reads (each carries the `service` label) is its own.

use super::startup::addr;
use super::{Timeline, serial, start};
use dramatiq_sentinel_harness::runtime::TestRuntime;
use dramatiq_sentinel_harness::sync::lock;
use dramatiq_sentinel_harness::{Deployment, DeploymentOptions, redis};
use dramatiq_sentinel_harness::{WAIT, config_for, wait_for};
use dramatiq_sentinel_supervisor::metrics::{
    COMMAND_ERRORS, COMMAND_HOLD_SECONDS, COMMANDS_HELD, FENCED_SECONDS, LABEL_OUTCOME, LABEL_PATH,
    LABEL_SENTINEL, LABEL_SERVICE, LISTENER_RECONNECTS, SENTINELS_UP, SWITCH_CONNECTED_SECONDS,
    SWITCH_PAUSED_SECONDS, SWITCH_RESUMED_SECONDS, SWITCHES, WRITES_LOST, WRITES_LOST_BYTES,
};
use dramatiq_sentinel_supervisor::{Event, MasterConnection, Supervisor};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The service name of this scenario's deployment: the `service` label of what it reads.
pub const SERVICE: &str = "metered";

/// A recorder that keeps every metric (counters and gauges by value, histograms by sample)
/// and what was described, and reads them without resetting them.
pub struct Capture {
    registry: Registry<Key, AtomicStorage>,
    described: Mutex<HashMap<String, Option<Unit>>>,
}

/// The installed [`Capture`], shared with the process's global recorder.
struct Installed(Arc<Capture>);

impl Recorder for Installed {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.0.describe(key, unit);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.0.describe(key, unit);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.0.describe(key, unit);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.0
            .registry
            .get_or_create_counter(key, |c| Counter::from_arc(Arc::clone(c)))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.0
            .registry
            .get_or_create_gauge(key, |g| Gauge::from_arc(Arc::clone(g)))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.0
            .registry
            .get_or_create_histogram(key, |h| Histogram::from_arc(Arc::clone(h)))
    }
}

impl Capture {
    /// The process's capturing recorder, installed as the global recorder on first use;
    /// panics if another global recorder was installed first.
    pub fn installed() -> Arc<Capture> {
        static CAPTURE: OnceLock<Arc<Capture>> = OnceLock::new();
        Arc::clone(CAPTURE.get_or_init(|| {
            let capture = Arc::new(Capture {
                registry: Registry::atomic(),
                described: Mutex::default(),
            });
            if metrics::set_global_recorder(Installed(Arc::clone(&capture))).is_err() {
                panic!("another global metrics recorder is installed in this test process");
            }
            capture
        }))
    }

    fn describe(&self, key: KeyName, unit: Option<Unit>) {
        lock(&self.described).insert(key.as_str().to_owned(), unit);
    }

    /// The unit `name` was described with (`Some(None)`: described without one).
    pub fn unit(&self, name: &str) -> Option<Option<Unit>> {
        lock(&self.described).get(name).cloned()
    }

    /// Whether `key` is named `name` and carries every label of `labels`.
    fn matches(key: &Key, name: &str, labels: &[(&str, &str)]) -> bool {
        key.name() == name
            && labels
                .iter()
                .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
    }

    /// The sum of the counters named `name` with `labels` (among others).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.registry
            .get_counter_handles()
            .iter()
            .filter(|(key, _)| Self::matches(key, name, labels))
            .map(|(_, c)| c.load(Ordering::SeqCst))
            .sum()
    }

    /// The counters named `name` with `labels` (among others): all their labels, sorted, and
    /// their values.
    pub fn counters(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(Vec<String>, u64)> {
        let mut found: Vec<_> = self
            .registry
            .get_counter_handles()
            .iter()
            .filter(|(key, _)| Self::matches(key, name, labels))
            .map(|(key, c)| {
                let mut all: Vec<_> = key
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                all.sort();
                (all, c.load(Ordering::SeqCst))
            })
            .collect();
        found.sort();
        found
    }

    /// The gauge named `name` with exactly `labels`, if it was ever set.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.registry
            .get_gauge_handles()
            .iter()
            .find(|(key, _)| {
                Self::matches(key, name, labels) && key.labels().count() == labels.len()
            })
            .map(|(_, g)| f64::from_bits(g.load(Ordering::SeqCst)))
    }

    /// Every sample of the histograms named `name` with `labels` (among others).
    pub fn samples(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        self.registry
            .get_histogram_handles()
            .iter()
            .filter(|(key, _)| Self::matches(key, name, labels))
            .flat_map(|(_, h)| h.data())
            .collect()
    }
}

/// A graceful failover with a command held during it, then a sentinel stopped and started
/// again, then a shutdown, each read back from the metrics: the switch counted by its
/// detection path, its timings equal to the `SwitchCompleted` event's, the time fenced, the
/// held command counted with its wait, no command error, the sentinels up (3, then 2 while one
/// is stopped, 3 again, 0 after the shutdown), the stopped sentinel's listener reconnects, no
/// lost writes, and every metric described with its unit.
pub fn metrics_through_a_graceful_failover<R: TestRuntime>() {
    let _serial = serial();
    let capture = Capture::installed();
    let service = [(LABEL_SERVICE, SERVICE)];
    let d =
        Deployment::start(DeploymentOptions::default().service_name(SERVICE)).expect("deployment");
    let rt = R::new();
    let timeline = Timeline::default();
    let config = config_for(&d).hold_timeout(WAIT).build().expect("config");

    // The command held during the failover: sent from the hook that runs before the master
    // connection moves (commands are held then), on a thread of its own; the hook returns once
    // the command waits in the hold, so it is held until the new master is in use.
    let handle: Arc<OnceLock<MasterConnection>> = Arc::default();
    let (tx, held_reply) = std::sync::mpsc::channel();
    let tx = Mutex::new(Some(tx));
    let in_hook = Arc::clone(&handle);
    let hook_capture = Arc::clone(&capture);
    let builder = Supervisor::<R::Rt>::builder(config).before_reset(move |old, _new| {
        let (Some(_), Some(conn)) = (old, in_hook.get()) else {
            return; // the startup's connection
        };
        let Some(tx) = lock(&tx).take() else {
            return; // one command is enough
        };
        if !conn.is_held() {
            return; // not fenced: the test fails below, saying so
        }
        let mut conn = conn.clone();
        std::thread::spawn(move || {
            let reply = futures_lite::future::block_on(
                redis::cmd("INCR")
                    .arg("metrics-held")
                    .query_async::<i64>(&mut conn),
            );
            let _ = tx.send(reply);
        });
        let deadline = Instant::now() + WAIT;
        while hook_capture.counter(COMMANDS_HELD, &[(LABEL_SERVICE, SERVICE)]) == 0
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let sup = start(&rt, builder, &timeline);
    let _ = handle.set(sup.master());

    let sentinels = d.sentinels().len() as f64;
    let up = || capture.gauge(SENTINELS_UP, &service);
    wait_for("every listener up in the gauge", WAIT, || match up() {
        Some(n) if n == sentinels => Ok(()),
        other => Err(format!("{SENTINELS_UP} {other:?}")),
    });

    let (_old, _new) = d.failover_and_wait(WAIT).expect("failover");
    timeline.wait_count("the switch", 1, super::failover::switched);
    let reply = held_reply
        .recv_timeout(WAIT)
        .expect("a command was held during the switch (the hook saw the fence)");
    assert_eq!(
        reply.ok(),
        Some(1),
        "the held INCR ran once, on the new master"
    );

    // The switch, by its detection path, with the event's own timings.
    let Some((path, to_paused, to_connected, total)) =
        timeline.events().into_iter().find_map(|e| match e {
            Event::SwitchCompleted {
                old: Some(_),
                path,
                to_paused,
                to_connected,
                total,
                ..
            } => Some((path.to_string(), to_paused, to_connected, total)),
            _ => None,
        })
    else {
        panic!("no switch in {:#?}", timeline.events());
    };
    let by_path = [(LABEL_SERVICE, SERVICE), (LABEL_PATH, path.as_str())];
    assert_eq!(
        capture.counters(SWITCHES, &service),
        vec![(
            vec![
                format!("{LABEL_PATH}={path}"),
                format!("{LABEL_SERVICE}={SERVICE}")
            ],
            1
        )],
        "one switch, counted under its path"
    );
    assert_eq!(capture.counter(SWITCHES, &by_path), 1);
    let secs = |d: Duration| vec![d.as_secs_f64()];
    assert_eq!(
        capture.samples(SWITCH_CONNECTED_SECONDS, &by_path),
        secs(to_connected)
    );
    assert_eq!(
        capture.samples(SWITCH_RESUMED_SECONDS, &by_path),
        secs(total)
    );
    assert_eq!(
        capture.samples(SWITCH_PAUSED_SECONDS, &by_path),
        to_paused.map(secs).unwrap_or_default(),
        "workers paused only with a drain"
    );
    assert_eq!(
        capture.samples(
            FENCED_SECONDS,
            &[(LABEL_SERVICE, SERVICE), (LABEL_OUTCOME, "switch")]
        ),
        secs(total),
        "fenced from the fence to the switch completed"
    );

    // The held command: counted once, its wait recorded; no error for a clean switch.
    assert_eq!(capture.counter(COMMANDS_HELD, &service), 1);
    let waits = capture.samples(COMMAND_HOLD_SECONDS, &service);
    assert_eq!(waits.len(), 1, "{waits:?}");
    assert!(
        waits[0] > 0.0 && waits[0] < WAIT.as_secs_f64(),
        "held {waits:?}"
    );
    assert_eq!(
        capture.counters(COMMAND_ERRORS, &service),
        vec![],
        "a clean switch surfaces no error"
    );
    assert_eq!(capture.counter(WRITES_LOST, &service), 0);
    assert_eq!(capture.counter(WRITES_LOST_BYTES, &service), 0);

    // A sentinel stopped: its listener's losses are counted, the gauge follows it.
    let stopped = d.sentinels()[0];
    let sentinel = addr(d.addr(stopped)).to_string();
    let its = [
        (LABEL_SERVICE, SERVICE),
        (LABEL_SENTINEL, sentinel.as_str()),
    ];
    assert_eq!(
        capture.counter(LISTENER_RECONNECTS, &its),
        0,
        "no loss so far"
    );
    d.stop_sentinel(stopped);
    wait_for("the stopped sentinel's listener down", WAIT, || {
        let (lost, now) = (capture.counter(LISTENER_RECONNECTS, &its), up());
        if lost >= 1 && now == Some(sentinels - 1.0) {
            Ok(())
        } else {
            Err(format!("{lost} losses of {sentinel}, {now:?} up"))
        }
    });
    d.start_sentinel(stopped).expect("start the sentinel again");
    wait_for("the listener up again", WAIT, || match up() {
        Some(n) if n == sentinels => Ok(()),
        other => Err(format!("{SENTINELS_UP} {other:?}")),
    });

    rt.block_on(sup.shutdown()).expect("clean shutdown");
    wait_for("no sentinel up after the shutdown", WAIT, || match up() {
        Some(0.0) => Ok(()),
        other => Err(format!("{SENTINELS_UP} {other:?}")),
    });
    assert_eq!(
        capture.counters(COMMAND_ERRORS, &service),
        vec![],
        "nothing failed after the switch either"
    );

    // Every metric described, with its unit.
    for (name, unit) in [
        (SWITCHES, Unit::Count),
        (FENCED_SECONDS, Unit::Seconds),
        (SWITCH_PAUSED_SECONDS, Unit::Seconds),
        (SWITCH_CONNECTED_SECONDS, Unit::Seconds),
        (SWITCH_RESUMED_SECONDS, Unit::Seconds),
        (COMMANDS_HELD, Unit::Count),
        (COMMAND_HOLD_SECONDS, Unit::Seconds),
        (COMMAND_ERRORS, Unit::Count),
        (LISTENER_RECONNECTS, Unit::Count),
        (SENTINELS_UP, Unit::Count),
        (WRITES_LOST, Unit::Count),
        (WRITES_LOST_BYTES, Unit::Bytes),
    ] {
        assert_eq!(capture.unit(name), Some(Some(unit)), "{name}");
    }
}
