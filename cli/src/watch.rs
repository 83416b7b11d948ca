//! `dramatiq-sentinel watch`: a live timeline of every sentinel's events for one service.
//!
//! One pub/sub connection per sentinel (the configured ones, those the first status names, and
//! those the core learns later), subscribed to every channel like the supervisor's listeners
//! ([`subscribe_sentinel`]). Each message about the service (or about no service, such as an
//! epoch) is decoded with the core's parser ([`decode_message`]) and explained: what it means
//! and what the core does on it. Alongside, unless `--no-core`, a supervisor with no workers
//! runs on the same configuration: its core's decisions (fence, candidate, switch, resume, ...)
//! are printed as `core` lines. That supervisor asks the sentinels and sends `ROLE` to data
//! nodes; it writes nothing, and there are no workers to pause. Ctrl-C or SIGTERM ends it.

use crate::error::CliError;
use crate::events::describe;
use crate::exit;
use crate::output::Out;
use crate::target::{PASSWORD_ENV, Target};
use dramatiq_sentinel_supervisor::core_api::{FailoverSignal, SentinelMessage, decode_message};
use dramatiq_sentinel_supervisor::{
    Addr, Config, Event, StartError, Status, read_status, subscribe_sentinel,
};
use dramatiq_sentinel_tokio::{Builder, Supervisor, Tokio};
use futures_lite::StreamExt;
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// The command line of `dramatiq-sentinel watch`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    about = "A live timeline of every sentinel's events for one service, each decoded and \
             explained, with the decisions of a core that has no workers; reads only, never \
             touches workers or data; Ctrl-C ends it",
    long_about = "A live timeline of every sentinel's events for one service. It subscribes to \
                  every sentinel (the ones given, and the others they know), decodes each \
                  message about the service with the core's parser and says what it means and \
                  what the core does on it. Alongside, a core with no workers follows the same \
                  sentinels (a supervisor without workers: it asks the sentinels and sends ROLE \
                  to the data nodes, writes nothing) and its decisions are printed as `core` \
                  lines. It never touches workers or data. Ctrl-C or SIGTERM ends it (exit 0).",
    override_usage = "dramatiq-sentinel watch --sentinel HOST:PORT [--sentinel ...] --service NAME [OPTIONS]",
    after_help = exit::TABLE
)]
pub struct WatchArgs {
    /// JSON lines instead of text: `status` first, then `listener`, `message` (sentinel,
    /// channel, payload, kind, meaning and the decoded fields) and `event` (the core's) lines,
    /// `stop` last
    #[arg(long, help_heading = "Output")]
    pub json: bool,
    /// Also print routine core events (confirmations, duplicates)
    #[arg(long, help_heading = "Output")]
    pub verbose: bool,
    /// No core: only the sentinels' messages, explained by their kind (no connection to any
    /// data node; the data credentials are unused)
    #[arg(long, help_heading = "Output")]
    pub no_core: bool,
    /// The deployment and the supervisor settings.
    #[command(flatten)]
    pub target: Target,
}

/// Why the watch ends.
#[derive(Debug)]
enum Stop {
    /// Ctrl-C or SIGTERM.
    Signal,
    /// The core's supervisor could not start.
    Start(StartError),
    /// The core's supervisor stopped by itself.
    Stopped(String),
}

/// What the listener tasks share.
struct Watch {
    config: Config,
    service: String,
    out: Out,
    /// Sentinels with a listener.
    listening: Mutex<HashSet<Addr>>,
}

