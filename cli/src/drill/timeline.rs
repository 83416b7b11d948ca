//! The live timeline: a hook timestamps every supervisor event on the supervisor's task; a
//! thread prints it and follows each failover from its first signal to the workers' resume.

use super::stop::Stop;
use crate::events::describe;
use crate::output::{Out, human, ms, secs};
use crate::sync::lock;
use dramatiq_sentinel_supervisor::{Addr, Builder, DetectionPath, DiscoveryError, Event, Runtime};
use serde_json::{Value, json};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tracing::info;

/// How long a first signal that fenced nothing may precede a failover.
const STALE_SIGNAL: Duration = Duration::from_secs(30);

/// How a failover ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The workers resumed on a new master.
    Switched,
    /// The fence was lifted: the old master was still the master.
    Lifted(String),
}

/// One failover as the drill saw it.
#[derive(Debug, Clone)]
pub(crate) struct Failover {
    /// 1, 2, ...
    pub(crate) n: usize,
    /// The first signal: a sentinel channel such as `+try-failover`, or how the switch was found.
    pub(crate) first_signal: String,
    /// When it came.
    pub(crate) signal_at: Instant,
    /// The master before.
    pub(crate) old: Option<Addr>,
    /// The master after (the old one if the fence was lifted).
    pub(crate) new: Option<Addr>,
    /// The path that detected the switch.
    pub(crate) path: Option<DetectionPath>,
    /// How it ended.
    pub(crate) outcome: Outcome,
    /// From the first signal to the workers' resume.
    pub(crate) signal_to_resume: Duration,
    /// From the gate closing (fence or switch detected) to its reopening: no new job could
    /// start (with a drain, the workers were also paused).
    pub(crate) paused: Duration,
    /// The core's own figures: trigger to paused, to connected, to resumed.
    pub(crate) core: Option<(Option<Duration>, Duration, Duration)>,
}

impl Failover {
    /// The JSON object of this failover.
    pub(crate) fn json(&self, out: &Out) -> Value {
        let outcome = match &self.outcome {
            Outcome::Switched => "switched".to_owned(),
            Outcome::Lifted(reason) => format!("fence lifted: {reason}"),
        };
        let (to_paused, to_connected, total) = match self.core {
            Some((p, c, t)) => (p.map(ms), Some(ms(c)), Some(ms(t))),
            None => (None, None, None),
        };
        json!({
            "n": self.n,
            "outcome": outcome,
            "first_signal": self.first_signal,
            "signal_at_s": secs(out.since(self.signal_at)),
            "old": self.old.as_ref().map(ToString::to_string),
            "new": self.new.as_ref().map(ToString::to_string),
            "path": self.path.map(|p| p.to_string()),
            "signal_to_resume_ms": ms(self.signal_to_resume),
            "paused_ms": ms(self.paused),
            "core_to_paused_ms": to_paused,
            "core_to_connected_ms": to_connected,
            "core_total_ms": total,
        })
    }

    /// The line for people.
    pub(crate) fn text(&self, out: &Out) -> String {
        let route = match (&self.old, &self.new, &self.outcome) {
            (old, Some(new), Outcome::Switched) => format!(
                "{} -> {new}",
                old.as_ref()
                    .map_or_else(|| "?".to_owned(), ToString::to_string)
            ),
            (_, _, Outcome::Lifted(reason)) => format!("no switch ({reason})"),
            _ => "?".to_owned(),
        };
        format!(
            "{route}: first signal {} at {:.3}s, resumed {} later; new jobs waited {}",
            self.first_signal,
            out.since(self.signal_at).as_secs_f64(),
            human(self.signal_to_resume),
            human(self.paused)
        )
    }
}

/// A failover in progress.
#[derive(Debug)]
struct Open {
    signal: String,
    at: Instant,
    gate_closed: Option<Instant>,
    old: Option<Addr>,
}

/// Follows failovers through the events.
#[derive(Debug, Default)]
struct Tracker {
    open: Option<Open>,
    done: Vec<Failover>,
    switches: usize,
}

impl Tracker {
    fn begin(&mut self, at: Instant, signal: String, old: Option<Addr>) -> &mut Open {
        // A discovery failure that led nowhere (nothing fenced) long ago is not this failover's
        // first signal.
        if self.open.as_ref().is_some_and(|o| {
            o.gate_closed.is_none() && at.saturating_duration_since(o.at) > STALE_SIGNAL
        }) {
            self.open = None;
        }
        self.open.get_or_insert(Open {
            signal,
            at,
            gate_closed: None,
            old,
        })
    }

