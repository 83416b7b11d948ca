//! Metrics through the [`metrics`](https://docs.rs/metrics) facade: the application installs a
//! recorder (an exporter such as `metrics-exporter-prometheus`); without one, every call here
//! is a no-op.
//!
//! The names, units and labels are the constants below (the README's *Metrics* section lists
//! them too). Every metric carries the label [`LABEL_SERVICE`], the Sentinel service name
//! (`Config::service_name`), so supervisors of several services in one process keep apart.
//!
//! Most metrics are derived from the supervisor's [`Event`]s, in one place, as each event is
//! logged. The master handle adds two hooks: the hold (only on the slow path a command takes
//! when it cannot be sent at once) and the errors it returns; a command sent at once records
//! nothing.

use crate::handles::failure::Failure;
use crate::net::convert::error_kind;
use dramatiq_sentinel_core::{Addr, Event};
use metrics::{SharedString, Unit};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counter: switches to a new master that completed (workers resumed on it), by detection
/// path ([`LABEL_PATH`]). The first master found at startup is not a switch.
pub const SWITCHES: &str = "dramatiq_sentinel_switches_total";
/// Histogram, seconds: how long work was fenced, from the fence to the switch completed
/// (workers resumed on the new master; [`LABEL_OUTCOME`] `switch`) or to the fence lifted
/// without a switch (the old master re-verified; `lifted`).
pub const FENCED_SECONDS: &str = "dramatiq_sentinel_fenced_seconds";
/// Histogram, seconds: from the switch's trigger (the fence) to the workers paused, by
/// [`LABEL_PATH`]. Only switches that paused the workers (`drain`) record it.
pub const SWITCH_PAUSED_SECONDS: &str = "dramatiq_sentinel_switch_paused_seconds";
/// Histogram, seconds: from the switch's trigger to the new master connected, verified and in
/// use (held commands go to it from then on), by [`LABEL_PATH`].
pub const SWITCH_CONNECTED_SECONDS: &str = "dramatiq_sentinel_switch_connected_seconds";
/// Histogram, seconds: from the switch's trigger to the workers resumed on the new master, by
/// [`LABEL_PATH`] (the same value as [`FENCED_SECONDS`] with outcome `switch`).
pub const SWITCH_RESUMED_SECONDS: &str = "dramatiq_sentinel_switch_resumed_seconds";
/// Counter: commands of a `MasterConnection` that had to wait in the hold (a failover in
/// progress, no verified master yet, or a master that could not be reached), counted when
/// they start waiting.
pub const COMMANDS_HELD: &str = "dramatiq_sentinel_commands_held_total";
/// Histogram, seconds: how long each held command waited, from its call to its release (sent
/// to the verified master, failed, or dropped by its caller).
pub const COMMAND_HOLD_SECONDS: &str = "dramatiq_sentinel_command_hold_seconds";
/// Counter: errors a `MasterConnection` command returned to the application because of a
/// failover or the master's state, by [`LABEL_KIND`]: `not_sent`, `in_flight`, `stopped` (as
/// [`Failure`] tells them apart) or `other` (a `READONLY` reply). Errors of the command itself
/// (a wrong type, a script error, ...) are not counted.
pub const COMMAND_ERRORS: &str = "dramatiq_sentinel_command_errors_total";
/// Counter: listener connections to a sentinel lost or not opened, each followed by a
/// reconnect after a backoff, by [`LABEL_SENTINEL`].
pub const LISTENER_RECONNECTS: &str = "dramatiq_sentinel_listener_reconnects_total";
/// Gauge: sentinels whose listener is subscribed now (0 once the supervisor stopped).
pub const SENTINELS_UP: &str = "dramatiq_sentinel_sentinels_up";
/// Counter: switches whose new master was promoted behind the old one (`Event::WritesLost`).
pub const WRITES_LOST: &str = "dramatiq_sentinel_writes_lost_total";
/// Counter, bytes: replication stream of the old master missing on the new one, summed over
/// the [`WRITES_LOST`] reports.
pub const WRITES_LOST_BYTES: &str = "dramatiq_sentinel_writes_lost_bytes_total";

