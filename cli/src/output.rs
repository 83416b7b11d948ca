//! Where the lines of `watch` and the drill go: aligned text for people, or JSON lines for
//! programs.

use crate::sync::lock;
use dramatiq_sentinel_supervisor::FieldValue;
use serde_json::{Map, Value};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The drill's output: every line carries the time since the drill started. Cheap to clone;
/// lines from several threads never interleave.
#[derive(Clone, Debug)]
pub(crate) struct Out(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    start: Instant,
    json: bool,
    verbose: bool,
    lock: Mutex<()>,
}

impl Out {
    pub(crate) fn new(json: bool, verbose: bool) -> Self {
        Self(Arc::new(Inner {
            start: Instant::now(),
            json,
            verbose,
            lock: Mutex::new(()),
        }))
    }

    /// Whether routine events are printed too.
    pub(crate) fn verbose(&self) -> bool {
        self.0.verbose
    }

    /// Time since the drill started.
    pub(crate) fn since(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.0.start)
    }

    fn write(&self, text: &str) {
        let _guard = lock(&self.0.lock);
        let mut stdout = std::io::stdout().lock();
        // A closed stdout (e.g. `| head`) must not stop the drill: ignore write errors.
        let _ = writeln!(stdout, "{text}");
        let _ = stdout.flush();
    }

    /// One timeline line at `at`: `label` and `text` for people; `fields` (a JSON object with
    /// at least `type`) for programs, to which the time `t` in seconds is added.
    pub(crate) fn line(&self, at: Instant, label: &str, text: &str, fields: Value) {
        let t = self.since(at);
        if self.0.json {
            let mut object = Map::new();
            object.insert("t".into(), secs(t));
            if let Value::Object(fields) = fields {
                object.extend(fields);
            }
            self.write(&Value::Object(object).to_string());
        } else {
            self.write(&format!("{:>9.3}s  {label:<16} {text}", t.as_secs_f64()));
        }
    }

    /// A line at the current time.
    pub(crate) fn now(&self, label: &str, text: &str, fields: Value) {
        self.line(Instant::now(), label, text, fields);
    }

    /// A block of text (such as the summary) for people, or one JSON object for programs.
    #[cfg_attr(not(feature = "drill"), allow(dead_code))]
    pub(crate) fn block(&self, text: &str, json: Value) {
        if self.0.json {
            self.write(&json.to_string());
        } else {
            self.write(text.trim_end());
        }
    }
}

/// A duration for people: `0.4 ms`, `312 ms`, `12.3 s`, as the events' lines show it.
pub(crate) fn human(d: Duration) -> String {
    FieldValue::Duration(d).to_string()
}

/// A duration in milliseconds for JSON, to the microsecond.
pub(crate) fn ms(d: Duration) -> Value {
    Value::from((d.as_secs_f64() * 1_000_000.0).round() / 1000.0)
}

/// A duration in seconds for JSON, to the millisecond.
pub(crate) fn secs(d: Duration) -> Value {
    Value::from((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_micros(400)), "0.4 ms");
        assert_eq!(human(Duration::from_millis(312)), "312 ms");
        assert_eq!(human(Duration::from_millis(12_345)), "12.3 s");
        assert_eq!(ms(Duration::from_micros(1500)), Value::from(1.5));
        assert_eq!(secs(Duration::from_millis(2500)), Value::from(2.5));
    }
}
