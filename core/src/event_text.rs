//! One line of text per [`Event`], for applications that print or forward events (the
//! supervisor's `tracing` records carry the same facts as structured fields).

use crate::addr::Addr;
use crate::event::Event;
use std::fmt;
use std::time::Duration;

/// `old -> new`, or `new` when there was no master before (startup).
struct Move<'a>(&'a Option<Addr>, &'a Addr);

impl fmt::Display for Move<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(old) => write!(f, "{old} -> {}", self.1),
            None => write!(f, "{} (startup)", self.1),
        }
    }
}

/// ` (sentinel s)` when a sentinel reported it.
struct From<'a>(&'a Option<Addr>);

impl fmt::Display for From<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, " (sentinel {s})"),
            None => Ok(()),
        }
    }
}

fn ms(d: &Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Ready { master, elapsed } => {
                write!(f, "ready: master {master} verified in {}", ms(elapsed))
            }
            Event::WritesLost {
                old,
                new,
                old_offset,
                new_offset,
                bytes,
                commands,
                unread,
            } => {
                write!(
                    f,
                    "writes lost: {old} went {bytes} bytes of replication stream past where \
                     {new} left it (offsets {new_offset} -> {old_offset}); "
                )?;
                match (commands, unread) {
                    (Some(c), _) => write!(f, "{} commands read back", c.len()),
                    (None, Some(why)) => write!(f, "not read back: {why}"),
                    (None, None) => f.write_str("not read back"),
                }
            }
            Event::NothingLost {
                old,
                new,
                old_offset,
                new_offset,
            } => {
                let at = |o: &Option<u64>| o.map_or_else(|| "?".to_owned(), |o| o.to_string());
                write!(
                    f,
                    "no write lost: {old} went to offset {}, {new} left it at {}",
                    at(old_offset),
                    at(new_offset)
                )
            }
            Event::Fenced {
                master,
                path,
                sentinel,
                signal,
            } => write!(f, "fenced {master} on {signal} ({path}){}", From(sentinel)),
            Event::CandidateNamed {
                candidate,
                sentinel,
            } => write!(f, "candidate {candidate} named{}", From(sentinel)),
            Event::SwitchDetected {
                old,
                new,
                sentinel,
                path,
            } => write!(
                f,
                "switch detected: {} ({path}){}",
                Move(old, new),
                From(sentinel)
            ),
            Event::BeforeReset { old, new } => {
                write!(f, "moving the master connection: {}", Move(old, new))
            }
            Event::AfterReset { old, new } => {
                write!(f, "master connection moved: {}", Move(old, new))
            }
            Event::SwitchCompleted {
                old,
                new,
                path,
                to_paused,
                to_connected,
                total,
            } => {
                write!(
                    f,
                    "switch completed: {} ({path}): connected after {}",
                    Move(old, new),
                    ms(to_connected)
                )?;
                if let Some(p) = to_paused {
                    write!(f, ", drained after {}", ms(p))?;
                }
                write!(f, ", resumed after {}", ms(total))
            }
            Event::FenceLifted {
                master,
                reason,
                held,
            } => write!(f, "fence lifted on {master} after {}: {reason}", ms(held)),
            Event::FenceExpired { master, waited } => write!(
                f,
                "fence expired after {} without a promotion: re-verifying {master}",
                ms(waited)
            ),
            Event::MasterConfirmed { master, path } => {
                write!(f, "master {master} confirmed ({path})")
            }
            Event::ListenerUp { sentinel } => write!(f, "listening to sentinel {sentinel}"),
            Event::ListenerDown {
                sentinel,
                reason,
                retry_in,
            } => write!(
                f,
                "listener of sentinel {sentinel} down: {reason}; retry in {}",
                ms(retry_in)
            ),
            Event::MessageIgnored {
                sentinel,
                channel,
                reason,
            } => write!(f, "ignored {channel} from sentinel {sentinel}: {reason}"),
            Event::DiscoveryFailed { error, retry_in } => {
                write!(f, "discovery failed: {error}; retry in {}", ms(retry_in))
            }
            Event::VerificationFailed { node, reason } => {
                write!(f, "{node} failed verification: {reason}")
            }
            Event::SentinelAdded { sentinel } => write!(f, "sentinel {sentinel} learned"),
            Event::SentinelForgotten { sentinel, reason } => {
                write!(f, "sentinel {sentinel} forgotten: {reason}")
            }
            Event::PauseTimedOut { waited } => write!(
                f,
                "workers did not pause within {}: stopping them",
                ms(waited)
            ),
            Event::Stopped { error } => write!(f, "stopped: {error}"),
            Event::PubSubResubscribed {
                old,
                new,
                channels,
                patterns,
                gap,
            } => write!(
                f,
                "pub/sub resubscribed on {} ({channels} channels, {patterns} patterns); \
                 messages of the last {} were missed",
                Move(old, new),
                ms(gap)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_what_happened() {
        let a = |p| Addr::new("127.0.0.1", p);
        let e = Event::SwitchCompleted {
            old: Some(a(7000)),
            new: a(7001),
            path: crate::DetectionPath::EarlySignal,
            to_paused: None,
            to_connected: Duration::from_micros(4800),
            total: Duration::from_micros(5100),
        };
        assert_eq!(
            e.to_string(),
            "switch completed: 127.0.0.1:7000 -> 127.0.0.1:7001 (early-signal): connected after \
             4.8 ms, resumed after 5.1 ms"
        );
        let e = Event::Ready {
            master: a(7000),
            elapsed: Duration::from_millis(3),
        };
        assert_eq!(
            e.to_string(),
            "ready: master 127.0.0.1:7000 verified in 3.0 ms"
        );
        let e = Event::CandidateNamed {
            candidate: a(7002),
            sentinel: Some(a(26379)),
        };
        assert_eq!(
            e.to_string(),
            "candidate 127.0.0.1:7002 named (sentinel 127.0.0.1:26379)"
        );
    }
}
