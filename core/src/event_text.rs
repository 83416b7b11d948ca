//! The vocabulary of events: for every [`Event`], its name, level, messages and fields, in one
//! exhaustive `match` ([`Event::describe`]). Every view of an event is built from it: its
//! `Display` here, the supervisor's `tracing` lines and the records it hands to foreign hosts,
//! the command line's timeline and JSON.

use crate::addr::Addr;
use crate::describe::{Description, EventLevel, FieldValue, Human};
use crate::event::{Event, IgnoreReason};
use std::fmt;

/// `none` for no address.
fn name(a: Option<&Addr>) -> String {
    a.map_or_else(|| "none".to_owned(), Addr::to_string)
}

/// ` from sentinel s` when a sentinel reported it.
fn from(sentinel: Option<&Addr>) -> String {
    sentinel.map_or_else(String::new, |s| format!(" from sentinel {s}"))
}

/// A field of an address.
fn addr(a: &Addr) -> FieldValue {
    FieldValue::Addr(a.clone())
}

/// A field of an optional address.
fn opt(a: &Option<Addr>) -> FieldValue {
    a.as_ref().into()
}

/// A field of text.
fn text(t: impl ToString) -> FieldValue {
    FieldValue::Text(t.to_string())
}

impl Description {
    fn of(
        name: &'static str,
        label: &'static str,
        level: EventLevel,
        message: &'static str,
        text: String,
        fields: Vec<(&'static str, FieldValue)>,
    ) -> Self {
        Self {
            name,
            label,
            level,
            routine: false,
            message,
            text,
            fields,
        }
    }

    fn routine_if(mut self, routine: bool) -> Self {
        self.routine = routine;
        self
    }
}

impl Event {
    /// What this event is, once for every view: its stable name, level, log message, a line
    /// for people and its fields (see [`Description`]).
    pub fn describe(&self) -> Description {
        use EventLevel::{Debug, Error, Info, Warn};
        match self {
            Event::Ready { master, elapsed } => Description::of(
                "Ready",
                "ready",
                Info,
                "master verified; ready",
                format!("master {master} verified; workers may start"),
                vec![("master", addr(master)), ("elapsed_ms", (*elapsed).into())],
            ),
            Event::WritesLost {
                old,
                new,
                old_offset,
                new_offset,
                bytes,
                commands,
                unread,
            } => Description::of(
                "WritesLost",
                "writes-lost",
                Warn,
                "acknowledged writes lost in the switch",
                format!(
                    "{old} went {bytes} bytes of replication stream past where {new} left it \
                     (offsets {new_offset} -> {old_offset}); {}",
                    match (commands, unread) {
                        (Some(c), _) => format!("{} commands read back", c.len()),
                        (None, Some(why)) => format!("not read back: {why}"),
                        (None, None) => "not read back".to_owned(),
                    }
                ),
                vec![
                    ("old", addr(old)),
                    ("new", addr(new)),
                    ("old_offset", (*old_offset).into()),
                    ("new_offset", (*new_offset).into()),
                    ("bytes", (*bytes).into()),
                    ("commands_read_back", commands.as_ref().map(Vec::len).into()),
                    ("unread", unread.clone().into()),
                ],
            ),
            Event::NothingLost {
                old,
                new,
                old_offset,
                new_offset,
            } => {
                let at =
                    |o: &Option<u64>| o.map_or_else(|| "unknown".to_owned(), |o| o.to_string());
                Description::of(
                    "NothingLost",
                    "nothing-lost",
                    Debug,
                    "no write lost in the switch",
                    format!(
                        "no write lost: {old} went to offset {}, {new} left it at {}",
                        at(old_offset),
                        at(new_offset)
                    ),
                    vec![
                        ("old", addr(old)),
                        ("new", addr(new)),
                        ("old_offset", (*old_offset).into()),
                        ("new_offset", (*new_offset).into()),
                    ],
                )
            }
            Event::Fenced {
                master,
                path,
                sentinel,
                signal,
            } => Description::of(
                "Fenced",
                "fenced",
                Warn,
                "failover announced: work fenced",
                format!(
                    "{signal}{}: no new job starts, writes to {master} are held (path {path})",
                    from(sentinel.as_ref())
                ),
                vec![
                    ("master", addr(master)),
                    ("path", text(path)),
                    ("sentinel", opt(sentinel)),
                    ("signal", text(signal)),
                ],
            ),
            Event::CandidateNamed {
                candidate,
                sentinel,
            } => Description::of(
                "CandidateNamed",
                "candidate",
                Info,
                "failover candidate named",
                format!(
                    "{candidate} is being promoted{}; watching it (Sentinel closes its \
                     connections at the promotion)",
                    from(sentinel.as_ref())
                ),
                vec![("candidate", addr(candidate)), ("sentinel", opt(sentinel))],
            ),
            Event::SwitchDetected {
                old,
                new,
                sentinel,
                path,
            } => Description::of(
                "SwitchDetected",
                "switch-detected",
                Warn,
                "master switch detected",
                format!(
                    "{} -> {new} via {path}{}",
                    name(old.as_ref()),
                    from(sentinel.as_ref())
                ),
                vec![
                    ("old", opt(old)),
                    ("new", addr(new)),
                    ("sentinel", opt(sentinel)),
                    ("path", text(path)),
                ],
            )
            .routine_if(old.is_none()),
            Event::BeforeReset { old, new } => Description::of(
                "BeforeReset",
                "moving",
                Info,
                "moving the master connection",
                format!("master connection {} -> {new}", name(old.as_ref())),
                vec![("old", opt(old)), ("new", addr(new))],
            )
            .routine_if(old.is_none()),
            Event::AfterReset { old, new } => Description::of(
                "AfterReset",
                "moved",
                Info,
                "master connection moved; old connections closed",
                match old {
                    Some(old) => {
                        format!("master connection on {new}; every connection to {old} closed")
                    }
                    None => format!("master connection on {new}"),
                },
                vec![("old", opt(old)), ("new", addr(new))],
            )
            .routine_if(old.is_none()),
            Event::SwitchCompleted {
                old,
                new,
                path,
                to_paused,
                to_connected,
                total,
            } => Description::of(
                "SwitchCompleted",
                "resumed",
                Info,
                "switch completed; workers resumed",
                format!(
                    "{} -> {new} via {path}: new master in use after {}, resumed after {}{}",
                    name(old.as_ref()),
                    Human(*to_connected),
                    Human(*total),
                    to_paused.map_or_else(String::new, |p| format!(
                        " (drain: workers paused after {})",
                        Human(p)
                    )),
                ),
                vec![
                    ("old", opt(old)),
                    ("new", addr(new)),
                    ("path", text(path)),
                    ("to_paused_ms", (*to_paused).into()),
                    ("to_connected_ms", (*to_connected).into()),
                    ("total_ms", (*total).into()),
                ],
            )
            .routine_if(old.is_none()),
            Event::FenceLifted {
                master,
                reason,
                held,
            } => Description::of(
                "FenceLifted",
                "fence-lifted",
                Info,
                "fence lifted",
                format!(
                    "{master} still master ({reason}); resumed after {}",
                    Human(*held)
                ),
                vec![
                    ("master", addr(master)),
                    ("reason", text(reason)),
                    ("held_ms", (*held).into()),
                ],
            ),
            Event::FenceExpired { master, waited } => Description::of(
                "FenceExpired",
                "fence-expired",
                Warn,
                "no promotion within fence_timeout; re-verifying the master",
                format!(
                    "no promotion within {}; re-verifying {master}",
                    Human(*waited)
                ),
                vec![("master", addr(master)), ("waited_ms", (*waited).into())],
            ),
            Event::MasterConfirmed { master, path } => Description::of(
                "MasterConfirmed",
                "confirmed",
                Debug,
                "master confirmed",
                format!("{master} is still the master (re-check by {path})"),
                vec![("master", addr(master)), ("path", text(path))],
            )
            .routine_if(true),
            Event::ListenerUp { sentinel } => Description::of(
                "ListenerUp",
                "listening",
                Info,
                "listener subscribed",
                format!("subscribed to sentinel {sentinel}"),
                vec![("sentinel", addr(sentinel))],
            ),
            Event::ListenerDown {
                sentinel,
                reason,
                retry_in,
            } => Description::of(
                "ListenerDown",
                "listener-down",
                Warn,
                "listener down",
                format!(
                    "sentinel {sentinel}: {reason}; retry in {}",
                    Human(*retry_in)
                ),
                vec![
                    ("sentinel", addr(sentinel)),
                    ("reason", text(reason)),
                    ("retry_in_ms", (*retry_in).into()),
                ],
            ),
            Event::MessageIgnored {
                sentinel,
                channel,
                reason,
            } => Description::of(
                "MessageIgnored",
                "ignored",
                match reason {
                    IgnoreReason::Malformed(_) => Warn,
                    _ => Debug,
                },
                "sentinel message ignored",
                format!("{channel} from sentinel {sentinel}: {reason}"),
                vec![
                    ("sentinel", addr(sentinel)),
                    ("channel", text(channel)),
                    ("reason", text(reason)),
                ],
            )
            .routine_if(matches!(
                reason,
                IgnoreReason::Duplicate | IgnoreReason::NotOurMaster(_)
            )),
            Event::DiscoveryFailed { error, retry_in } => Description::of(
                "DiscoveryFailed",
                "discovery-failed",
                Warn,
                "discovery failed",
                format!("{error}; retry in {}", Human(*retry_in)),
                vec![("error", text(error)), ("retry_in_ms", (*retry_in).into())],
            ),
            Event::VerificationFailed { node, reason } => Description::of(
                "VerificationFailed",
                "not-verified",
                Warn,
                "node failed verification",
                format!("{node} not used: {reason}"),
                vec![("node", addr(node)), ("reason", text(reason))],
            ),
            Event::SentinelAdded { sentinel } => Description::of(
                "SentinelAdded",
                "sentinel-added",
                Info,
                "sentinel learned",
                format!("learned sentinel {sentinel}"),
                vec![("sentinel", addr(sentinel))],
            ),
            Event::SentinelForgotten { sentinel, reason } => Description::of(
                "SentinelForgotten",
                "sentinel-forgotten",
                Info,
                "sentinel forgotten; its listener stopped",
                format!("forgot sentinel {sentinel}: {reason}"),
                vec![("sentinel", addr(sentinel)), ("reason", text(reason))],
            ),
            Event::PauseTimedOut { waited } => Description::of(
                "PauseTimedOut",
                "pause-timeout",
                Error,
                "workers did not pause in time; stopping them",
                format!(
                    "workers did not pause within {}; stopping them",
                    Human(*waited)
                ),
                vec![("waited_ms", (*waited).into())],
            ),
            Event::Stopped { error } => Description::of(
                "Stopped",
                "stopped",
                Error,
                "supervisor stopped",
                format!("supervisor stopped: {error}"),
                vec![("error", text(error))],
            ),
            Event::PubSubResubscribed {
                old,
                new,
                channels,
                patterns,
                gap,
            } => Description::of(
                "PubSubResubscribed",
                "pubsub-resubscribed",
                Warn,
                "pub/sub subscriptions active again; messages published in the gap were missed",
                format!(
                    "pub/sub subscriptions ({channels} channels, {patterns} patterns) active \
                     on {new}{}; messages published in the last {} were missed",
                    match old {
                        Some(old) if old != new => format!(" (moved from {old})"),
                        Some(_) => " again (its connection broke)".to_owned(),
                        None => String::new(),
                    },
                    Human(*gap)
                ),
                vec![
                    ("old", opt(old)),
                    ("new", addr(new)),
                    ("channels", (*channels).into()),
                    ("patterns", (*patterns).into()),
                    ("gap_ms", (*gap).into()),
                ],
            ),
        }
    }
}

impl fmt::Display for Event {
    /// The event's line for people ([`Description::text`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe().text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::DetectionPath;
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::Duration;

