//! Lost writes, proven and handed back. Redis replicates asynchronously: a replica promoted
//! behind its master lacks the writes in between, and a master the fence reached late went on
//! acknowledging writes after the promotion. After every switch the core compares the two
//! replication histories (`INFO replication` of the new master: the offset where it left the
//! old master's history, `second_repl_offset`; `ROLE` of the old master: how far that history
//! went) and, when the old master went further and still holds that history, reads exactly
//! the missing bytes from its replication backlog (`PSYNC <replid> <offset>` answers
//! `+CONTINUE` and streams them) and hands the commands back with [`Event::WritesLost`]. It
//! never re-applies them: what is safe to replay is the application's decision.
//!
//! Nothing is reported that did not happen: the old master's offset is one it reported, the
//! new master's `second_repl_offset` is where its own history began.

use crate::action::Action;
use crate::addr::Addr;
use crate::context::Context;
use crate::event::{Event, LostCommand};
use crate::input::IoError;
use crate::op::{OpId, Ops, Pending};
use crate::parse::{Replication, master_offset, parse_replication};
use crate::reply::Reply;
use crate::timers::{TimerReason, after};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long reading the bytes of a backlog may take, after the connection's own timeout.
const READ_TIME: Duration = Duration::from_secs(10);

/// The most bytes of lost writes read back from an old master's backlog (64 MiB): a larger loss
/// is reported without its commands (Redis's own `repl-backlog-size` is 1 MiB by default).
pub const MAX_LOST_BYTES: u64 = 64 << 20;

/// What the core knows of replication offsets, and the check after a switch.
#[derive(Debug, Default)]
pub(crate) struct LostWrites {
    /// The offset a master last reported in a `ROLE` reply, with its address.
    last: Option<(Addr, u64)>,
    /// The `ROLE` poll of the master in use sent at the fence, and when, if not answered yet.
    fence_probe: Option<(OpId, Addr, Instant)>,
    /// The master that answered the fence's poll as a master (it was alive then).
    answered: Option<Addr>,
    /// The check of the last switch, until it reported.
    check: Option<Check>,
    /// Deposed masters this process paused writes on, until when.
    paused: BTreeMap<Addr, Instant>,
}

/// What the master fenced answered to the fence's poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FenceAnswer {
    /// It said master: it was alive.
    Master,
    /// No answer yet to the poll sent then.
    Pending(Instant),
    /// It failed (down), or said something else.
    Other,
}

/// The check after a switch from `old` to `new`.
#[derive(Debug)]
struct Check {
    old: Addr,
    new: Addr,
    /// `INFO replication` of the new master, and its answer.
    info: (OpId, Option<Option<Replication>>),
    /// `ROLE` of the old master, and its offset if it still said master.
    role: (OpId, Option<Option<u64>>),
    /// The backlog read in flight: its op, and the range it reads.
    read: Option<(OpId, Range)>,
}

/// A range of the old master's replication stream the new master lacks.
#[derive(Debug, Clone)]
struct Range {
    replid: String,
    /// The first byte the new master lacks (its `second_repl_offset`).
    from: u64,
    /// The old master's offset: the last byte it wrote.
    to: u64,
}

impl Check {
    /// The check is over: none of its answers is waited for any more.
    fn finish(&self, ops: &mut Ops) {
        ops.finish(self.info.0);
        ops.finish(self.role.0);
        if let Some((op, _)) = &self.read {
            ops.finish(*op);
        }
    }
}

impl Range {
    fn bytes(&self) -> u64 {
        self.to + 1 - self.from
    }
}

impl LostWrites {
    /// `node` reported `offset` as master.
    pub(crate) fn observed(&mut self, node: &Addr, offset: u64) {
        self.last = Some((node.clone(), offset));
    }

    /// What `node`, the master fenced, said to the fence's poll: whether it answered as a
    /// master, or when the poll still waiting for its answer was sent.
    pub(crate) fn fence_answer(&self, node: &Addr) -> FenceAnswer {
        match &self.fence_probe {
            Some((_, n, sent)) if n == node => FenceAnswer::Pending(*sent),
            _ if self.answered.as_ref() == Some(node) => FenceAnswer::Master,
            _ => FenceAnswer::Other,
        }
    }

