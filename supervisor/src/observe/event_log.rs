//! The `tracing` line of each event, built from its [`Description`]: the description's level
//! and message, the event's name as the field `event`, and each fact as a field of its own
//! (addresses and text as text, durations as milliseconds, counts as integers).
//!
//! `tracing` names the fields of a call site when it is compiled, so the call site lists every
//! key the vocabulary uses (below, by kind); an event records the ones it has. The tests check
//! that every key of every event is listed, under its kind.

use dramatiq_sentinel_core::{Description, Event, EventLevel, FieldValue};
use tracing::Level;
use tracing::field::{DisplayValue, display};

/// Calls `$then!` with the keys of the vocabulary, by kind, after `$args`.
macro_rules! with_keys {
    ($then:ident!($($args:tt)*)) => {
        $then!($($args)*
            text: [master, old, new, candidate, node, sentinel, path, signal, channel, reason,
                error, unread]
            ms: [elapsed_ms, to_paused_ms, to_connected_ms, total_ms, held_ms, waited_ms,
                retry_in_ms, gap_ms]
            int: [old_offset, new_offset, bytes, commands_read_back, channels, patterns]
        )
    };
}

/// One `tracing` call site at `$level` for the description `$d`.
macro_rules! log_at {
    ($level:expr, $d:ident
        text: [$($t:ident),*] ms: [$($m:ident),*] int: [$($i:ident),*]) => {
        tracing::event!(
            $level,
            event = $d.name,
            $($t = text(&$d, stringify!($t)),)*
            $($m = millis(&$d, stringify!($m)),)*
            $($i = int(&$d, stringify!($i)),)*
            "{}",
            $d.message
        )
    };
}

/// A text field (an address, a reason, `none` for an absent one).
fn text<'a>(d: &'a Description, key: &str) -> Option<DisplayValue<&'a FieldValue>> {
    d.field(key).map(display)
}

/// A duration field in milliseconds (not recorded when absent).
fn millis(d: &Description, key: &str) -> Option<f64> {
    d.field(key).and_then(FieldValue::millis)
}

/// An integer field (not recorded when absent).
fn int(d: &Description, key: &str) -> Option<u64> {
    match d.field(key) {
        Some(FieldValue::Int(n)) => Some(*n),
        _ => None,
    }
}

/// Logs `event` with `tracing` (see the module docs).
pub(crate) fn log_event(event: &Event) {
    let d = event.describe();
    match d.level {
        EventLevel::Error => with_keys!(log_at!(Level::ERROR, d)),
        EventLevel::Warn => with_keys!(log_at!(Level::WARN, d)),
        EventLevel::Info => with_keys!(log_at!(Level::INFO, d)),
        _ => with_keys!(log_at!(Level::DEBUG, d)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// The keys of the call site, by kind.
    macro_rules! keys {
        (text: [$($t:ident),*] ms: [$($m:ident),*] int: [$($i:ident),*]) => {
            (
                [$(stringify!($t)),*],
                [$(stringify!($m)),*],
                [$(stringify!($i)),*],
            )
        };
    }

    #[test]
    fn every_key_of_every_event_is_logged_under_its_kind() {
        let (text, ms, int) = with_keys!(keys!());
        for event in Event::examples() {
            for (key, value) in event.describe().fields {
                let listed = match value {
                    FieldValue::Duration(_) => ms.contains(&key),
                    FieldValue::Int(_) => int.contains(&key),
                    FieldValue::Absent => {
                        text.contains(&key) || ms.contains(&key) || int.contains(&key)
                    }
                    _ => text.contains(&key),
                };
                assert!(listed, "{event:?}: `{key}` not logged as {value:?}");
            }
        }
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            crate::sync::lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The lines `tracing`'s formatter writes for `events`.
    fn logged(events: &[Event]) -> Vec<String> {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::DEBUG)
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || events.iter().for_each(log_event));
        let out = String::from_utf8(crate::sync::lock(&buffer.0).clone()).expect("utf-8");
        out.lines().map(str::to_owned).collect()
    }

    #[test]
    fn each_event_is_one_structured_line_at_its_level() {
        let events = Event::examples();
        let lines = logged(&events);
        assert_eq!(lines.len(), events.len(), "{lines:#?}");
        for (event, line) in events.iter().zip(&lines) {
            let d = event.describe();
            let level = d.level.to_string().to_uppercase();
            assert!(line.trim_start().starts_with(&level), "{line}");
            assert!(line.contains(d.message), "{line}");
            assert!(line.contains(&format!("event=\"{}\"", d.name)), "{line}");
            for (key, value) in &d.fields {
                let shown = match value {
                    FieldValue::Duration(_) | FieldValue::Absent if key.ends_with("_ms") => {
                        continue;
                    }
                    FieldValue::Int(_) | FieldValue::Addr(_) | FieldValue::Text(_) => {
                        format!("{key}={value}")
                    }
                    _ => continue,
                };
                assert!(line.contains(&shown), "{shown} missing: {line}");
            }
        }
        let fenced = &lines[4];
        assert_eq!(
            fenced.trim(),
            "WARN failover announced: work fenced event=\"Fenced\" master=127.0.0.1:7000 \
             sentinel=127.0.0.1:26379 path=early-signal signal=+try-failover"
        );
        let completed = &lines[11];
        assert!(
            completed.contains("to_paused_ms=3.0 to_connected_ms=150.0 total_ms=152.0"),
            "{completed}"
        );
    }
}