    /// The position of `event`'s kind in the declaration: an exhaustive match, so a new kind
    /// of event fails to compile here until it is given an example (and a description).
    fn kind(event: &Event) -> usize {
        match event {
            Event::Ready { .. } => 0,
            Event::WritesLost { .. } => 1,
            Event::NothingLost { .. } => 2,
            Event::Fenced { .. } => 3,
            Event::CandidateNamed { .. } => 4,
            Event::SwitchDetected { .. } => 5,
            Event::BeforeReset { .. } => 6,
            Event::AfterReset { .. } => 7,
            Event::SwitchCompleted { .. } => 8,
            Event::FenceLifted { .. } => 9,
            Event::FenceExpired { .. } => 10,
            Event::MasterConfirmed { .. } => 11,
            Event::ListenerUp { .. } => 12,
            Event::ListenerDown { .. } => 13,
            Event::MessageIgnored { .. } => 14,
            Event::DiscoveryFailed { .. } => 15,
            Event::VerificationFailed { .. } => 16,
            Event::SentinelAdded { .. } => 17,
            Event::SentinelForgotten { .. } => 18,
            Event::PauseTimedOut { .. } => 19,
            Event::Stopped { .. } => 20,
            Event::PubSubResubscribed { .. } => 21,
        }
    }
    const KINDS: usize = 22;

