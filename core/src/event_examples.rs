//! One [`Event`] of every kind (and of every outcome whose description differs), with made-up
//! values, for testing views of events: a logger, a host's records, a timeline.

use crate::addr::Addr;
use crate::event::{DetectionPath, DiscoveryError, Event, FatalError, IgnoreReason, LostCommand};
use std::time::Duration;

impl Event {
    /// One event of every kind, with made-up addresses and timings: both outcomes where the
    /// description differs (the startup's switch and a failover's, lost writes read back or
    /// not, a malformed message and a duplicate). For tests of views of events; every kind of
    /// [`Event`] is in it (the core's tests check it).
    pub fn examples() -> Vec<Event> {
        let a = |port| Addr::new("127.0.0.1", port);
        let ms = Duration::from_millis;
        let (old, new, sentinel) = (a(7000), a(7001), a(26379));
        let lost = |commands, unread| Event::WritesLost {
            old: old.clone(),
            new: new.clone(),
            old_offset: 5200,
            new_offset: 5000,
            bytes: 200,
            commands,
            unread,
        };
        vec![
            Event::Ready {
                master: old.clone(),
                elapsed: ms(12),
            },
            lost(
                Some(vec![LostCommand {
                    db: Some(0),
                    args: vec![b"RPUSH".to_vec(), b"queue".to_vec(), b"job-1".to_vec()],
                }]),
                None,
            ),
            lost(None, Some("the old master is down".into())),
            Event::NothingLost {
                old: old.clone(),
                new: new.clone(),
                old_offset: Some(5000),
                new_offset: None,
            },
            Event::Fenced {
                master: old.clone(),
                path: DetectionPath::EarlySignal,
                sentinel: Some(sentinel.clone()),
                signal: "+try-failover".into(),
            },
            Event::CandidateNamed {
                candidate: new.clone(),
                sentinel: Some(sentinel.clone()),
            },
            Event::SwitchDetected {
                old: None,
                new: old.clone(),
                sentinel: None,
                path: DetectionPath::Startup,
            },
            Event::SwitchDetected {
                old: Some(old.clone()),
                new: new.clone(),
                sentinel: Some(sentinel.clone()),
                path: DetectionPath::EarlySignal,
            },
            Event::BeforeReset {
                old: Some(old.clone()),
                new: new.clone(),
            },
            Event::AfterReset {
                old: Some(old.clone()),
                new: new.clone(),
            },
            Event::AfterReset {
                old: None,
                new: old.clone(),
            },
            Event::SwitchCompleted {
                old: Some(old.clone()),
                new: new.clone(),
                path: DetectionPath::EarlySignal,
                to_paused: Some(ms(3)),
                to_connected: ms(150),
                total: ms(152),
            },
            Event::SwitchCompleted {
                old: None,
                new: old.clone(),
                path: DetectionPath::Startup,
                to_paused: None,
                to_connected: ms(10),
                total: ms(11),
            },
            Event::FenceLifted {
                master: old.clone(),
                reason: "-odown".into(),
                held: ms(800),
            },
            Event::FenceExpired {
                master: old.clone(),
                waited: ms(30_000),
            },
            Event::MasterConfirmed {
                master: old.clone(),
                path: DetectionPath::Poll,
            },
            Event::ListenerUp {
                sentinel: sentinel.clone(),
            },
            Event::ListenerDown {
                sentinel: sentinel.clone(),
                reason: "connection refused".into(),
                retry_in: ms(150),
            },
            Event::MessageIgnored {
                sentinel: sentinel.clone(),
                channel: "+switch-master".into(),
                reason: IgnoreReason::Malformed("4 words, not 5".into()),
            },
            Event::MessageIgnored {
                sentinel: sentinel.clone(),
                channel: "+switch-master".into(),
                reason: IgnoreReason::Duplicate,
            },
            Event::DiscoveryFailed {
                error: DiscoveryError::SentinelsUnreachable {
                    failures: vec![(sentinel.clone(), "connection refused".into())],
                },
                retry_in: ms(100),
            },
            Event::VerificationFailed {
                node: new.clone(),
                reason: "ROLE says slave".into(),
            },
            Event::SentinelAdded { sentinel: a(26380) },
            Event::SentinelForgotten {
                sentinel: a(26380),
                reason: "unreachable for 60 s".into(),
            },
            Event::PauseTimedOut { waited: ms(600) },
            Event::Stopped {
                error: FatalError::PauseTimedOut { waited: ms(600) },
            },
            Event::PubSubResubscribed {
                old: Some(old),
                new,
                channels: 2,
                patterns: 1,
                gap: ms(160),
            },
        ]
    }
}
