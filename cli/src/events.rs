//! How each supervisor event reads in the timeline, as text and as JSON.

use crate::output::ms;
use dramatiq_sentinel_supervisor::{Addr, Event, IgnoreReason};
use serde_json::{Value, json};

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

fn addr(a: &Addr) -> Value {
    Value::from(a.to_string())
}

fn opt(a: Option<&Addr>) -> Value {
    a.map_or(Value::Null, addr)
}

fn name(a: Option<&Addr>) -> String {
    a.map_or_else(|| "none".to_owned(), Addr::to_string)
}

fn from(sentinel: Option<&Addr>) -> String {
    sentinel.map_or_else(String::new, |s| format!(" from sentinel {s}"))
}

/// Describes `event` for the timeline.
pub(crate) fn describe(event: &Event) -> Described {
    let d = |label, text: String, fields: Value, routine| {
        let mut json = json!({ "type": "event", "event": label });
        if let (Value::Object(o), Value::Object(f)) = (&mut json, fields) {
            o.extend(f);
        }
        Described {
            label,
            text,
            json,
            routine,
        }
    };
    match event {
        Event::Ready { master, elapsed } => d(
            "ready",
            format!("master {master} verified; workers may start"),
            json!({ "master": addr(master), "elapsed_ms": ms(*elapsed) }),
            false,
        ),
        Event::Fenced {
            master,
            path,
            sentinel,
            signal,
        } => d(
            "fenced",
            format!(
                "{signal}{}: no new job starts, writes to {master} are held (path {path})",
                from(sentinel.as_ref())
            ),
            json!({ "master": addr(master), "path": path.to_string(),
                    "sentinel": opt(sentinel.as_ref()), "signal": signal }),
            false,
        ),
        Event::CandidateNamed {
            candidate,
            sentinel,
        } => d(
            "candidate",
            format!(
                "{candidate} is being promoted{}; watching it (Sentinel closes its connections at the promotion)",
                from(sentinel.as_ref())
            ),
            json!({ "candidate": addr(candidate), "sentinel": opt(sentinel.as_ref()) }),
            false,
        ),
        Event::SwitchDetected {
            old,
            new,
            sentinel,
            path,
        } => d(
            "switch-detected",
            format!(
                "{} -> {new} via {path}{}",
                name(old.as_ref()),
                from(sentinel.as_ref())
            ),
            json!({ "old": opt(old.as_ref()), "new": addr(new), "path": path.to_string(),
                    "sentinel": opt(sentinel.as_ref()) }),
            old.is_none(),
        ),
        Event::BeforeReset { old, new } => d(
            "moving",
            format!("master connection {} -> {new}", name(old.as_ref())),
            json!({ "old": opt(old.as_ref()), "new": addr(new) }),
            old.is_none(),
        ),
        Event::AfterReset { old, new } => d(
            "moved",
            format!(
                "master connection on {new}; every connection to {} closed",
                name(old.as_ref())
            ),
            json!({ "old": opt(old.as_ref()), "new": addr(new) }),
            old.is_none(),
        ),
        Event::SwitchCompleted {
            old,
            new,
            path,
            to_paused,
            to_connected,
            total,
        } => d(
            "resumed",
            format!(
                "{} -> {new} via {path}: new master in use after {}, resumed after {}{}",
                name(old.as_ref()),
                crate::output::human(*to_connected),
                crate::output::human(*total),
                to_paused.map_or_else(String::new, |p| format!(
                    " (drain: workers paused after {})",
                    crate::output::human(p)
                )),
            ),
            json!({ "old": opt(old.as_ref()), "new": addr(new), "path": path.to_string(),
                    "to_paused_ms": to_paused.map_or(Value::Null, ms),
                    "to_connected_ms": ms(*to_connected), "total_ms": ms(*total) }),
            old.is_none(),
        ),
        Event::FenceLifted {
            master,
            reason,
            held,
        } => d(
            "fence-lifted",
            format!(
                "{master} still master ({reason}); resumed after {}",
                crate::output::human(*held)
            ),
            json!({ "master": addr(master), "reason": reason, "held_ms": ms(*held) }),
            false,
        ),
        Event::FenceExpired { master, waited } => d(
            "fence-expired",
            format!(
                "no promotion within {}; re-verifying {master}",
                crate::output::human(*waited)
            ),
            json!({ "master": addr(master), "waited_ms": ms(*waited) }),
            false,
        ),
        Event::MasterConfirmed { master, path } => d(
            "confirmed",
            format!("{master} is still the master (re-check by {path})"),
            json!({ "master": addr(master), "path": path.to_string() }),
            true,
        ),
        Event::ListenerUp { sentinel } => d(
            "listening",
            format!("subscribed to sentinel {sentinel}"),
            json!({ "sentinel": addr(sentinel) }),
            false,
        ),
        Event::ListenerDown {
            sentinel,
            reason,
            retry_in,
        } => d(
            "listener-down",
            format!(
                "sentinel {sentinel}: {reason}; retry in {}",
                crate::output::human(*retry_in)
            ),
            json!({ "sentinel": addr(sentinel), "reason": reason, "retry_in_ms": ms(*retry_in) }),
            false,
        ),
        Event::MessageIgnored {
            sentinel,
            channel,
            reason,
        } => d(
            "ignored",
            format!("{channel} from sentinel {sentinel}: {reason}"),
            json!({ "sentinel": addr(sentinel), "channel": channel, "reason": reason.to_string() }),
            matches!(
                reason,
                IgnoreReason::Duplicate | IgnoreReason::NotOurMaster(_)
            ),
        ),
        Event::DiscoveryFailed { error, retry_in } => d(
            "discovery-failed",
            format!("{error}; retry in {}", crate::output::human(*retry_in)),
            json!({ "error": error.to_string(), "retry_in_ms": ms(*retry_in) }),
            false,
        ),
        Event::VerificationFailed { node, reason } => d(
            "not-verified",
            format!("{node} not used: {reason}"),
            json!({ "node": addr(node), "reason": reason }),
            false,
        ),
        Event::SentinelAdded { sentinel } => d(
            "sentinel-added",
            format!("learned sentinel {sentinel}"),
            json!({ "sentinel": addr(sentinel) }),
            false,
        ),
        Event::PauseTimedOut { waited } => d(
            "pause-timeout",
            format!(
                "workers did not pause within {}; stopping them",
                crate::output::human(*waited)
            ),
            json!({ "waited_ms": ms(*waited) }),
            false,
        ),
        Event::Stopped { error } => d(
            "stopped",
            format!("supervisor stopped: {error}"),
            json!({ "error": error.to_string() }),
            false,
        ),
        other => d(
            "event",
            format!("{other:?}"),
            json!({ "debug": format!("{other:?}") }),
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dramatiq_sentinel_supervisor::DetectionPath;
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
        assert!(
            d.text
                .contains("127.0.0.1:1 -> 127.0.0.1:2 via early-signal"),
            "{}",
            d.text
        );
        assert_eq!(d.json["total_ms"], Value::from(206.0));
        assert_eq!(d.json["type"], "event");
        assert!(!d.routine);
    }
}