    /// Feeds one event; returns the failover it completed, if any.
    fn observe(&mut self, at: Instant, event: &Event) -> Option<Failover> {
        match event {
            Event::Fenced { master, signal, .. } => {
                let open = self.begin(at, signal.clone(), Some(master.clone()));
                open.gate_closed.get_or_insert(at);
                None
            }
            Event::CandidateNamed { .. } => {
                self.begin(at, "candidate named".to_owned(), None);
                None
            }
            // A broken master connection makes the core re-ask the sentinels: for a killed
            // master that is the first sign, before any sentinel announces a failover.
            Event::DiscoveryFailed { error, .. } => {
                self.begin(at, discovery_signal(error), None);
                None
            }
            Event::VerificationFailed { .. } => {
                self.begin(at, "master failed verification".to_owned(), None);
                None
            }
            // A false alarm: nothing was fenced and the master is confirmed.
            Event::MasterConfirmed { .. } | Event::Ready { .. } => {
                if self.open.as_ref().is_some_and(|o| o.gate_closed.is_none()) {
                    self.open = None;
                }
                None
            }
            Event::SwitchDetected {
                old: Some(old),
                path,
                ..
            } => {
                let open = self.begin(at, format!("switch detected ({path})"), Some(old.clone()));
                open.old.get_or_insert_with(|| old.clone());
                open.gate_closed.get_or_insert(at);
                None
            }
            Event::SwitchCompleted {
                old: Some(old),
                new,
                path,
                to_paused,
                to_connected,
                total,
            } => {
                self.switches += 1;
                let open = self.open.take().unwrap_or(Open {
                    signal: format!("switch detected ({path})"),
                    at,
                    gate_closed: Some(at),
                    old: Some(old.clone()),
                });
                Some(self.close(
                    open,
                    at,
                    Some(new.clone()),
                    Some(*path),
                    Outcome::Switched,
                    Some((*to_paused, *to_connected, *total)),
                ))
            }
            Event::FenceLifted { master, reason, .. } => {
                let open = self.open.take()?;
                Some(self.close(
                    open,
                    at,
                    Some(master.clone()),
                    None,
                    Outcome::Lifted(reason.clone()),
                    None,
                ))
            }
            _ => None,
        }
    }

    fn close(
        &mut self,
        open: Open,
        at: Instant,
        new: Option<Addr>,
        path: Option<DetectionPath>,
        outcome: Outcome,
        core: Option<(Option<Duration>, Duration, Duration)>,
    ) -> Failover {
        let failover = Failover {
            n: self.done.len() + 1,
            first_signal: open.signal,
            signal_at: open.at,
            old: open.old,
            new,
            path,
            outcome,
            signal_to_resume: at.saturating_duration_since(open.at),
            paused: open
                .gate_closed
                .map_or(Duration::ZERO, |c| at.saturating_duration_since(c)),
            core,
        };
        self.done.push(failover.clone());
        failover
    }
}

/// A short name for a discovery failure as a failover signal.
fn discovery_signal(error: &DiscoveryError) -> String {
    match error {
        DiscoveryError::MasterDown { .. } => "master reported down",
        DiscoveryError::SentinelsUnreachable { .. } => "sentinels unreachable",
        DiscoveryError::VerificationFailed { .. } => "master failed verification",
        _ => "discovery failed",
    }
    .to_owned()
}

enum Msg {
    Event(Instant, Event),
    Flush(Sender<()>),
}

/// The timeline of one drill.
#[derive(Debug)]
pub(crate) struct Timeline {
    tx: Sender<Msg>,
    tracker: Arc<Mutex<Tracker>>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

impl Timeline {
    /// Starts the printing thread. After `stop_after` completed switches it asks the drill to
    /// stop.
    pub(crate) fn start(out: Out, stop_after: Option<usize>, stop: Sender<Stop>) -> Self {
        let (tx, rx) = channel();
        let tracker = Arc::new(Mutex::new(Tracker::default()));
        let t = Arc::clone(&tracker);
        std::thread::spawn(move || print(&rx, &out, &t, stop_after, &stop));
        Self { tx, tracker }
    }

    /// Adds the hook that records every event of the builder's supervisor.
    pub(crate) fn attach<R: Runtime>(&self, builder: Builder<R>) -> Builder<R> {
        let tx = self.tx.clone();
        builder.on_event(move |e| {
            let _ = tx.send(Msg::Event(Instant::now(), e.clone()));
        })
    }