    #[test]
    fn the_examples_cover_every_kind_of_event() {
        let covered: BTreeSet<usize> = Event::examples().iter().map(kind).collect();
        assert_eq!(
            covered,
            (0..KINDS).collect(),
            "a kind of event has no example"
        );
    }

    #[test]
    fn every_event_is_described_with_its_facts() {
        let mut names: BTreeMap<usize, &str> = BTreeMap::new();
        let mut labels = BTreeSet::new();
        // Each key names one kind of value in every event (an absent value aside).
        let mut kinds: BTreeMap<&str, &str> = BTreeMap::new();
        for event in Event::examples() {
            let d = event.describe();
            let debug = format!("{event:?}");
            // The same name for every event of a kind, a different one for each kind.
            assert_eq!(
                *names.entry(kind(&event)).or_insert(d.name),
                d.name,
                "{debug}"
            );
            assert!(
                d.name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_uppercase())
                    && d.name.chars().all(|c| c.is_ascii_alphanumeric()),
                "{debug}: name {}",
                d.name
            );
            assert!(
                d.label.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{debug}: label {}",
                d.label
            );
            labels.insert((kind(&event), d.label));
            assert!(!d.message.is_empty() && !d.text.is_empty(), "{debug}");
            assert_eq!(event.to_string(), d.text, "Display is the text");
            assert!(
                !d.text.contains('{') && !d.text.contains("Some(") && !d.text.contains('"'),
                "{debug}: a Debug dump in the text: {}",
                d.text
            );
            // Every event carries data: its fields are there, named, unique.
            assert!(!d.fields.is_empty(), "{debug}: no fields");
            let keys: BTreeSet<&str> = d.fields.iter().map(|(k, _)| *k).collect();
            assert_eq!(keys.len(), d.fields.len(), "{debug}: a key twice");
            for (key, value) in &d.fields {
                assert!(
                    key.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                    "{debug}: key {key}"
                );
                let of = match value {
                    FieldValue::Text(t) => {
                        assert!(!t.is_empty(), "{debug}: {key} empty");
                        "text"
                    }
                    FieldValue::Addr(_) => "addr",
                    FieldValue::Duration(_) => "duration",
                    FieldValue::Int(_) => "int",
                    FieldValue::Absent => continue,
                };
                assert_eq!(
                    key.ends_with("_ms"),
                    of == "duration",
                    "{debug}: a duration's key, and only it, ends in _ms: {key}"
                );
                assert_eq!(
                    *kinds.entry(key).or_insert(of),
                    of,
                    "{debug}: {key} is another kind of value elsewhere"
                );
            }
            // The facts of the event are in the text too.
            for (key, value) in &d.fields {
                if matches!(value, FieldValue::Addr(_)) {
                    assert!(
                        d.text.contains(&value.to_string()),
                        "{debug}: {key}: {}",
                        d.text
                    );
                }
            }
        }
        assert_eq!(names.len(), KINDS);
        let distinct: BTreeSet<&str> = names.values().copied().collect();
        assert_eq!(distinct.len(), KINDS, "two kinds share a name");
        let label_set: BTreeSet<&str> = labels.iter().map(|(_, l)| *l).collect();
        assert_eq!(labels.len(), KINDS, "one label per kind");
        assert_eq!(label_set.len(), KINDS, "two kinds share a label");
    }