    /// A switch leaves `old` for `new`: writes are paused on `old` when it was alive at the
    /// fence (dead, or frozen past `query_timeout`, nobody writes to it), and `new`, when this
    /// process paused it, is unpaused first (a failover back to it).
    pub(crate) fn deposing(
        &mut self,
        old: Option<&Addr>,
        new: &Addr,
        now: Instant,
        cx: &mut Context,
    ) {
        self.paused.retain(|_, until| *until > now);
        let unpause = self.paused.remove(new).is_some();
        let alive = |o: &Addr| match self.fence_answer(o) {
            FenceAnswer::Master => true,
            FenceAnswer::Pending(sent) => after(sent, cx.cfg.query_timeout) > now,
            FenceAnswer::Other => false,
        };
        if let (Some(old), Some(duration)) =
            (old.filter(|o| *o != new && alive(o)), cx.cfg.deposed_pause)
        {
            self.paused.insert(old.clone(), after(now, duration));
            cx.act(Action::PauseWrites {
                node: old.clone(),
                duration,
            });
        }
        if unpause {
            cx.act(Action::UnpauseWrites { node: new.clone() });
        }
    }

    /// The offset last reported by `node`, if it was the last master to report one.
    fn last_of(&self, node: &Addr) -> Option<u64> {
        self.last
            .as_ref()
            .filter(|(a, _)| a == node)
            .map(|(_, o)| *o)
    }
}

/// The lost-write check is over: `old` is the master it was about, `commands` what it read
/// back from it, if anything.
#[derive(Debug)]
pub(crate) struct Checked {
    pub(crate) old: Addr,
    pub(crate) commands: Option<Vec<LostCommand>>,
}

impl LostWrites {
    /// The fence asks the master in use its offset (`ROLE`): if it dies before the switch
    /// completes, that is the last one known.
    pub(crate) fn probe_fenced(&mut self, master: Addr, now: Instant, cx: &mut Context) {
        if let Some((old, ..)) = self.fence_probe.take() {
            cx.ops.finish(old);
        }
        let op = cx.start(Pending::FenceProbe);
        self.fence_probe = Some((op, master.clone(), now));
        self.answered = None;
        cx.act(Action::PollRole { op, node: master });
    }

    /// The master fenced answered the fence's poll.
    pub(crate) fn fence_reply(&mut self, reply: Option<&Reply>) {
        if let (Some((_, node, _)), Some(offset)) =
            (self.fence_probe.take(), reply.and_then(master_offset))
        {
            self.observed(&node, offset);
            self.answered = Some(node);
        }
    }

    /// The master in use moved from `old` to `new`: ask both how far their histories went.
    pub(crate) fn check(&mut self, old: Addr, new: Addr, now: Instant, cx: &mut Context) {
        let limit = cx.cfg.connect_timeout.saturating_mul(2);
        cx.timers.set(TimerReason::LostWrites, after(now, limit));
        if let Some(earlier) = self.check.take() {
            earlier.finish(&mut cx.ops);
        }
        let info = cx.start(Pending::LostInfo);
        let role = cx.start(Pending::LostRole);
        cx.act(Action::QueryReplication {
            op: info,
            node: new.clone(),
        });
        cx.act(Action::PollRole {
            op: role,
            node: old.clone(),
        });
        self.check = Some(Check {
            old,
            new,
            info: (info, None),
            role: (role, None),
            read: None,
        });
    }

    /// The new master's `INFO replication`, for the check.
    pub(crate) fn info_reply(
        &mut self,
        reply: Option<&Reply>,
        now: Instant,
        cx: &mut Context,
    ) -> Option<Checked> {
        self.check.as_mut()?.info.1 = Some(reply.and_then(parse_replication));
        self.decide(now, cx)
    }

    /// The old master's `ROLE`, for the check.
    pub(crate) fn role_reply(
        &mut self,
        reply: Option<&Reply>,
        now: Instant,
        cx: &mut Context,
    ) -> Option<Checked> {
        let check = self.check.as_mut()?;
        let offset = reply.and_then(master_offset);
        check.role.1 = Some(offset);
        if let Some(offset) = offset {
            let old = check.old.clone();
            self.observed(&old, offset);
        }
        self.decide(now, cx)
    }

    /// The check took too long: what did not answer counts as failed (a frozen node), and a
    /// read still running is reported without its commands.
    pub(crate) fn timed_out(&mut self, now: Instant, cx: &mut Context) -> Option<Checked> {
        let check = self.check.as_mut()?;
        if let Some((op, range)) = check.read.take() {
            cx.ops.finish(op);
            let (old, new) = (check.old.clone(), check.new.clone());
            self.check = None;
            let why = "the old master's backlog was not read in time".to_owned();
            return Some(report(old, new, &range, Err(why), cx));
        }
        check.info.1.get_or_insert(None);
        check.role.1.get_or_insert(None);
        self.decide(now, cx)
    }