/// Label of every metric: the Sentinel service name.
pub const LABEL_SERVICE: &str = "service";
/// Label: the detection path of a switch (`event`, `early-signal`, `poll`,
/// `listener-reconnect`, `app-error`).
pub const LABEL_PATH: &str = "path";
/// Label of [`FENCED_SECONDS`]: `switch` or `lifted`.
pub const LABEL_OUTCOME: &str = "outcome";
/// Label of [`COMMAND_ERRORS`]: `not_sent`, `in_flight`, `stopped` or `other`.
pub const LABEL_KIND: &str = "kind";
/// Label of [`LISTENER_RECONNECTS`]: the sentinel's address (`host:port`).
pub const LABEL_SENTINEL: &str = "sentinel";

/// Describes every metric (unit and help text) to the installed recorder.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        SWITCHES,
        Unit::Count,
        "Switches to a new master, by detection path"
    );
    describe_histogram!(
        FENCED_SECONDS,
        Unit::Seconds,
        "Time work was fenced: fence to switch completed or fence lifted"
    );
    describe_histogram!(
        SWITCH_PAUSED_SECONDS,
        Unit::Seconds,
        "Switch trigger to workers paused"
    );
    describe_histogram!(
        SWITCH_CONNECTED_SECONDS,
        Unit::Seconds,
        "Switch trigger to the new master connected and in use"
    );
    describe_histogram!(
        SWITCH_RESUMED_SECONDS,
        Unit::Seconds,
        "Switch trigger to workers resumed"
    );
    describe_counter!(
        COMMANDS_HELD,
        Unit::Count,
        "Master connection commands that waited in the hold"
    );
    describe_histogram!(
        COMMAND_HOLD_SECONDS,
        Unit::Seconds,
        "How long a held command waited"
    );
    describe_counter!(
        COMMAND_ERRORS,
        Unit::Count,
        "Failover errors returned by master connection commands, by kind"
    );
    describe_counter!(
        LISTENER_RECONNECTS,
        Unit::Count,
        "Sentinel listener connections lost or not opened (a reconnect follows)"
    );
    describe_gauge!(
        SENTINELS_UP,
        Unit::Count,
        "Sentinels whose listener is subscribed"
    );
    describe_counter!(
        WRITES_LOST,
        Unit::Count,
        "Switches to a new master promoted behind the old one"
    );
    describe_counter!(
        WRITES_LOST_BYTES,
        Unit::Bytes,
        "Replication stream of the old master missing on the new one"
    );
}

/// The metrics derived from one supervisor's events; it keeps the sentinels whose listener
/// is up (for [`SENTINELS_UP`]). Closing it (the supervisor's task ends) or dropping it sets
/// that gauge to 0.
pub(crate) struct EventMetrics {
    service: SharedString,
    up: BTreeSet<Addr>,
}

impl EventMetrics {
    /// The metrics of the supervisor of `service`; describes them to the recorder.
    pub(crate) fn new(service: &str) -> Self {
        describe();
        let me = Self {
            service: SharedString::from(Arc::<str>::from(service)),
            up: BTreeSet::new(),
        };
        me.set_up();
        me
    }

    fn set_up(&self) {
        metrics::gauge!(SENTINELS_UP, LABEL_SERVICE => self.service.clone())
            .set(self.up.len() as f64);
    }