/// Runs `watch`; the exit status.
pub fn run(args: &WatchArgs) -> Result<u8, CliError> {
    args.target.require_deployment()?;
    // The core's supervisor has no workers: it never waits for them, and it must not end the
    // process. It waits for a master as long as it takes (the deployment may be failing). An
    // observer writes nothing: it never pauses a deposed master's writes, whatever the
    // command line says.
    let config = args
        .target
        .builder(
            &[("on_pause_timeout", "fail"), ("startup_timeout", "off")],
            PASSWORD_ENV,
        )?
        .deposed_pause(None)
        .build()?;
    let out = Out::new(args.json, args.verbose);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    let (stop_tx, stop_rx) = channel();
    {
        let tx = stop_tx.clone();
        ctrlc::set_handler(move || {
            let _ = tx.send(Stop::Signal);
        })?;
    }

    let status = rt
        .block_on(async { read_status(&Tokio::current(), &config).await })
        .map_err(|e| CliError::from_status(config.service_name(), e))?;
    print_status(&out, &status);
    let watch = Arc::new(Watch {
        service: config.service_name().to_owned(),
        config: config.clone(),
        out: out.clone(),
        listening: Mutex::new(HashSet::new()),
    });
    let sentinels = config
        .sentinels()
        .iter()
        .cloned()
        .chain(std::iter::once(status.source.clone()))
        .chain(status.sentinels.iter().map(|s| s.addr.clone()));
    for sentinel in sentinels {
        listen(&rt, &watch, sentinel);
    }

    let supervisor: Arc<Mutex<Option<Supervisor>>> = Arc::default();
    if !args.no_core {
        start_core(&rt, &watch, config, &supervisor, stop_tx);
    }

    let stop = stop_rx.recv().unwrap_or(Stop::Signal);
    let (reason, code) = match &stop {
        Stop::Signal => ("interrupted (Ctrl-C or SIGTERM)".to_owned(), exit::OK),
        Stop::Start(e) => (
            format!("the core did not start: {e}"),
            crate::error::start_error_code(e),
        ),
        Stop::Stopped(e) => (format!("the core stopped: {e}"), exit::FAILED),
    };
    info!(%reason, "watch stopping");
    let running = crate::sync::lock(&supervisor).take();
    if let Some(sup) = running {
        let shutdown = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), sup.shutdown()).await
        });
        if !matches!(shutdown, Ok(Ok(()))) {
            warn!(?shutdown, "the core's supervisor did not shut down cleanly");
        }
    }
    out.now(
        "stop",
        &reason,
        json!({ "type": "stop", "reason": reason, "exit_code": code }),
    );
    rt.shutdown_timeout(Duration::from_secs(2));
    if code != exit::OK {
        eprintln!("dramatiq-sentinel watch: {reason}");
    }
    Ok(code)
}

/// The first line: the deployment as the first answering sentinel sees it.
fn print_status(out: &Out, s: &Status) {
    let unreachable: Vec<String> = s
        .unreachable
        .iter()
        .map(|(a, e)| format!("; sentinel {a} did not answer: {e}"))
        .collect();
    let text = format!(
        "`{}`: master {} ({}), {} replica(s), {} sentinel(s); {}{}",
        s.service,
        s.master.addr,
        s.master.flags.join(","),
        s.replicas.len(),
        s.sentinels.len() + 1,
        s.quorum.message,
        unreachable.concat()
    );
    let mut fields = Map::new();
    fields.insert("type".into(), "status".into());
    if let Value::Object(status) = crate::status::to_json(s) {
        fields.extend(status);
    }
    out.now("status", &text, Value::Object(fields));
}

/// Starts a listener for `sentinel` unless one runs.
fn listen(rt: &tokio::runtime::Runtime, watch: &Arc<Watch>, sentinel: Addr) {
    if !crate::sync::lock(&watch.listening).insert(sentinel.clone()) {
        return;
    }
    let watch = Arc::clone(watch);
    rt.spawn(async move { watch.listen(sentinel).await });
}

/// Starts the supervisor with no workers, printing its core's events; reports its end on
/// `stop`.
fn start_core(
    rt: &tokio::runtime::Runtime,
    watch: &Arc<Watch>,
    config: Config,
    slot: &Arc<Mutex<Option<Supervisor>>>,
    stop: Sender<Stop>,
) {
    let builder = Builder::new(Tokio::with_handle(rt.handle().clone()), config);
    let mut events = builder.subscribe();
    let printer = Arc::clone(watch);
    let handle = rt.handle().clone();
    rt.spawn(async move {
        while let Some(event) = events.recv().await {
            if let Event::SentinelAdded { sentinel } = &event {
                let (watch, sentinel) = (Arc::clone(&printer), sentinel.clone());
                if crate::sync::lock(&watch.listening).insert(sentinel.clone()) {
                    handle.spawn(async move { watch.listen(sentinel).await });
                }
            }
            printer.core(&event);
        }
    });
    let slot = Arc::clone(slot);
    rt.spawn(async move {
        match builder.start().await {
            Ok(sup) => {
                let watched = sup.clone();
                *crate::sync::lock(&slot) = Some(sup);
                let end = match watched.wait().await {
                    Ok(()) => return, // shut down by `run`
                    Err(e) => e.to_string(),
                };
                let _ = stop.send(Stop::Stopped(end));
            }
            Err(e) => {
                let _ = stop.send(Stop::Start(e));
            }
        }
    });
}

impl Watch {
    /// Prints one event of the core.
    fn core(&self, event: &Event) {
        let d = describe(event);
        if d.routine && !self.out.verbose() {
            return;
        }
        let mut json = d.json;
        if let Value::Object(o) = &mut json {
            o.insert("text".into(), Value::from(event.to_string()));
        }
        self.out.now(&format!("core {}", d.label), &d.text, json);
    }

