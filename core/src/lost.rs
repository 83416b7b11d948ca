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

use crate::action::{Action, OpId};
use crate::addr::Addr;
use crate::event::{Event, LostCommand};
use crate::input::IoError;
use crate::machine::Core;
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

    /// A switch leaves `old` for `new`: the writes to pause on `old` when it was alive at the
    /// fence (dead, or frozen past `query_timeout`, nobody writes to it), and whether `new`
    /// is one this process paused and must unpause first (a failover back to it).
    pub(crate) fn deposing(
        &mut self,
        old: Option<&Addr>,
        new: &Addr,
        pause: Option<Duration>,
        query_timeout: Duration,
        now: Instant,
    ) -> (Option<Action>, Option<Action>) {
        self.paused.retain(|_, until| *until > now);
        let unpause = self
            .paused
            .remove(new)
            .map(|_| Action::UnpauseWrites { node: new.clone() });
        let alive = |o: &Addr| match self.fence_answer(o) {
            FenceAnswer::Master => true,
            FenceAnswer::Pending(sent) => after(sent, query_timeout) > now,
            FenceAnswer::Other => false,
        };
        let pause = match (old.filter(|o| *o != new && alive(o)), pause) {
            (Some(old), Some(duration)) => {
                self.paused.insert(old.clone(), after(now, duration));
                Some(Action::PauseWrites {
                    node: old.clone(),
                    duration,
                })
            }
            _ => None,
        };
        (pause, unpause)
    }

    /// The offset last reported by `node`, if it was the last master to report one.
    fn last_of(&self, node: &Addr) -> Option<u64> {
        self.last
            .as_ref()
            .filter(|(a, _)| a == node)
            .map(|(_, o)| *o)
    }
}

impl Core {
    /// The fence asks the master in use its offset (`ROLE`): if it dies before the switch
    /// completes, that is the last one known.
    pub(crate) fn probe_fenced_master(&mut self, master: Addr, now: Instant) {
        let op = self.op();
        self.lost.fence_probe = Some((op, master.clone(), now));
        self.lost.answered = None;
        self.push_action(Action::PollRole { op, node: master });
    }

    /// The master in use moved from `old` to `new`: ask both how far their histories went.
    pub(crate) fn check_lost_writes(&mut self, old: Addr, new: Addr, now: Instant) {
        let limit = self.cfg.connect_timeout.saturating_mul(2);
        self.timers.set(TimerReason::LostWrites, after(now, limit));
        let (info, role) = (self.op(), self.op());
        self.push_action(Action::QueryReplication {
            op: info,
            node: new.clone(),
        });
        self.push_action(Action::PollRole {
            op: role,
            node: old.clone(),
        });
        self.lost.check = Some(Check {
            old,
            new,
            info: (info, None),
            role: (role, None),
            read: None,
        });
    }

    /// A node's answer that belongs to the lost-write check, if it does: returns whether it
    /// did.
    pub(crate) fn lost_writes_reply(
        &mut self,
        op: OpId,
        reply: Option<&Reply>,
        now: Instant,
    ) -> bool {
        if self
            .lost
            .fence_probe
            .as_ref()
            .is_some_and(|(p, _, _)| *p == op)
        {
            if let (Some((_, node, _)), Some(offset)) =
                (self.lost.fence_probe.take(), reply.and_then(master_offset))
            {
                self.lost.observed(&node, offset);
                self.lost.answered = Some(node);
            }
            return true;
        }
        let Some(check) = self.lost.check.as_mut() else {
            return false;
        };
        if check.info.0 == op {
            check.info.1 = Some(reply.and_then(parse_replication));
        } else if check.role.0 == op {
            let offset = reply.and_then(master_offset);
            check.role.1 = Some(offset);
            if let Some(offset) = offset {
                let old = check.old.clone();
                self.lost.observed(&old, offset);
            }
        } else {
            return false;
        }
        self.decide_lost_writes(now);
        true
    }

    /// The check took too long: what did not answer counts as failed (a frozen node), and a
    /// read still running is reported without its commands.
    pub(crate) fn lost_writes_timed_out(&mut self, now: Instant) {
        let Some(check) = self.lost.check.as_mut() else {
            return;
        };
        if let Some((_, range)) = check.read.take() {
            let (old, new) = (check.old.clone(), check.new.clone());
            self.lost.check = None;
            let why = "the old master's backlog was not read in time".to_owned();
            return self.report_lost_writes(old, new, &range, Err(why), now);
        }
        check.info.1.get_or_insert(None);
        check.role.1.get_or_insert(None);
        self.decide_lost_writes(now);
    }

