//! The table machinery of the report: a workload's tables (a row per client, each cell the
//! median (min..max) over its runs), client labels, and the cells' number format.

use super::apalis;
use super::metrics::{Stats, stats};
use super::ours::Ours;
use super::scenario::Scenario;
use std::fmt::Write as _;

/// One figure of a run, for a table column.
pub(crate) type Column<'a, T> = &'a dyn Fn(&T) -> Option<f64>;

/// A workload's section: per scenario a table with a row per client (each column's
/// median (min..max) over its runs) and the note about runs with a second failover, which
/// `twice` describes (`None` for a run with one failover).
pub(crate) fn workload_tables<T>(
    out: &mut String,
    runs: &[(Scenario, String, Result<T, String>)],
    title: &str,
    first_column: &str,
    columns: &[(&str, Column<'_, T>)],
    twice: &dyn Fn(&T) -> Option<String>,
) {
    if runs.is_empty() {
        return;
    }
    let _ = writeln!(out, "## {title}\n");
    for scenario in scenarios_of(runs) {
        let _ = writeln!(out, "### {}\n", scenario.label());
        let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
        let _ = writeln!(out, "| {first_column} | {} | runs |", names.join(" | "));
        let _ = writeln!(out, "{}|", "|---".repeat(columns.len() + 2));
        for client in clients_of(runs) {
            let (ok, failed) = ok_runs(runs, scenario, &client);
            if ok.is_empty() && failed == 0 {
                continue;
            }
            let cells: Vec<String> = columns
                .iter()
                .map(|(_, f)| cell(&ok.iter().map(|r| f(r)).collect::<Vec<_>>()))
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                client_label(&client),
                cells.join(" | "),
                runs_cell(ok.len(), failed)
            );
        }
        let seconds: Vec<String> = runs
            .iter()
            .filter(|(s, _, _)| *s == scenario)
            .filter_map(|(_, c, r)| {
                let what = twice(r.as_ref().ok()?)?;
                Some(format!("{} ({what})", client_label(c)))
            })
            .collect();
        second_failovers(out, &seconds);
        let _ = writeln!(out);
    }
}

/// Per scenario and client, the first three distinct error messages its runs surfaced, one
/// line each, prefixed with `prefix`.
pub(crate) fn error_samples<T>(
    out: &mut String,
    runs: &[(Scenario, String, Result<T, String>)],
    prefix: &str,
    samples: impl Fn(&T) -> &[String],
) {
    for scenario in scenarios_of(runs) {
        for client in clients_of(runs) {
            let (ok, _) = ok_runs(runs, scenario, &client);
            let mut msgs: Vec<&String> = Vec::new();
            for m in ok.iter().flat_map(|r| samples(r)) {
                if !msgs.contains(&m) && msgs.len() < 3 {
                    msgs.push(m);
                }
            }
            if !msgs.is_empty() {
                let _ = writeln!(
                    out,
                    "- {prefix}{}, {}: {}",
                    scenario.id(),
                    client_label(&client),
                    msgs.iter()
                        .map(|m| format!("`{}`", m.replace('`', "'")))
                        .collect::<Vec<_>>()
                        .join("; ")
                );
            }
        }
    }
}

/// The note under a table about runs in which the sentinels failed over twice.
fn second_failovers(out: &mut String, runs: &[String]) {
    if !runs.is_empty() {
        let _ = writeln!(
            out,
            "\nThe sentinels failed over a second time (redis/redis#8607) in {} run(s), included above: {}.",
            runs.len(),
            runs.join("; ")
        );
    }
}

/// A client's label in the tables.
pub(crate) fn client_label(id: &str) -> String {
    if let Some(o) = Ours::from_id(id) {
        return o.label().to_owned();
    }
    if id.starts_with("apalis-") {
        return apalis::label(id).to_owned();
    }
    match id {
        "redis-py" => "redis-py `Sentinel.master_for`".to_owned(),
        "ioredis" => "ioredis (sentinels)".to_owned(),
        "ioredis-detector" => "ioredis + `failoverDetector`".to_owned(),
        "redis-rs" => "`redis` crate `sentinel::SentinelClient`".to_owned(),
        other => other.to_owned(),
    }
}

pub(crate) fn num(x: f64) -> String {
    if x.abs() >= 100.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// `median (min..max)`, or `median` when all runs agree, `–` without values; `missing` runs
/// without a value are noted.
pub(crate) fn cell(values: &[Option<f64>]) -> String {
    let have: Vec<f64> = values.iter().flatten().copied().collect();
    let missing = values.len() - have.len();
    let mut s = match stats(&have) {
        None => "–".to_owned(),
        Some(Stats {
            median, min, max, ..
        }) if min == max => num(median),
        Some(Stats {
            median, min, max, ..
        }) => {
            format!("{} ({}..{})", num(median), num(min), num(max))
        }
    };
    if missing > 0 && !have.is_empty() {
        let _ = write!(s, " [none in {missing}]");
    } else if missing > 0 {
        s = format!("none ({missing} runs)");
    }
    s
}

pub(crate) fn ok_runs<'a, T>(
    runs: &'a [(Scenario, String, Result<T, String>)],
    scenario: Scenario,
    client: &'a str,
) -> (Vec<&'a T>, usize) {
    let mut ok = Vec::new();
    let mut failed = 0;
    for (s, c, r) in runs {
        if *s == scenario && c == client {
            match r {
                Ok(v) => ok.push(v),
                Err(_) => failed += 1,
            }
        }
    }
    (ok, failed)
}

pub(crate) fn clients_of<T>(runs: &[(Scenario, String, Result<T, String>)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (_, c, _) in runs {
        if !out.contains(c) {
            out.push(c.clone());
        }
    }
    out
}

pub(crate) fn scenarios_of<T>(runs: &[(Scenario, String, Result<T, String>)]) -> Vec<Scenario> {
    let mut out: Vec<Scenario> = runs.iter().map(|(s, _, _)| *s).collect();
    out.sort();
    out.dedup();
    out
}

fn runs_cell(ok: usize, failed: usize) -> String {
    if failed == 0 {
        ok.to_string()
    } else {
        format!("{ok} (+{failed} failed)")
    }
}