    fn listener(&self, sentinel: &Addr, state: &str, text: &str, error: Option<&str>) {
        self.out.now(
            &sentinel.to_string(),
            text,
            json!({ "type": "listener", "sentinel": sentinel.to_string(), "state": state,
                    "error": error }),
        );
    }

    /// Subscribes to `sentinel` and prints its messages, reconnecting with a growing delay
    /// (`min_backoff`, times `backoff_factor` after each failure, up to `max_backoff`) when
    /// the connection fails or breaks.
    async fn listen(&self, sentinel: Addr) {
        let rt = Tokio::current();
        let (min, max) = (self.config.min_backoff(), self.config.max_backoff());
        let factor = self.config.backoff_factor();
        let mut delay = min;
        let mut last_failure: Option<String> = None;
        loop {
            match subscribe_sentinel(&rt, &self.config, &sentinel).await {
                Ok(pubsub) => {
                    info!(%sentinel, "watch: subscribed to the sentinel");
                    delay = min;
                    last_failure = None;
                    self.listener(
                        &sentinel,
                        "subscribed",
                        "subscribed to every event of this sentinel",
                        None,
                    );
                    let why = self.pump(&sentinel, pubsub).await;
                    warn!(%sentinel, %why, retry_in = ?delay, "watch: sentinel connection lost");
                    self.listener(
                        &sentinel,
                        "lost",
                        &format!(
                            "connection lost: {why}; reconnecting in {}",
                            crate::output::human(delay)
                        ),
                        Some(&why),
                    );
                }
                Err(e) => {
                    let why = e.to_string();
                    debug!(%sentinel, %why, retry_in = ?delay, "watch: cannot subscribe");
                    // A failure is printed once, until it changes or the sentinel answers.
                    if last_failure.as_deref() != Some(why.as_str()) {
                        self.listener(
                            &sentinel,
                            "failed",
                            &format!(
                                "cannot subscribe: {why}; retrying every {} at most",
                                crate::output::human(max)
                            ),
                            Some(&why),
                        );
                        last_failure = Some(why);
                    }
                }
            }
            tokio::time::sleep(delay).await;
            delay = delay.mul_f64(factor).min(max);
        }
    }

    /// Prints the messages of one subscription until it breaks; why it broke. After
    /// `health_check_interval` of silence the connection is pinged, and a ping unanswered
    /// within `query_timeout` ends it.
    async fn pump(
        &self,
        sentinel: &Addr,
        pubsub: dramatiq_sentinel_supervisor::redis::aio::PubSub,
    ) -> String {
        let (mut sink, mut stream) = pubsub.split();
        let (quiet, limit) = (
            self.config.health_check_interval(),
            self.config.query_timeout(),
        );
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(msg) => {
                        let channel: Vec<u8> = msg.get_channel().unwrap_or_default();
                        self.message(sentinel, &channel, msg.get_payload_bytes());
                    }
                    None => return "connection closed".to_owned(),
                },
                () = tokio::time::sleep(quiet) => {
                    let ping = sink.ping::<dramatiq_sentinel_supervisor::redis::Value>();
                    match tokio::time::timeout(limit, ping).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return format!("PING failed: {e}"),
                        Err(_) => {
                            return format!(
                                "no answer to PING within {}",
                                crate::output::human(limit)
                            );
                        }
                    }
                }
            }
        }
    }

    /// Prints one message of `sentinel`, unless it is about another service.
    fn message(&self, sentinel: &Addr, channel: &[u8], payload: &[u8]) {
        let channel = String::from_utf8_lossy(channel);
        let payload = String::from_utf8_lossy(payload);
        let Some(e) = explain(
            &self.service,
            &channel,
            &payload,
            self.config.early_fencing(),
        ) else {
            return;
        };
        let mut fields = json!({ "type": "message", "sentinel": sentinel.to_string(),
            "channel": channel, "payload": payload, "kind": e.kind, "meaning": e.meaning });
        if let (Value::Object(o), Value::Object(decoded)) = (&mut fields, e.decoded) {
            o.extend(decoded);
        }
        self.out.line(
            Instant::now(),
            &sentinel.to_string(),
            &format!("{channel} {payload} => {}", e.meaning),
            fields,
        );
    }
}