    #[test]
    fn levels_and_routine_follow_the_outcome() {
        let by = |name: &str| -> Vec<Description> {
            Event::examples()
                .iter()
                .map(Event::describe)
                .filter(|d| d.name == name)
                .collect()
        };
        let ignored = by("MessageIgnored");
        assert_eq!(ignored[0].level, EventLevel::Warn, "a malformed message");
        assert!(!ignored[0].routine);
        assert_eq!(ignored[1].level, EventLevel::Debug, "a duplicate");
        assert!(ignored[1].routine);
        let switches = by("SwitchCompleted");
        assert!(!switches[0].routine, "a failover's switch");
        assert!(switches[1].routine, "the startup's");
        assert_eq!(by("Stopped")[0].level, EventLevel::Error);
        assert!(by("MasterConfirmed")[0].routine);
    }

    #[test]
    fn lines_name_what_happened() {
        let a = |p| Addr::new("127.0.0.1", p);
        let e = Event::SwitchCompleted {
            old: Some(a(7000)),
            new: a(7001),
            path: DetectionPath::EarlySignal,
            to_paused: None,
            to_connected: Duration::from_micros(4800),
            total: Duration::from_micros(5100),
        };
        assert_eq!(
            e.to_string(),
            "127.0.0.1:7000 -> 127.0.0.1:7001 via early-signal: new master in use after 5 ms, \
             resumed after 5 ms"
        );
        let d = e.describe();
        assert_eq!(
            (d.name, d.label, d.level),
            ("SwitchCompleted", "resumed", EventLevel::Info)
        );
        assert_eq!(d.message, "switch completed; workers resumed");
        assert_eq!(d.field("to_paused_ms"), Some(&FieldValue::Absent));
        assert_eq!(d.field("total_ms").and_then(FieldValue::millis), Some(5.1));
        let e = Event::CandidateNamed {
            candidate: a(7002),
            sentinel: Some(a(26379)),
        };
        assert_eq!(
            e.to_string(),
            "127.0.0.1:7002 is being promoted from sentinel 127.0.0.1:26379; watching it \
             (Sentinel closes its connections at the promotion)"
        );
    }