    /// Both answers are in: nothing lost, a loss read back from the old master, or a loss
    /// reported without its commands (why in `unread`).
    fn decide_lost_writes(&mut self, now: Instant) {
        let answered = self
            .lost
            .check
            .as_ref()
            .is_some_and(|c| c.info.1.is_some() && c.role.1.is_some() && c.read.is_none());
        if !answered {
            return;
        }
        let Some(check) = self.lost.check.take() else {
            return;
        };
        let (Some(info), Some(said)) = (check.info.1.clone(), check.role.1) else {
            return;
        };
        // Where the new master left the old history, and how far the old master went:
        // nothing to compare (not promoted from that history, nothing known of the old
        // master), or the new master has everything the old one acknowledged.
        let previous = info.as_ref().and_then(Replication::previous);
        let to = said.or_else(|| self.lost.last_of(&check.old));
        let (Some((replid, from)), Some(to)) = (previous, to) else {
            self.emit(Event::NothingLost {
                old: check.old.clone(),
                new: check.new.clone(),
                old_offset: to,
                new_offset: previous.map(|(_, from)| from - 1),
            });
            return self.lost_check_done(&check.old, None, now);
        };
        if to < from {
            self.emit(Event::NothingLost {
                old: check.old.clone(),
                new: check.new.clone(),
                old_offset: Some(to),
                new_offset: Some(from - 1),
            });
            return self.lost_check_done(&check.old, None, now);
        }
        let range = Range {
            replid: replid.to_owned(),
            from,
            to,
        };
        let unread = if said.is_none() {
            "the old master no longer answers as a master (down, or reconfigured as a replica)"
        } else if range.bytes() > MAX_LOST_BYTES {
            "more than 64 MiB: not read back"
        } else {
            let op = self.op();
            let limit = self.cfg.connect_timeout + READ_TIME;
            self.timers.set(TimerReason::LostWrites, after(now, limit));
            self.push_action(Action::ReadBacklog {
                op,
                node: check.old.clone(),
                replid: range.replid.clone(),
                offset: range.from,
                bytes: range.bytes(),
            });
            self.lost.check = Some(Check {
                read: Some((op, range)),
                ..check
            });
            return;
        };
        self.report_lost_writes(check.old, check.new, &range, Err(unread.to_owned()), now);
    }

    /// The backlog read `op` answered: the bytes it streamed, or why it could not.
    pub(crate) fn backlog_read(
        &mut self,
        op: OpId,
        result: Result<Vec<u8>, IoError>,
        now: Instant,
    ) {
        let Some(check) = self
            .lost
            .check
            .take_if(|c| c.read.as_ref().is_some_and(|r| r.0 == op))
        else {
            return;
        };
        self.timers.cancel(TimerReason::LostWrites);
        let Some((_, range)) = check.read else {
            return;
        };
        let commands = result
            .map_err(|e| format!("the old master's backlog could not be read: {e}"))
            .and_then(|bytes| {
                parse_stream(&bytes).map_err(|e| format!("unreadable replication stream: {e}"))
            });
        if commands.as_ref().is_ok_and(Vec::is_empty) {
            // Only the stream's own traffic (pings, Sentinel's hellos): no write of anyone's.
            self.emit(Event::NothingLost {
                old: check.old.clone(),
                new: check.new,
                old_offset: Some(range.to),
                new_offset: Some(range.from - 1),
            });
            return self.lost_check_done(&check.old, None, now);
        }
        self.report_lost_writes(check.old, check.new, &range, commands, now);
    }

    fn report_lost_writes(
        &mut self,
        old: Addr,
        new: Addr,
        range: &Range,
        commands: Result<Vec<LostCommand>, String>,
        now: Instant,
    ) {
        self.timers.cancel(TimerReason::LostWrites);
        let (commands, unread) = match commands {
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(e)),
        };
        self.emit(Event::WritesLost {
            old: old.clone(),
            new,
            old_offset: range.to,
            new_offset: range.from - 1,
            bytes: range.bytes(),
            commands: commands.clone(),
            unread,
        });
        self.lost_check_done(&old, commands.as_deref(), now);
    }
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