/// A message, explained.
#[derive(Debug, Clone, PartialEq)]
pub struct Explained {
    /// `switch-master`, `epoch`, `failover`, `candidate`, `abort`, `info` (a channel the core
    /// does not act on) or `malformed`.
    pub kind: &'static str,
    /// What it means and what the core does on it.
    pub meaning: String,
    /// The decoded fields (`service`, `master`, `replica`, `old`, `new`, `epoch`), as JSON.
    pub decoded: Value,
}

/// The master name a Sentinel `%@` payload is about: `master <name> <ip> <port> ...` or
/// `<type> <name> <ip> <port> @ <master-name> <master-ip> <master-port>`; `None` for payloads
/// about no service (`+tilt`, ...).
fn payload_service(payload: &str) -> Option<&str> {
    let tokens: Vec<&str> = payload.split_whitespace().collect();
    match tokens.as_slice() {
        ["master", name, ..] => Some(name),
        [_, _, _, _, "@", master, ..] => Some(master),
        _ => None,
    }
}

/// `<type> <ip>:<port>` of a `%@` payload, else the payload.
fn instance(payload: &str) -> String {
    let tokens: Vec<&str> = payload.split_whitespace().collect();
    match tokens.as_slice() {
        [kind, _, ip, port, ..] if port.parse::<u16>().is_ok() => format!("{kind} {ip}:{port}"),
        _ => payload.to_owned(),
    }
}

/// What a sentinel message of a channel the core does not act on means.
fn information(channel: &str, payload: &str) -> String {
    let who = instance(payload);
    let text = match channel {
        "+sdown" => format!("this sentinel sees {who} down (subjectively)"),
        "-sdown" => format!("this sentinel sees {who} up again"),
        "+reboot" => format!("{who} was restarted"),
        "+slave" | "+replica" => format!("{who} is known as a replica"),
        "+sentinel" => format!("{who} is known as a sentinel"),
        "-dup-sentinel" => format!("duplicate sentinel {who} removed"),
        "+convert-to-slave" => format!("{who} is being turned into a replica"),
        "+fix-slave-config" => format!("{who} is being pointed at the right master"),
        "+slave-reconf-sent" => format!("the leader sent REPLICAOF to {who}"),
        "+slave-reconf-inprog" => format!("{who} is syncing with the new master"),
        "+slave-reconf-done" => format!("{who} is in sync with the new master"),
        "+failover-end" => "the failover ended (every replica reconfigured or timed out)".into(),
        "+failover-detected" => format!("{who} turned master outside Sentinel's failover"),
        "+tilt" => "this sentinel entered TILT mode: it acts on nothing until -tilt".into(),
        "-tilt" => "this sentinel left TILT mode".into(),
        "+config-update-from" => format!("configuration updated from {who}"),
        "+role-change" | "-role-change" => format!("{who} reports another role"),
        "+monitor" | "-monitor" | "+set" | "+reset-master" => {
            format!("configuration change ({channel})")
        }
        _ => "a sentinel event".into(),
    };
    format!("{text}; the core does not act on it")
}

