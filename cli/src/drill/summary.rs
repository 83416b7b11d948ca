//! The summary printed when the drill ends, and the exit status it implies.

use super::account::Accounts;
use super::timeline::{Failover, Outcome};
use crate::output::{Out, human, ms, secs};
use serde_json::{Value, json};
use std::fmt::Write;
use std::time::Duration;

/// Everything the summary reports.
pub(crate) struct Summary<'a> {
    pub(crate) runtime: &'static str,
    pub(crate) elapsed: Duration,
    pub(crate) reason: String,
    pub(crate) durable: bool,
    pub(crate) accounts: &'a Accounts,
    pub(crate) failovers: &'a [Failover],
    /// Errors the workers saw and retried (fetches, acknowledgements).
    pub(crate) worker_errors: usize,
    /// Failed push attempts of the producer (retried).
    pub(crate) push_retries: usize,
    /// How the supervisor's shutdown went.
    pub(crate) shutdown: Result<(), String>,
    /// The run itself failed (an act of the story, or the supervisor stopped with an error):
    /// the process exits with 1 ([`crate::exit::FAILED`]) even when every job is accounted for.
    pub(crate) failed: bool,
}

/// Exit status: every job accounted for and clean.
pub(crate) const CLEAN: u8 = crate::exit::OK;
/// Exit status: jobs lost or run twice.
pub(crate) const DAMAGE: u8 = crate::exit::FAILED;
/// Exit status: the accounting could not be completed.
pub(crate) const INCOMPLETE: u8 = crate::exit::INCOMPLETE;