    #[test]
    fn the_checks_of_lost_writes_read_as_text_and_fields() {
        let a = |p| Addr::new("127.0.0.1", p);
        let d = Event::NothingLost {
            old: a(7000),
            new: a(7001),
            old_offset: Some(5000),
            new_offset: None,
        }
        .describe();
        assert_eq!((d.name, d.level), ("NothingLost", EventLevel::Debug));
        assert_eq!(
            d.text,
            "no write lost: 127.0.0.1:7000 went to offset 5000, 127.0.0.1:7001 left it at unknown"
        );
        assert_eq!(
            d.fields,
            vec![
                ("old", FieldValue::Addr(a(7000))),
                ("new", FieldValue::Addr(a(7001))),
                ("old_offset", FieldValue::Int(5000)),
                ("new_offset", FieldValue::Absent),
            ]
        );
        let d = Event::WritesLost {
            old: a(7000),
            new: a(7001),
            old_offset: 5200,
            new_offset: 5000,
            bytes: 200,
            commands: None,
            unread: Some("the old master is down".into()),
        }
        .describe();
        assert_eq!((d.name, d.level), ("WritesLost", EventLevel::Warn));
        assert!(
            d.text.ends_with("not read back: the old master is down"),
            "{}",
            d.text
        );
        assert_eq!(d.field("bytes"), Some(&FieldValue::Int(200)));
        assert_eq!(d.field("commands_read_back"), Some(&FieldValue::Absent));
    }
}
