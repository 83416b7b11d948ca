//! `dramatiq-sentinel status`: the deployment as the sentinels see it (master, replicas,
//! sentinels with their flags, quorum), read with the supervisor's status code
//! ([`read_status`]) without starting a supervisor, printed as a table or as one JSON object.

use crate::error::CliError;
use crate::exit;
use crate::target::Target;
use dramatiq_sentinel_supervisor::{NodeStatus, Status, read_status};
use dramatiq_sentinel_tokio::Tokio;
use serde_json::{Value, json};
use std::fmt::Write;
use tracing::info;

/// The command line of `dramatiq-sentinel status`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    about = "The deployment as the sentinels see it: master, replicas, sentinels with their \
             flags, quorum; a table, or JSON with --json",
    long_about = "The deployment as the sentinels see it. The sentinels are asked in order \
                  (SENTINEL MASTER, REPLICAS, SENTINELS, CKQUORUM); the first that answers every \
                  query gives the view: the master, the replicas and the other sentinels with \
                  their flags, and the quorum. Sentinels asked before it are listed with why \
                  they did not answer. No data node is contacted.",
    override_usage = "dramatiq-sentinel status --sentinel HOST:PORT [--sentinel ...] --service NAME [OPTIONS]",
    after_help = exit::TABLE
)]
pub struct StatusArgs {
    /// One JSON object instead of the table
    #[arg(long, help_heading = "Output")]
    pub json: bool,
    /// The deployment and the supervisor settings.
    #[command(flatten)]
    pub target: Target,
}

/// Runs `status`; the exit status.
pub fn run(args: &StatusArgs) -> Result<u8, CliError> {
    args.target.require_deployment()?;
    let target = &args.target;
    let config = target.config()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    let status = rt
        .block_on(async { read_status(&Tokio::current(), &config).await })
        .map_err(|e| CliError::from_status(config.service_name(), e))?;
    info!(
        source = %status.source,
        master = %status.master.addr,
        unreachable = status.unreachable.len(),
        healthy = healthy(&status),
        "status read"
    );
    if args.json {
        println!("{}", to_json(&status));
    } else {
        print!("{}", table(&status));
    }
    Ok(exit::OK)
}

/// Whether the master, every replica and every sentinel are free of `s_down`, `o_down` and
/// `disconnected` flags, the quorum is reachable and every sentinel asked answered.
pub fn healthy(s: &Status) -> bool {
    s.master.is_healthy()
        && s.replicas.iter().all(NodeStatus::is_healthy)
        && s.sentinels.iter().all(NodeStatus::is_healthy)
        && s.quorum.reachable
        && s.unreachable.is_empty()
}

fn node_json(n: &NodeStatus) -> Value {
    json!({
        "addr": n.addr.to_string(),
        "announced": n.announced.to_string(),
        "flags": n.flags,
        "healthy": n.is_healthy(),
        "fields": n.fields,
    })
}

/// The status as one JSON object: `service`, `source` (the sentinel that answered),
/// `healthy`, `master`, `replicas`, `sentinels` (the others, as `source` sees them), `quorum`
/// and `unreachable`. Each node has `addr`, `announced`, `flags`, `healthy` and every
/// `fields` of the sentinel's reply.
pub fn to_json(s: &Status) -> Value {
    json!({
        "service": s.service,
        "source": s.source.to_string(),
        "healthy": healthy(s),
        "master": node_json(&s.master),
        "replicas": s.replicas.iter().map(node_json).collect::<Vec<_>>(),
        "sentinels": s.sentinels.iter().map(node_json).collect::<Vec<_>>(),
        "quorum": { "reachable": s.quorum.reachable, "message": s.quorum.message },
        "unreachable": s.unreachable.iter()
            .map(|(a, e)| json!({ "sentinel": a.to_string(), "error": e }))
            .collect::<Vec<_>>(),
    })
}

/// `field value` pairs of `n` that exist, for the DETAILS column.
fn details(n: &NodeStatus, wanted: &[(&str, &str)]) -> String {
    wanted
        .iter()
        .filter_map(|(field, name)| {
            let v = n.fields.get(*field)?;
            Some(if field.ends_with("milliseconds") {
                format!("{name} {v} ms")
            } else if field.starts_with("last-") {
                format!("{name} {v} ms ago")
            } else {
                format!("{name} {v}")
            })
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn address(n: &NodeStatus) -> String {
    if n.addr == n.announced {
        n.addr.to_string()
    } else {
        format!("{} (announced {})", n.addr, n.announced)
    }
}

/// The status as a table for people.
pub fn table(s: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "service `{}`: master {}, {} replica(s), {} sentinel(s), as sentinel {} sees it",
        s.service,
        s.master.addr,
        s.replicas.len(),
        s.sentinels.len() + 1,
        s.source
    );
    let _ = writeln!(
        out,
        "quorum: {}{}",
        if s.quorum.reachable {
            ""
        } else {
            "NOT REACHABLE: "
        },
        s.quorum.message
    );
    let mut rows: Vec<[String; 4]> = vec![[
        "ROLE".into(),
        "ADDRESS".into(),
        "FLAGS".into(),
        "DETAILS".into(),
    ]];
    let flags = |n: &NodeStatus| n.flags.join(",");
    rows.push([
        "master".into(),
        address(&s.master),
        flags(&s.master),
        details(
            &s.master,
            &[
                ("config-epoch", "config-epoch"),
                ("quorum", "quorum"),
                ("down-after-milliseconds", "down-after"),
                ("num-other-sentinels", "other sentinels"),
            ],
        ),
    ]);
    for r in &s.replicas {
        rows.push([
            "replica".into(),
            address(r),
            flags(r),
            details(
                r,
                &[
                    ("master-link-status", "link"),
                    ("slave-repl-offset", "offset"),
                    ("slave-priority", "priority"),
                ],
            ),
        ]);
    }
    rows.push([
        "sentinel".into(),
        s.source.to_string(),
        "(answered)".into(),
        String::new(),
    ]);
    for n in &s.sentinels {
        rows.push([
            "sentinel".into(),
            address(n),
            flags(n),
            details(n, &[("last-ok-ping-reply", "last ok ping")]),
        ]);
    }
    let width = |i: usize| rows.iter().map(|r| r[i].len()).max().unwrap_or(0);
    let (w0, w1, w2) = (width(0), width(1), width(2));
    out.push('\n');
    for r in &rows {
        let line = format!("{:<w0$}  {:<w1$}  {:<w2$}  {}", r[0], r[1], r[2], r[3]);
        let _ = writeln!(out, "{}", line.trim_end());
    }
    for (a, e) in &s.unreachable {
        let _ = writeln!(out, "\nsentinel {a} did not answer: {e}");
    }
    let _ = writeln!(
        out,
        "\nhealthy: {}",
        if healthy(s) {
            "yes"
        } else {
            "no (a node flagged down or disconnected, no quorum, or a sentinel not answering)"
        }
    );
    out
}