impl Summary<'_> {
    /// The longest time no job could start, and the failover it belongs to.
    fn longest_pause(&self) -> Option<&Failover> {
        self.failovers.iter().max_by_key(|f| f.paused)
    }

    fn damage(&self) -> bool {
        !self.accounts.lost.is_empty() || !self.accounts.run_twice.is_empty()
    }

    fn incomplete(&self) -> bool {
        self.accounts.unchecked.is_some() || self.accounts.unfinished > 0
    }

    /// The exit status this summary implies.
    pub(crate) fn exit_code(&self) -> u8 {
        if self.damage() {
            DAMAGE
        } else if self.failed {
            crate::exit::FAILED
        } else if self.incomplete() {
            INCOMPLETE
        } else {
            CLEAN
        }
    }

    /// The verdict in a few words.
    fn verdict(&self) -> &'static str {
        match (self.damage(), self.failed, self.incomplete()) {
            (true, _, _) => "JOBS LOST OR RUN TWICE",
            (false, true, true) => "THE DRILL FAILED, accounting incomplete",
            (false, true, false) => "THE DRILL FAILED, though no job was lost or run twice",
            (false, false, true) => "accounting incomplete",
            (false, false, false) => "every job done exactly once",
        }
    }

    /// Prints the summary.
    pub(crate) fn print(&self, out: &Out) {
        out.block(&self.text(out), self.json(out));
    }

    fn text(&self, out: &Out) -> String {
        let a = self.accounts;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n== summary: {} ({}, {:.1} s, stopped: {})",
            self.verdict(),
            self.runtime,
            self.elapsed.as_secs_f64(),
            self.reason
        );
        let row = |s: &mut String, name: &str, value: String, note: &str| {
            let line = format!("  {name:<16}{value:>8}  {note}");
            let _ = writeln!(s, "{}", line.trim_end());
        };
        if let Some(why) = &a.unchecked {
            let _ = writeln!(s, "  Redis could not be checked at the end: {why}");
        }
        // Figures that need Redis's answer are unknown without it.
        let checked = |n: usize| match a.unchecked {
            Some(_) => "?".to_owned(),
            None => n.to_string(),
        };
        let pushes = if self.durable {
            "pushes acknowledged and replicated (WAIT 1)"
        } else {
            "pushes acknowledged by the master"
        };
        row(&mut s, "jobs produced", a.produced.to_string(), pushes);
        row(&mut s, "jobs done", checked(a.done), "recorded in `done`");
        let lost = a
            .lost
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        row(&mut s, "jobs lost", checked(a.lost.len()), &lost);
        let twice = a
            .run_twice
            .iter()
            .take(5)
            .map(|(j, n)| format!("{j} x{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        row(
            &mut s,
            "jobs run twice",
            a.run_twice.len().to_string(),
            &twice,
        );
        let drain = match &a.drained {
            Some(Err(e)) => e.clone(),
            _ => "still queued or processing after the drain".to_owned(),
        };
        row(&mut s, "unfinished", checked(a.unfinished), &drain);
        if a.uncertain > 0 {
            row(
                &mut s,
                "uncertain",
                a.uncertain.to_string(),
                &format!(
                    "push still failing at the stop (not counted; {} ran anyway)",
                    a.uncertain_done
                ),
            );
        }
        row(
            &mut s,
            "requeued",
            a.requeued.to_string(),
            "fetched but never started (reply lost): put back by the reaper",
        );
        row(
            &mut s,
            "push retries",
            self.push_retries.to_string(),
            "failed pushes, retried (idempotent)",
        );
        row(
            &mut s,
            "worker retries",
            self.worker_errors.to_string(),
            "failed fetches or acknowledgements, retried",
        );
        let durable = if self.durable {
            "; includes jobs in flight waiting for a replica of the new master"
        } else {
            ""
        };
        match self.longest_pause() {
            Some(f) => row(
                &mut s,
                "longest fence",
                human(f.paused),
                &format!("no new job could start, failover #{}{durable}", f.n),
            ),
            None => row(&mut s, "longest fence", "-".into(), "no failover"),
        }
        row(
            &mut s,
            "failovers",
            self.failovers.len().to_string(),
            "first signal -> workers resumed",
        );
        for f in self.failovers {
            let _ = writeln!(s, "    #{:<2} {}", f.n, f.text(out));
            if let (Outcome::Switched, Some((to_paused, to_connected, total))) =
                (&f.outcome, f.core)
            {
                let _ = writeln!(
                    s,
                    "        path {}; the core: paused after {}, new master in use after {}, \
                     resumed after {} (from its trigger)",
                    f.path.map_or_else(|| "?".to_owned(), |p| p.to_string()),
                    to_paused.map_or_else(|| "-".to_owned(), human),
                    human(to_connected),
                    human(total)
                );
            }
        }
        if let Err(e) = &self.shutdown {
            let _ = writeln!(s, "  supervisor shutdown: {e}");
        }
        s
    }

    fn json(&self, out: &Out) -> Value {
        let a = self.accounts;
        let checked = |n: usize| match a.unchecked {
            Some(_) => Value::Null,
            None => Value::from(n),
        };
        json!({
            "type": "summary",
            "verdict": self.verdict(),
            "exit_code": self.exit_code(),
            "runtime": self.runtime,
            "elapsed_s": secs(self.elapsed),
            "stopped": self.reason,
            "durable": self.durable,
            "checked": a.unchecked.is_none(),
            "unchecked_reason": a.unchecked,
            "produced": a.produced,
            "done": checked(a.done),
            "lost": checked(a.lost.len()),
            "lost_ids": a.lost.iter().take(100).collect::<Vec<_>>(),
            "run_twice": a.run_twice.len(),
            "run_twice_ids": a.run_twice.iter().take(100).map(|(j, _)| j).collect::<Vec<_>>(),
            "unfinished": checked(a.unfinished),
            "drained": matches!(a.drained, Some(Ok(_))),
            "uncertain": a.uncertain,
            "uncertain_done": a.uncertain_done,
            "requeued": a.requeued,
            "worker_errors": self.worker_errors,
            "push_retries": self.push_retries,
            "longest_pause_ms": self.longest_pause().map(|f| ms(f.paused)),
            "failovers": self.failovers.iter().map(|f| f.json(out)).collect::<Vec<_>>(),
            "shutdown_error": self.shutdown.as_ref().err(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(accounts: &Accounts, failed: bool) -> Summary<'_> {
        Summary {
            runtime: "tokio",
            elapsed: Duration::from_secs(1),
            reason: "test".to_owned(),
            durable: false,
            accounts,
            failovers: &[],
            worker_errors: 0,
            push_retries: 0,
            shutdown: Ok(()),
            failed,
        }
    }

    #[test]
    fn the_exit_status_and_the_verdict_agree() {
        let clean = Accounts::default();
        assert_eq!(summary(&clean, false).exit_code(), crate::exit::OK);
        assert_eq!(
            summary(&clean, false).verdict(),
            "every job done exactly once"
        );
        // A failed story exits with 1 even when every job is accounted for, and says so.
        let s = summary(&clean, true);
        assert_eq!(s.exit_code(), crate::exit::FAILED);
        assert!(
            s.verdict().starts_with("THE DRILL FAILED"),
            "{}",
            s.verdict()
        );
        let unfinished = Accounts {
            unfinished: 1,
            ..Accounts::default()
        };
        assert_eq!(
            summary(&unfinished, false).exit_code(),
            crate::exit::INCOMPLETE
        );
        let lost = Accounts {
            lost: vec!["drill-1-1".to_owned()],
            ..Accounts::default()
        };
        assert_eq!(summary(&lost, true).exit_code(), crate::exit::FAILED);
        assert_eq!(summary(&lost, true).verdict(), "JOBS LOST OR RUN TWICE");
    }
}