    /// Records what `event` tells.
    pub(crate) fn record(&mut self, event: &Event) {
        let service = || self.service.clone();
        // Whether the sentinels up changed.
        let up_changed = match event {
            Event::SwitchCompleted {
                old: Some(_),
                path,
                to_paused,
                to_connected,
                total,
                ..
            } => {
                let path = SharedString::from(path.to_string());
                let labels = [(LABEL_SERVICE, service()), (LABEL_PATH, path)];
                let labels = labels.map(|(k, v)| metrics::Label::new(k, v));
                metrics::counter!(SWITCHES, labels.iter()).increment(1);
                if let Some(paused) = to_paused {
                    metrics::histogram!(SWITCH_PAUSED_SECONDS, labels.iter()).record(*paused);
                }
                metrics::histogram!(SWITCH_CONNECTED_SECONDS, labels.iter()).record(*to_connected);
                metrics::histogram!(SWITCH_RESUMED_SECONDS, labels.iter()).record(*total);
                metrics::histogram!(FENCED_SECONDS, LABEL_SERVICE => service(),
                    LABEL_OUTCOME => "switch")
                .record(*total);
                false
            }
            Event::FenceLifted { held, .. } => {
                metrics::histogram!(FENCED_SECONDS, LABEL_SERVICE => service(),
                    LABEL_OUTCOME => "lifted")
                .record(*held);
                false
            }
            Event::ListenerUp { sentinel } => self.up.insert(sentinel.clone()),
            Event::ListenerDown { sentinel, .. } => {
                metrics::counter!(LISTENER_RECONNECTS, LABEL_SERVICE => service(),
                    LABEL_SENTINEL => sentinel.to_string())
                .increment(1);
                self.up.remove(sentinel)
            }
            Event::SentinelForgotten { sentinel, .. } => self.up.remove(sentinel),
            Event::Stopped { .. } => {
                self.up.clear();
                true
            }
            Event::WritesLost { bytes, .. } => {
                metrics::counter!(WRITES_LOST, LABEL_SERVICE => service()).increment(1);
                metrics::counter!(WRITES_LOST_BYTES, LABEL_SERVICE => service()).increment(*bytes);
                false
            }
            _ => false,
        };
        if up_changed {
            self.set_up();
        }
    }
}

impl EventMetrics {
    /// The supervisor's task ended: no sentinel is up.
    pub(crate) fn close(&mut self) {
        self.up.clear();
        self.set_up();
    }
}

impl Drop for EventMetrics {
    fn drop(&mut self) {
        self.close();
    }
}

/// The hold of one command that could not be sent at once: counted in [`COMMANDS_HELD`] when
/// it starts waiting ([`Hold::waiting`]), its wait recorded in [`COMMAND_HOLD_SECONDS`] when
/// it is dropped (the command was released, failed, or its caller dropped it).
pub(crate) struct Hold<'a> {
    service: &'a str,
    started: Instant,
    waiting: bool,
}

impl<'a> Hold<'a> {
    /// A command of the supervisor of `service` that could not be sent at once, called at
    /// `started`; not counted until it waits.
    pub(crate) fn new(service: &'a str, started: Instant) -> Self {
        Self {
            service,
            started,
            waiting: false,
        }
    }

    /// The command waits (counted once).
    pub(crate) fn waiting(&mut self) {
        if !self.waiting {
            self.waiting = true;
            metrics::counter!(COMMANDS_HELD, LABEL_SERVICE => self.service.to_owned()).increment(1);
        }
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        if self.waiting {
            let waited: Duration = self.started.elapsed();
            metrics::histogram!(COMMAND_HOLD_SECONDS, LABEL_SERVICE => self.service.to_owned())
                .record(waited);
        }
    }
}

/// The [`LABEL_KIND`] of an error a `MasterConnection` command returned, if it is counted.
fn error_label(error: &redis::RedisError) -> Option<&'static str> {
    match Failure::of(error) {
        Some(Failure::NotSent) => Some("not_sent"),
        Some(Failure::InFlight) => Some("in_flight"),
        Some(Failure::Stopped) => Some("stopped"),
        None => error_kind(error).map(|_| "other"),
    }
}

