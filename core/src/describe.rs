//! The shape of an event's description: what every view of an [`Event`](crate::Event) (a log
//! line, a record for a foreign host, a line of JSON, a line of text) is built from. The
//! descriptions themselves are written once, in `Event::describe`.

use crate::addr::Addr;
use std::fmt;
use std::time::Duration;

/// How serious an event is: the level it is logged at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum EventLevel {
    /// Routine detail (a confirmation, a duplicate message).
    Debug,
    /// Normal operation (a switch, a listener subscribed).
    Info,
    /// Trouble the supervisor handles (a fence, a listener down, a failed discovery).
    Warn,
    /// A pause timeout or a fatal stop.
    Error,
}

impl fmt::Display for EventLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventLevel::Debug => "debug",
            EventLevel::Info => "info",
            EventLevel::Warn => "warn",
            EventLevel::Error => "error",
        })
    }
}

/// The value of one field of a [`Description`], typed so that each view renders it its own
/// way (a number in JSON, a float of milliseconds for Python, text in a log line).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldValue {
    /// Text: a reason, a channel, a detection path, an error.
    Text(String),
    /// An address (`host:port` as text).
    Addr(Addr),
    /// A duration. Its key ends in `_ms`: views that show numbers show milliseconds.
    Duration(Duration),
    /// A count or an offset.
    Int(u64),
    /// An optional value that is absent (no master before, no sentinel involved, an offset
    /// not known): `null` in JSON, `None` in Python, `none` in text.
    Absent,
}

impl FieldValue {
    /// The value in milliseconds when it is a duration.
    pub fn millis(&self) -> Option<f64> {
        match self {
            FieldValue::Duration(d) => Some(d.as_nanos() as f64 / 1_000_000.0),
            _ => None,
        }
    }
}

impl fmt::Display for FieldValue {
    /// Text as it is, an address as `host:port`, a duration for people (`0.4 ms`, `205 ms`,
    /// `12.3 s`), a number, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Text(t) => f.write_str(t),
            FieldValue::Addr(a) => write!(f, "{a}"),
            FieldValue::Duration(d) => write!(f, "{}", Human(*d)),
            FieldValue::Int(n) => write!(f, "{n}"),
            FieldValue::Absent => f.write_str("none"),
        }
    }
}

impl From<&Addr> for FieldValue {
    fn from(a: &Addr) -> Self {
        FieldValue::Addr(a.clone())
    }
}

impl From<Duration> for FieldValue {
    fn from(d: Duration) -> Self {
        FieldValue::Duration(d)
    }
}

impl From<u64> for FieldValue {
    fn from(n: u64) -> Self {
        FieldValue::Int(n)
    }
}

impl From<usize> for FieldValue {
    fn from(n: usize) -> Self {
        FieldValue::Int(n as u64)
    }
}

impl From<String> for FieldValue {
    fn from(t: String) -> Self {
        FieldValue::Text(t)
    }
}

impl From<&str> for FieldValue {
    fn from(t: &str) -> Self {
        FieldValue::Text(t.to_owned())
    }
}

impl<T: Into<FieldValue>> From<Option<T>> for FieldValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(FieldValue::Absent, Into::into)
    }
}

/// A duration for people: `0.4 ms` below a millisecond, `205 ms` below ten seconds, else
/// `12.3 s`.
pub(crate) struct Human(pub(crate) Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_secs_f64() * 1000.0;
        if ms < 1.0 {
            write!(f, "{ms:.1} ms")
        } else if ms < 10_000.0 {
            write!(f, "{ms:.0} ms")
        } else {
            write!(f, "{:.1} s", self.0.as_secs_f64())
        }
    }
}

/// Everything a view of an event needs, written once per event by `Event::describe`: the
/// `tracing` line, the record a foreign host (Python) receives, the command line's timeline and
/// JSON, and the event's `Display` are all built from it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Description {
    /// The event's stable name: its variant name (`SwitchCompleted`, `Fenced`, ...). Hosts
    /// match on it (the Python hooks do).
    pub name: &'static str,
    /// A short lower-case word for timelines, also the command line's JSON `event` field
    /// (`resumed`, `fenced`, `moved`, ...).
    pub label: &'static str,
    /// The level it is logged at.
    pub level: EventLevel,
    /// Nothing new for a person watching: a re-check that confirmed the master, a duplicate
    /// or late sentinel message, the switch events of the first master at startup. Timelines
    /// show them on request only (the command line's `--verbose`).
    pub routine: bool,
    /// The fixed message of its log line (`switch completed; workers resumed`): the same for
    /// every event of this kind and outcome, the facts being in `fields`.
    pub message: &'static str,
    /// One line for people, with the facts in it: the event's `Display`.
    pub text: String,
    /// The facts, in declaration order. Keys are `snake_case`, unique within an event, and
    /// name the same fact in every event (`old`, `new`, `master`, `sentinel`, `path`, ...);
    /// a duration's key ends in `_ms`.
    pub fields: Vec<(&'static str, FieldValue)>,
}

impl Description {
    /// The value of the field `key`, if the event has one.
    pub fn field(&self, key: &str) -> Option<&FieldValue> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_well() {
        let d = |us| FieldValue::Duration(Duration::from_micros(us)).to_string();
        assert_eq!(d(400), "0.4 ms");
        assert_eq!(d(205_400), "205 ms");
        assert_eq!(d(12_340_000), "12.3 s");
        assert_eq!(FieldValue::from(None::<u64>).to_string(), "none");
        assert_eq!(
            FieldValue::from(Some(&Addr::new("127.0.0.1", 7000))).to_string(),
            "127.0.0.1:7000"
        );
        assert_eq!(
            FieldValue::Duration(Duration::from_micros(1500)).millis(),
            Some(1.5)
        );
        assert_eq!(FieldValue::Int(3).millis(), None);
    }
}