    /// Both answers are in: nothing lost, a loss read back from the old master, or a loss
    /// reported without its commands (why in `unread`).
    fn decide(&mut self, now: Instant, cx: &mut Context) -> Option<Checked> {
        let check = self
            .check
            .take_if(|c| c.info.1.is_some() && c.role.1.is_some() && c.read.is_none())?;
        // Answers that did not come in time are no longer waited for.
        check.finish(&mut cx.ops);
        let (Some(info), Some(said)) = (check.info.1.clone(), check.role.1) else {
            return None;
        };
        // Where the new master left the old history, and how far the old master went:
        // nothing to compare (not promoted from that history, nothing known of the old
        // master), or the new master has everything the old one acknowledged.
        let previous = info.as_ref().and_then(Replication::previous);
        let to = said.or_else(|| self.last_of(&check.old));
        let range = match (previous, to) {
            (Some((replid, from)), Some(to)) if to >= from => Range {
                replid: replid.to_owned(),
                from,
                to,
            },
            _ => {
                let offsets = (to, previous.map(|(_, from)| from - 1));
                return Some(nothing_lost(check.old, check.new, offsets, cx));
            }
        };
        let unread = if said.is_none() {
            "the old master no longer answers as a master (down, or reconfigured as a replica)"
        } else if range.bytes() > MAX_LOST_BYTES {
            "more than 64 MiB: not read back"
        } else {
            let op = cx.start(Pending::BacklogRead);
            let limit = cx.cfg.connect_timeout + READ_TIME;
            cx.timers.set(TimerReason::LostWrites, after(now, limit));
            cx.act(Action::ReadBacklog {
                op,
                node: check.old.clone(),
                replid: range.replid.clone(),
                offset: range.from,
                bytes: range.bytes(),
            });
            self.check = Some(Check {
                read: Some((op, range)),
                ..check
            });
            return None;
        };
        Some(report(
            check.old,
            check.new,
            &range,
            Err(unread.to_owned()),
            cx,
        ))
    }

    /// The backlog read answered: the bytes it streamed, or why it could not.
    pub(crate) fn backlog_read(
        &mut self,
        result: Result<Vec<u8>, IoError>,
        cx: &mut Context,
    ) -> Option<Checked> {
        let check = self.check.take_if(|c| c.read.is_some())?;
        cx.timers.cancel(TimerReason::LostWrites);
        let (_, range) = check.read?;
        let commands = result
            .map_err(|e| format!("the old master's backlog could not be read: {e}"))
            .and_then(|bytes| {
                parse_stream(&bytes).map_err(|e| format!("unreadable replication stream: {e}"))
            });
        if commands.as_ref().is_ok_and(Vec::is_empty) {
            // Only the stream's own traffic (pings, Sentinel's hellos): no write of anyone's.
            let offsets = (Some(range.to), Some(range.from - 1));
            return Some(nothing_lost(check.old, check.new, offsets, cx));
        }
        Some(report(check.old, check.new, &range, commands, cx))
    }
}

/// Reports that the switch from `old` to `new` lost no write (`offsets`: the old master's
/// and where the new one left its history, when known).
fn nothing_lost(
    old: Addr,
    new: Addr,
    (old_offset, new_offset): (Option<u64>, Option<u64>),
    cx: &mut Context,
) -> Checked {
    cx.emit(Event::NothingLost {
        old: old.clone(),
        new,
        old_offset,
        new_offset,
    });
    Checked {
        old,
        commands: None,
    }
}

/// Reports the writes lost between `old` and `new` (the commands read back, or why not).
fn report(
    old: Addr,
    new: Addr,
    range: &Range,
    commands: Result<Vec<LostCommand>, String>,
    cx: &mut Context,
) -> Checked {
    cx.timers.cancel(TimerReason::LostWrites);
    let (commands, unread) = match commands {
        Ok(c) => (Some(c), None),
        Err(e) => (None, Some(e)),
    };
    cx.emit(Event::WritesLost {
        old: old.clone(),
        new,
        old_offset: range.to,
        new_offset: range.from - 1,
        bytes: range.bytes(),
        commands: commands.clone(),
        unread,
    });
    Checked { old, commands }
}

/// The channel of Sentinel's hello messages.
const SENTINEL_HELLO: &[u8] = b"__sentinel__:hello";