    /// Returns once every event recorded so far is printed and tracked.
    pub(crate) fn flush(&self) {
        let (done, wait) = channel();
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    fn tracker(&self) -> MutexGuard<'_, Tracker> {
        lock(&self.tracker)
    }

    /// The failovers completed so far.
    pub(crate) fn failovers(&self) -> Vec<Failover> {
        self.tracker().done.clone()
    }
}

fn print(
    rx: &Receiver<Msg>,
    out: &Out,
    tracker: &Mutex<Tracker>,
    stop_after: Option<usize>,
    stop: &Sender<Stop>,
) {
    while let Ok(msg) = rx.recv() {
        let (at, event) = match msg {
            Msg::Event(at, event) => (at, event),
            Msg::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let d = describe(&event);
        if !d.routine || out.verbose() {
            out.line(at, d.label, &d.text, d.json);
        }
        let (completed, switches) = {
            let mut t = lock(tracker);
            (t.observe(at, &event), t.switches)
        };
        if let Some(f) = completed {
            let mut json = f.json(out);
            if let Value::Object(o) = &mut json {
                o.insert("type".into(), Value::from("failover"));
            }
            out.line(at, &format!("failover #{}", f.n), &f.text(out), json);
            if Some(switches) == stop_after && f.outcome == Outcome::Switched {
                info!(switches, "the requested number of failovers was observed");
                let _ = stop.send(Stop::Failovers(switches));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(port: u16) -> Addr {
        Addr::new("127.0.0.1", port)
    }

    #[test]
    fn a_failover_runs_from_its_first_signal_to_the_resume() {
        let mut t = Tracker::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let fenced = Event::Fenced {
            master: a(1),
            path: DetectionPath::EarlySignal,
            sentinel: None,
            signal: "+try-failover".into(),
        };
        assert!(t.observe(at(10), &fenced).is_none());
        let candidate = Event::CandidateNamed {
            candidate: a(2),
            sentinel: None,
        };
        assert!(t.observe(at(100), &candidate).is_none());
        let done = Event::SwitchCompleted {
            old: Some(a(1)),
            new: a(2),
            path: DetectionPath::EarlySignal,
            to_paused: Some(Duration::from_millis(1)),
            to_connected: Duration::from_millis(200),
            total: Duration::from_millis(201),
        };
        let f = t.observe(at(310), &done).expect("completed");
        assert_eq!(f.first_signal, "+try-failover");
        assert_eq!(f.signal_to_resume, Duration::from_millis(300));
        assert_eq!(f.paused, Duration::from_millis(300));
        assert_eq!(f.old, Some(a(1)));
        assert_eq!(f.new, Some(a(2)));
        assert_eq!(t.switches, 1);
        let lifted = Event::FenceLifted {
            master: a(2),
            reason: "failover aborted".into(),
            held: Duration::from_millis(5),
        };
        assert!(t.observe(at(400), &lifted).is_none(), "nothing open");
    }

    #[test]
    fn a_killed_master_counts_from_the_first_failed_discovery() {
        let mut t = Tracker::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let down = Event::DiscoveryFailed {
            error: DiscoveryError::MasterDown {
                master: a(1),
                flags: "master,disconnected".into(),
            },
            retry_in: Duration::from_millis(100),
        };
        let confirmed = Event::MasterConfirmed {
            master: a(1),
            path: DetectionPath::Poll,
        };
        assert!(t.observe(at(0), &down).is_none());
        assert!(t.observe(at(50), &confirmed).is_none(), "a false alarm");
        assert!(t.observe(at(100), &down).is_none());
        let fenced = Event::Fenced {
            master: a(1),
            path: DetectionPath::EarlySignal,
            sentinel: None,
            signal: "+odown".into(),
        };
        assert!(t.observe(at(2100), &fenced).is_none());
        let lifted = Event::FenceLifted {
            master: a(1),
            reason: "failover aborted".into(),
            held: Duration::from_millis(900),
        };
        let f = t.observe(at(3000), &lifted).expect("closed");
        assert_eq!(f.first_signal, "master reported down");
        assert_eq!(f.signal_to_resume, Duration::from_millis(2900));
        assert_eq!(f.paused, Duration::from_millis(900));
        assert_eq!(f.outcome, Outcome::Lifted("failover aborted".into()));
    }
}
