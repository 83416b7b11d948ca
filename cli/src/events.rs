//! How each supervisor event reads in the timeline, as text and as JSON: views of the
//! event's description (`Event::describe`), which holds every word of it.

use crate::output::ms;
use dramatiq_sentinel_supervisor::{Event, FieldValue};
use serde_json::{Map, Value};

/// One event, described.
pub(crate) struct Described {
    /// Short name, e.g. `fenced`; also the JSON `event` field.
    pub(crate) label: &'static str,
    /// The line for people.
    pub(crate) text: String,
    /// The JSON object (`type: event`, `event`, and the event's fields).
    pub(crate) json: Value,
    /// Routine events (the startup's switch, confirmations, duplicate messages) are printed
    /// only with `--verbose`.
    pub(crate) routine: bool,
}

/// A field in JSON: addresses and text as strings, durations in milliseconds, absent values
/// `null`.
fn json(value: &FieldValue) -> Value {
    match value {
        FieldValue::Text(t) => Value::from(t.as_str()),
        FieldValue::Addr(a) => Value::from(a.to_string()),
        FieldValue::Duration(d) => ms(*d),
        FieldValue::Int(n) => Value::from(*n),
        _ => Value::Null,
    }
}

/// Describes `event` for the timeline.
pub(crate) fn describe(event: &Event) -> Described {
    let d = event.describe();
    let mut object = Map::new();
    object.insert("type".into(), Value::from("event"));
    object.insert("event".into(), Value::from(d.label));
    for (key, value) in &d.fields {
        object.insert((*key).into(), json(value));
    }
    Described {
        label: d.label,
        text: d.text,
        json: Value::Object(object),
        routine: d.routine,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dramatiq_sentinel_supervisor::{Addr, DetectionPath};
    use std::time::Duration;

    #[test]
    fn a_switch_reads_well_in_both_forms() {
        let e = Event::SwitchCompleted {
            old: Some(Addr::new("127.0.0.1", 1)),
            new: Addr::new("127.0.0.1", 2),
            path: DetectionPath::EarlySignal,
            to_paused: Some(Duration::from_millis(3)),
            to_connected: Duration::from_millis(205),
            total: Duration::from_millis(206),
        };
        let d = describe(&e);
        assert_eq!(d.label, "resumed");
        assert_eq!(
            d.text,
            "127.0.0.1:1 -> 127.0.0.1:2 via early-signal: new master in use after 205 ms, \
             resumed after 206 ms (drain: workers paused after 3 ms)"
        );
        assert_eq!(d.json["total_ms"], Value::from(206.0));
        assert_eq!(d.json["to_paused_ms"], Value::from(3.0));
        assert_eq!(d.json["old"], "127.0.0.1:1");
        assert_eq!(d.json["type"], "event");
        assert_eq!(d.json["event"], "resumed");
        assert!(!d.routine);
    }

    #[test]
    fn the_checks_of_lost_writes_are_fields_not_a_debug_dump() {
        let old = Addr::new("127.0.0.1", 7000);
        let new = Addr::new("127.0.0.1", 7001);
        let d = describe(&Event::NothingLost {
            old: old.clone(),
            new: new.clone(),
            old_offset: Some(5000),
            new_offset: None,
        });
        assert_eq!(d.label, "nothing-lost");
        assert_eq!(
            d.json,
            serde_json::json!({ "type": "event", "event": "nothing-lost",
                "old": "127.0.0.1:7000", "new": "127.0.0.1:7001",
                "old_offset": 5000, "new_offset": null })
        );
        assert_eq!(
            d.text,
            "no write lost: 127.0.0.1:7000 went to offset 5000, 127.0.0.1:7001 left it at unknown"
        );
        let d = describe(&Event::WritesLost {
            old,
            new,
            old_offset: 5200,
            new_offset: 5000,
            bytes: 200,
            commands: None,
            unread: Some("the old master is down".into()),
        });
        assert_eq!(
            d.json,
            serde_json::json!({ "type": "event", "event": "writes-lost",
                "old": "127.0.0.1:7000", "new": "127.0.0.1:7001", "old_offset": 5200,
                "new_offset": 5000, "bytes": 200, "commands_read_back": null,
                "unread": "the old master is down" })
        );
        assert!(d.text.contains("200 bytes"), "{}", d.text);
    }

    #[test]
    fn no_event_is_a_debug_dump() {
        for event in Event::examples() {
            let d = describe(&event);
            let json = d.json.to_string();
            assert!(
                !json.contains("debug") && !d.text.contains('{'),
                "{json} {}",
                d.text
            );
            assert_eq!(
                d.json.as_object().map(|o| o.len()),
                Some(2 + event.describe().fields.len()),
                "every field in the JSON: {json}"
            );
        }
    }
}