/// Counts an error a `MasterConnection` command of the supervisor of `service` returned
/// ([`COMMAND_ERRORS`]), if a failover or the master's state caused it.
pub(crate) fn command_failed(service: &str, error: &redis::RedisError) {
    if let Some(kind) = error_label(error) {
        metrics::counter!(COMMAND_ERRORS, LABEL_SERVICE => service.to_owned(), LABEL_KIND => kind)
            .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dramatiq_sentinel_core::DetectionPath;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use metrics_util::{CompositeKey, MetricKind};

    /// What the recorder holds: (kind, name, sorted labels) -> value.
    type Seen = Vec<(MetricKind, String, Vec<(String, String)>, DebugValue)>;

    fn capture(f: impl FnOnce()) -> Seen {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, f);
        let mut seen: Seen = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let (kind, key) = CompositeKey::into_parts(key);
                let mut labels: Vec<_> = key
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                labels.sort();
                (kind, key.name().to_owned(), labels, value)
            })
            .collect();
        seen.sort_by(|a, b| (&a.1, &a.2).cmp(&(&b.1, &b.2)));
        seen
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<_> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        v.sort();
        v
    }

    fn value<'a>(seen: &'a Seen, name: &str, pairs: &[(&str, &str)]) -> Option<&'a DebugValue> {
        let want = labels(pairs);
        seen.iter()
            .find(|(_, n, l, _)| n == name && *l == want)
            .map(|(_, _, _, v)| v)
    }

    fn secs(values: &[f64]) -> DebugValue {
        DebugValue::Histogram(values.iter().map(|v| (*v).into()).collect())
    }

    #[test]
    fn a_switch_counts_by_path_and_records_its_timings() {
        let old = Addr::new("127.0.0.1", 1);
        let new = Addr::new("127.0.0.1", 2);
        let seen = capture(|| {
            let mut m = EventMetrics::new("svc");
            // Startup: not a switch.
            m.record(&Event::SwitchCompleted {
                old: None,
                new: old.clone(),
                path: DetectionPath::Startup,
                to_paused: None,
                to_connected: Duration::from_millis(5),
                total: Duration::from_millis(5),
            });
            m.record(&Event::SwitchCompleted {
                old: Some(old.clone()),
                new: new.clone(),
                path: DetectionPath::EarlySignal,
                to_paused: Some(Duration::from_millis(250)),
                to_connected: Duration::from_millis(125),
                total: Duration::from_millis(500),
            });
            m.record(&Event::FenceLifted {
                master: new.clone(),
                reason: "aborted".into(),
                held: Duration::from_secs(2),
            });
            std::mem::forget(m); // keep the gauge as it is for this test
        });
        let early = [("service", "svc"), ("path", "early-signal")];
        assert_eq!(
            value(&seen, SWITCHES, &early),
            Some(&DebugValue::Counter(1))
        );
        assert_eq!(
            value(&seen, SWITCHES, &[("service", "svc"), ("path", "startup")]),
            None,
            "startup is no switch"
        );
        assert_eq!(
            value(&seen, SWITCH_PAUSED_SECONDS, &early),
            Some(&secs(&[0.25]))
        );
        assert_eq!(
            value(&seen, SWITCH_CONNECTED_SECONDS, &early),
            Some(&secs(&[0.125]))
        );
        assert_eq!(
            value(&seen, SWITCH_RESUMED_SECONDS, &early),
            Some(&secs(&[0.5]))
        );
        assert_eq!(
            value(
                &seen,
                FENCED_SECONDS,
                &[("service", "svc"), ("outcome", "switch")]
            ),
            Some(&secs(&[0.5]))
        );
        assert_eq!(
            value(
                &seen,
                FENCED_SECONDS,
                &[("service", "svc"), ("outcome", "lifted")]
            ),
            Some(&secs(&[2.0]))
        );
    }

    #[test]
    fn sentinels_up_follows_the_listeners_and_drops_to_zero_at_the_end() {
        let a = Addr::new("127.0.0.1", 26379);
        let b = Addr::new("127.0.0.1", 26380);
        let up = [("service", "svc")];
        let gauge = |v: f64| Some(DebugValue::Gauge(v.into()));
        let down = |s: &Addr| Event::ListenerDown {
            sentinel: s.clone(),
            reason: "reset".into(),
            retry_in: Duration::from_millis(100),
        };
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        // A snapshot resets counters and gauges: each one reads both.
        let now = || -> (Option<DebugValue>, Option<DebugValue>) {
            let (mut up, mut reconnects) = (None, None);
            for (key, _, _, value) in snapshotter.snapshot().into_vec() {
                match key.key().name() {
                    SENTINELS_UP => up = Some(value),
                    LISTENER_RECONNECTS => reconnects = Some(value),
                    _ => {}
                }
            }
            (up, reconnects)
        };
        metrics::with_local_recorder(&recorder, || {
            let mut m = EventMetrics::new("svc");
            assert_eq!(now().0, gauge(0.0));
            for s in [&a, &b, &b] {
                m.record(&Event::ListenerUp {
                    sentinel: s.clone(),
                });
            }
            assert_eq!(now().0, gauge(2.0), "each sentinel once");
            m.record(&down(&a));
            m.record(&down(&a)); // a failed reconnect: counted, the gauge stays
            assert_eq!(
                now(),
                (gauge(1.0), Some(DebugValue::Counter(2))),
                "both losses of {a} counted"
            );
            m.record(&Event::ListenerUp {
                sentinel: a.clone(),
            });
            m.record(&Event::SentinelForgotten {
                sentinel: b.clone(),
                reason: "gone".into(),
            });
            assert_eq!(now().0, gauge(1.0));
            drop(m);
            assert_eq!(now().0, gauge(0.0), "the supervisor ended");
        });
        let seen = capture(|| {
            let mut m = EventMetrics::new("svc");
            m.record(&down(&a));
            std::mem::forget(m);
        });
        assert_eq!(
            value(
                &seen,
                LISTENER_RECONNECTS,
                &[("service", "svc"), ("sentinel", "127.0.0.1:26379")]
            ),
            Some(&DebugValue::Counter(1))
        );
        assert_eq!(value(&seen, SENTINELS_UP, &up), gauge(0.0).as_ref());
    }

    #[test]
    fn lost_writes_count_reports_and_bytes() {
        let seen = capture(|| {
            let mut m = EventMetrics::new("svc");
            for bytes in [100, 23] {
                m.record(&Event::WritesLost {
                    old: Addr::new("127.0.0.1", 1),
                    new: Addr::new("127.0.0.1", 2),
                    old_offset: 1000,
                    new_offset: 1000 - bytes,
                    bytes,
                    commands: None,
                    unread: None,
                });
            }
            std::mem::forget(m);
        });
        let svc = [("service", "svc")];
        assert_eq!(
            value(&seen, WRITES_LOST, &svc),
            Some(&DebugValue::Counter(2))
        );
        assert_eq!(
            value(&seen, WRITES_LOST_BYTES, &svc),
            Some(&DebugValue::Counter(123))
        );
    }

    #[test]
    fn a_hold_counts_once_when_it_waits_and_records_its_wait() {
        let seen = capture(|| {
            let started = Instant::now();
            drop(Hold::new("svc", started)); // served without waiting: nothing
            let mut held = Hold::new("svc", started);
            held.waiting();
            held.waiting();
            drop(held);
        });
        let svc = [("service", "svc")];
        assert_eq!(
            value(&seen, COMMANDS_HELD, &svc),
            Some(&DebugValue::Counter(1))
        );
        match value(&seen, COMMAND_HOLD_SECONDS, &svc) {
            Some(DebugValue::Histogram(v)) => assert_eq!(v.len(), 1, "{v:?}"),
            other => panic!("no hold recorded: {other:?}"),
        }
    }

    #[test]
    fn command_errors_are_counted_by_failure_kind() {
        let node = Addr::new("127.0.0.1", 6379);
        let reply = |text: &str| {
            redis::parse_redis_value(format!("-{text}\r\n").as_bytes())
                .expect("valid RESP")
                .extract_error()
                .expect_err("an error reply")
        };
        let readonly = reply("READONLY You can't write against a read only replica.");
        let wrong_type = reply("WRONGTYPE Operation against a key holding the wrong kind of value");
        let seen = capture(|| {
            for e in [
                crate::handles::failure::held_too_long(Duration::from_secs(1)),
                crate::handles::failure::unreachable(&node, None, "refused"),
                crate::handles::failure::moved(&node),
                crate::handles::failure::stopped(),
                readonly,
                wrong_type,
            ] {
                command_failed("svc", &e);
            }
        });
        let kind = |k| [("service", "svc"), ("kind", k)];
        for (k, n) in [
            ("not_sent", 2),
            ("in_flight", 1),
            ("stopped", 1),
            ("other", 1),
        ] {
            assert_eq!(
                value(&seen, COMMAND_ERRORS, &kind(k)),
                Some(&DebugValue::Counter(n)),
                "{k}"
            );
        }
        assert_eq!(
            seen.iter()
                .filter(|(_, n, _, _)| n == COMMAND_ERRORS)
                .count(),
            4,
            "a wrong type is the command's own error: {seen:?}"
        );
    }
}
