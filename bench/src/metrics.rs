//! The figures of one run, computed from what the client reported, what the observer saw and
//! what the final master holds; and median / min..max over runs. Pure functions.

use super::clock::ms_between;
use super::observer::MARKER;
use std::collections::{BTreeMap, HashSet};

/// Median, minimum and maximum of some runs' values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stats {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) n: usize,
}

/// The statistics of `values` (`None` when empty). The median of an even count is the mean of
/// the two middle values.
pub(crate) fn stats(values: &[f64]) -> Option<Stats> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Stats {
        median,
        min: v[0],
        max: v[n - 1],
        n,
    })
}

/// The value at quantile `q` (0..=1, nearest rank) of `values`' finite ones; `None` without any.
pub(crate) fn pct(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[((v.len() - 1) as f64 * q).round() as usize])
}

/// The longest gap between consecutive instants of `times` (sorted or not) from its first
/// instant up to `end` (the gap to `end` counts too), in ms. `None` without instants.
pub(crate) fn longest_gap(times: &[u64], end: u64) -> Option<f64> {
    let mut t: Vec<u64> = times.iter().copied().filter(|&x| x <= end).collect();
    t.sort_unstable();
    let first = *t.first()?;
    let mut prev = first;
    let mut longest = 0.0_f64;
    for &x in t.iter().skip(1).chain(std::iter::once(&end)) {
        longest = longest.max(ms_between(prev, x));
        prev = x;
    }
    Some(longest)
}

/// The writer workload's figures of one run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WriterFigures {
    /// Writes acknowledged to the client.
    pub(crate) acked: usize,
    /// Acknowledged writes missing from the final master.
    pub(crate) lost: usize,
    /// Longest gap between acknowledged writes, as the application saw it (ms).
    pub(crate) ack_gap_ms: f64,
    /// Longest gap between acknowledged writes that the final master holds (ms).
    pub(crate) durable_gap_ms: f64,
    /// When the first write executed by the new master was acknowledged.
    pub(crate) first_new_write: Option<u64>,
    /// Whether that was located by the probe's marker (otherwise: first durable write after
    /// the writable instant).
    pub(crate) by_marker: bool,
}

/// Computes a writer run's figures.
///
/// - `acks`: (sequence number, acknowledgement time) of every acknowledged write;
/// - `final_list`: the list on the final master (sequence numbers and the probe's markers);
/// - `stop`: when the run ended (gaps up to it count);
/// - `writable`: when the observer's probe first wrote to a new master.
///
/// The first write on the new master is the first acknowledged sequence number that follows
/// the first probe marker in the final list (every entry after the marker was executed by the
/// new master); without a marker, the first durable acknowledgement after `writable`.
pub(crate) fn writer_figures(
    acks: &[(u64, u64)],
    final_list: &[String],
    stop: u64,
    writable: Option<u64>,
) -> WriterFigures {
    let ack_at: BTreeMap<u64, u64> = acks.iter().copied().collect();
    let present: HashSet<u64> = final_list.iter().filter_map(|s| s.parse().ok()).collect();
    let lost = ack_at.keys().filter(|s| !present.contains(s)).count();
    let all: Vec<u64> = ack_at.values().copied().collect();
    let durable: Vec<u64> = ack_at
        .iter()
        .filter(|(s, _)| present.contains(s))
        .map(|(_, t)| *t)
        .collect();
    let marker = final_list.iter().position(|s| s.starts_with(MARKER));
    let (first_new_write, by_marker) = match marker {
        Some(i) => (
            final_list[i + 1..]
                .iter()
                .filter_map(|s| s.parse::<u64>().ok())
                .find_map(|seq| ack_at.get(&seq).copied()),
            true,
        ),
        None => (
            writable.and_then(|w| durable.iter().copied().filter(|&t| t > w).min()),
            false,
        ),
    };
    WriterFigures {
        acked: ack_at.len(),
        lost,
        ack_gap_ms: longest_gap(&all, stop).unwrap_or(f64::NAN),
        durable_gap_ms: longest_gap(&durable, stop).unwrap_or(f64::NAN),
        first_new_write,
        by_marker,
    }
}