/// Reads the commands of a replication stream (RESP multi-bulk arrays): `SELECT` sets the
/// database of the commands after it (unknown before the first), `PING` and `REPLCONF` (the
/// stream's own traffic) and Sentinel's hello messages (`PUBLISH __sentinel__:hello`, sent to
/// every monitored instance every two seconds and propagated like any `PUBLISH`) are left
/// out, everything else is kept as sent, `MULTI` and `EXEC` included. Anything else than
/// complete arrays of bulk strings is an error.
pub(crate) fn parse_stream(mut bytes: &[u8]) -> Result<Vec<LostCommand>, String> {
    let mut db = None;
    let mut commands = Vec::new();
    while !bytes.is_empty() {
        let (args, rest) = command(bytes)?;
        bytes = rest;
        let name = args
            .first()
            .map(|a| a.to_ascii_uppercase())
            .unwrap_or_default();
        match name.as_slice() {
            b"PING" | b"REPLCONF" => {}
            b"PUBLISH" if args.get(1).is_some_and(|c| c == SENTINEL_HELLO) => {}
            b"SELECT" => {
                db = args
                    .get(1)
                    .and_then(|d| std::str::from_utf8(d).ok())
                    .and_then(|d| d.parse().ok());
            }
            _ => commands.push(LostCommand { db, args }),
        }
    }
    Ok(commands)
}

/// One `*<n>\r\n($<len>\r\n<bytes>\r\n){n}` array; the rest of the input.
fn command(input: &[u8]) -> Result<(Vec<Vec<u8>>, &[u8]), String> {
    let (n, mut rest) = header(input, b'*')?;
    let mut args = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let (len, after) = header(rest, b'$')?;
        let end = len
            .checked_add(2)
            .filter(|&e| e <= after.len())
            .ok_or("a bulk string is cut short")?;
        if &after[len..end] != b"\r\n" {
            return Err("a bulk string does not end with CRLF".into());
        }
        args.push(after[..len].to_vec());
        rest = &after[end..];
    }
    Ok((args, rest))
}

/// `<marker><number>\r\n`; the number and the rest.
fn header(input: &[u8], marker: u8) -> Result<(usize, &[u8]), String> {
    if input.first() != Some(&marker) {
        return Err(format!("expected `{}`", char::from(marker)));
    }
    let line_end = input
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or("a header line is cut short")?;
    let n = std::str::from_utf8(&input[1..line_end])
        .ok()
        .and_then(|t| t.parse::<usize>().ok())
        .ok_or("a header is not a length")?;
    Ok((n, &input[line_end + 2..]))
}

/// Encodes a command as the replication stream carries it (for tests and the simulator).
#[cfg(any(test, feature = "sim"))]
pub(crate) fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_commands_with_their_database() {
        let mut stream = encode(&[b"RPUSH", b"q", b"1"]);
        stream.extend(encode(&[b"SELECT", b"3"]));
        stream.extend(encode(&[b"PING"]));
        stream.extend(encode(&[b"MULTI"]));
        stream.extend(encode(&[b"HSET", b"h", b"k", b"v\r\nwith CRLF"]));
        stream.extend(encode(&[b"EXEC"]));
        stream.extend(encode(&[b"REPLCONF", b"GETACK", b"*"]));
        stream.extend(encode(&[
            b"PUBLISH",
            b"__sentinel__:hello",
            b"127.0.0.1,26379,...",
        ]));
        stream.extend(encode(&[b"PUBLISH", b"news", b"kept"]));
        let c = parse_stream(&stream).expect("valid");
        let shown: Vec<(Option<u32>, Vec<&[u8]>)> = c
            .iter()
            .map(|c| (c.db, c.args.iter().map(Vec::as_slice).collect()))
            .collect();
        assert_eq!(
            shown,
            vec![
                (None, vec![&b"RPUSH"[..], b"q", b"1"]),
                (Some(3), vec![&b"MULTI"[..]]),
                (Some(3), vec![&b"HSET"[..], b"h", b"k", b"v\r\nwith CRLF"]),
                (Some(3), vec![&b"EXEC"[..]]),
                (Some(3), vec![&b"PUBLISH"[..], b"news", b"kept"]),
            ]
        );
        assert!(parse_stream(b"*1\r\n$4\r\nPIN").is_err());
        assert!(parse_stream(b"+OK\r\n").is_err());
        assert!(parse_stream(b"*1\r\n$99999999999999999999\r\n").is_err());
        assert_eq!(parse_stream(b""), Ok(vec![]));
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_stream(&bytes);
        }

        #[test]
        fn encoded_commands_read_back(
            commands in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 1..5),
                0..8,
            )
        ) {
            let stream: Vec<u8> = commands
                .iter()
                .flat_map(|c| encode(&c.iter().map(Vec::as_slice).collect::<Vec<_>>()))
                .collect();
            let read = parse_stream(&stream).expect("valid");
            let kept: Vec<&Vec<Vec<u8>>> = commands
                .iter()
                .filter(|c| {
                    let name = c[0].to_ascii_uppercase();
                    !matches!(name.as_slice(), b"PING" | b"REPLCONF" | b"SELECT")
                })
                .collect();
            prop_assert_eq!(read.len(), kept.len());
            for (r, k) in read.iter().zip(kept) {
                prop_assert_eq!(&r.args, k);
            }
        }
    }
}