/// Explains one message of a sentinel for a watch of `service`; `None` when it is about
/// another service. `early_fencing` is the configuration's (whether the core acts on early
/// failover signals).
pub fn explain(
    service: &str,
    channel: &str,
    payload: &str,
    early_fencing: bool,
) -> Option<Explained> {
    let other = |s: &str| s != service;
    let early = |text: String| {
        if early_fencing {
            text
        } else {
            "the core waits for +switch-master (early fencing is off)".to_owned()
        }
    };
    let (kind, meaning, decoded) = match decode_message(channel.as_bytes(), payload.as_bytes()) {
        Ok(SentinelMessage::SwitchMaster {
            service: s,
            old,
            new,
        }) => {
            if other(&s) {
                return None;
            }
            (
                "switch-master",
                format!(
                    "the sentinels replaced {old} by {new}: the core verifies {new} (ROLE) and \
                     moves every connection to it, unless it is on it already"
                ),
                json!({ "service": s, "old": old.to_string(), "new": new.to_string() }),
            )
        }
        Ok(SentinelMessage::Epoch { epoch }) => (
            "epoch",
            format!(
                "this sentinel's epoch is now {epoch}: the core notes it, to tell this \
                 sentinel's later messages from old news"
            ),
            json!({ "epoch": epoch }),
        ),
        Ok(SentinelMessage::Failover {
            signal,
            service: s,
            master,
            replica,
            ..
        }) => {
            if other(&s) {
                return None;
            }
            let (kind, meaning) = match (signal, &replica) {
                (FailoverSignal::Candidate, Some(r)) => (
                    "candidate",
                    early(format!(
                        "{r} is being promoted: the core fences {master} unless it has already \
                         (no new job starts, writes are held), watches {r} and switches once \
                         its ROLE says master"
                    )),
                ),
                (FailoverSignal::Abort, _) => (
                    "abort",
                    format!(
                        "the failover of {master} stopped: the core lifts its fence if \
                         {master} is still the master"
                    ),
                ),
                _ => (
                    "failover",
                    early(format!(
                        "a failover of {master} is under way: the core fences it unless it has \
                         already (no new job starts, writes are held) and asks the sentinels \
                         for the new master"
                    )),
                ),
            };
            (
                kind,
                meaning,
                json!({ "service": s, "master": master.to_string(),
                        "replica": replica.map(|r| r.to_string()) }),
            )
        }
        Ok(SentinelMessage::Replicas {
            channel: c,
            service: s,
            master,
            replica,
        }) => {
            if other(&s) {
                return None;
            }
            // `+slave-reconf-done` names the failover's old master; the others the master the
            // replica follows now.
            let what = match c.as_str() {
                "+slave-reconf-done" => {
                    format!("{replica} follows the master that replaced {master} now")
                }
                "+convert-to-slave" | "+fix-slave-config" => {
                    format!("{replica} is being pointed at {master}")
                }
                _ => format!("{replica} is a replica of {master}"),
            };
            (
                "replicas",
                format!(
                    "{what}: the core asks the sentinels for the replicas again and keeps one \
                     idle connection to each (Sentinel closes a replica's connections when it \
                     promotes it)"
                ),
                json!({ "service": s, "master": master.to_string(),
                        "replica": replica.to_string() }),
            )
        }
        Ok(_) => {
            if payload_service(payload).is_some_and(other) {
                return None;
            }
            ("info", information(channel, payload), json!({}))
        }
        Err(e) => {
            if payload_service(payload).is_some_and(other) {
                return None;
            }
            (
                "malformed",
                format!("the core cannot read it ({e}) and ignores it"),
                json!({}),
            )
        }
    };
    Some(Explained {
        kind,
        meaning,
        decoded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_explained_by_kind() {
        let e = explain(
            "svc",
            "+switch-master",
            "svc 10.0.0.1 6379 10.0.0.2 6379",
            true,
        )
        .expect("ours");
        assert_eq!(e.kind, "switch-master");
        assert_eq!(e.decoded["new"], "10.0.0.2:6379");
        assert!(
            e.meaning
                .contains("replaced 10.0.0.1:6379 by 10.0.0.2:6379")
        );
        let e = explain("svc", "+try-failover", "master svc 10.0.0.1 6379", true).expect("ours");
        assert_eq!(e.kind, "failover");
        assert!(e.meaning.contains("fences"), "{}", e.meaning);
        let e = explain("svc", "+try-failover", "master svc 10.0.0.1 6379", false).expect("ours");
        assert!(e.meaning.contains("early fencing is off"), "{}", e.meaning);
        let e = explain(
            "svc",
            "+selected-slave",
            "slave 10.0.0.2:6379 10.0.0.2 6379 @ svc 10.0.0.1 6379",
            true,
        )
        .expect("ours");
        assert_eq!(e.kind, "candidate");
        assert_eq!(e.decoded["replica"], "10.0.0.2:6379");
        assert_eq!(
            explain("svc", "-odown", "master svc 10.0.0.1 6379", true).map(|e| e.kind),
            Some("abort")
        );
        assert_eq!(
            explain("svc", "+new-epoch", "12", true).map(|e| e.decoded),
            Some(json!({ "epoch": 12 }))
        );
        let e = explain("svc", "+sdown", "master svc 10.0.0.1 6379", true).expect("ours");
        assert_eq!(e.kind, "info");
        assert!(
            e.meaning
                .starts_with("this sentinel sees master 10.0.0.1:6379 down"),
            "{}",
            e.meaning
        );
        assert_eq!(
            explain("svc", "+tilt", "#tilt mode entered", true).map(|e| e.kind),
            Some("info")
        );
        assert_eq!(
            explain("svc", "+odown", "bogus", true).map(|e| e.kind),
            Some("malformed")
        );
    }

    #[test]
    fn other_services_are_left_out() {
        for (channel, payload) in [
            ("+switch-master", "other 10.0.0.1 6379 10.0.0.2 6379"),
            ("+odown", "master other 10.0.0.1 6379 #quorum 2/2"),
            (
                "+sdown",
                "slave 10.0.0.2:6379 10.0.0.2 6379 @ other 10.0.0.1 6379",
            ),
        ] {
            assert_eq!(explain("svc", channel, payload, true), None, "{channel}");
        }
    }
}