/// The job workload's accounts of one run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobFigures {
    /// Jobs known to exist: the backlog and every confirmed push.
    pub(crate) produced: usize,
    /// Produced jobs whose effect the final master does not hold.
    pub(crate) lost: usize,
    /// Jobs a worker started more than once.
    pub(crate) run_twice: usize,
    /// Longest gap between job starts while jobs were being produced (ms).
    pub(crate) gap_ms: f64,
}

/// Computes a job run's accounts: `starts` are (job, start time) as workers reported them,
/// `done` the final master's set of effects, `producing_until` when production stopped.
pub(crate) fn job_figures(
    produced: &HashSet<String>,
    starts: &[(String, u64)],
    done: &HashSet<String>,
    producing_until: u64,
) -> JobFigures {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for (job, _) in starts {
        *count.entry(job.as_str()).or_default() += 1;
    }
    let times: Vec<u64> = starts.iter().map(|(_, t)| *t).collect();
    JobFigures {
        produced: produced.len(),
        lost: produced.iter().filter(|j| !done.contains(*j)).count(),
        run_twice: count.values().filter(|&&n| n > 1).count(),
        gap_ms: longest_gap(&times, producing_until).unwrap_or(f64::NAN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn statistics() {
        assert_eq!(stats(&[]), None);
        let s = stats(&[3.0, 1.0, 2.0]).expect("values");
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        let s = stats(&[4.0, 1.0, 2.0, 3.0]).expect("values");
        assert_eq!(s.median, 2.5);
        assert_eq!(stats(&[f64::NAN]), None);
    }

    #[test]
    fn gaps_count_the_tail() {
        assert_eq!(longest_gap(&[], 10), None);
        assert_eq!(longest_gap(&[MS, 2 * MS, 7 * MS], 8 * MS), Some(5.0));
        assert_eq!(longest_gap(&[MS, 2 * MS], 12 * MS), Some(10.0));
    }

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn writer_losses_gaps_and_first_write_on_the_new_master() {
        // 1..=3 before the promotion; 4 and 5 went to the old master after it (lost); 6 is
        // the first write on the new master, 7 an unacknowledged one.
        let acks: Vec<(u64, u64)> = (1..=6).map(|s| (s, s * MS)).collect();
        let final_list = list(&["1", "2", "3", "probe:127.0.0.1:1", "7", "6"]);
        let f = writer_figures(&acks, &final_list, 10 * MS, Some(3 * MS + 1));
        assert_eq!(f.acked, 6);
        assert_eq!(f.lost, 2);
        assert_eq!(f.ack_gap_ms, 4.0); // 6 ms to the end at 10 ms
        assert_eq!(f.durable_gap_ms, 4.0); // 3 ms -> 6 ms -> 10 ms
        assert_eq!(f.first_new_write, Some(6 * MS));
        assert!(f.by_marker);
        // Without a marker: the first durable write after the writable instant.
        let f = writer_figures(
            &acks,
            &list(&["1", "2", "3", "6"]),
            10 * MS,
            Some(3 * MS + 1),
        );
        assert_eq!(f.first_new_write, Some(6 * MS));
        assert!(!f.by_marker);
    }

    #[test]
    fn job_accounts() {
        let produced: HashSet<String> = ["a", "b", "c"].iter().map(|s| (*s).to_owned()).collect();
        let starts = vec![
            ("a".to_owned(), MS),
            ("b".to_owned(), 2 * MS),
            ("a".to_owned(), 9 * MS),
        ];
        let done: HashSet<String> = ["a", "b"].iter().map(|s| (*s).to_owned()).collect();
        let f = job_figures(&produced, &starts, &done, 10 * MS);
        assert_eq!((f.produced, f.lost, f.run_twice), (3, 1, 1));
        assert_eq!(f.gap_ms, 7.0);
    }
}
