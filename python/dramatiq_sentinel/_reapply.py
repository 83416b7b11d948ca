"""dramatiq's lost writes, re-applied idempotently on the new master.

dramatiq's `RedisBroker` runs every operation as one call of its `dispatch` script. Redis
replicates a script as the writes it made, inside `MULTI` / `EXEC`, so the commands read back
from the old master's backlog are those writes (this module reads them; it never runs or
copies dramatiq's script). With `<ns>` the broker's namespace, `<q>` a queue (`name` or
`name.DQ`), `<w>` a broker id and `<id>` a message's Redis id (a fresh uuid4 per enqueue, so
an id names one enqueue and nothing else):

| dramatiq operation | writes replicated |
|---|---|
| every call | `ZADD <ns>:__heartbeats__ <ms> <w>` |
| enqueue | `HSET <ns>:<q>.msgs <id> <body>`, `RPUSH <ns>:<q> <id>` |
| fetch | per message `LPOP <ns>:<q>`, `SADD <ns>:__acks__.<w>.<q> <id>` |
| ack | `SREM <ns>:__acks__.<w>.<q> <id>`, `HDEL <ns>:<q>.msgs <id>` |
| nack | `SREM ...`, `ZADD <ns>:<q>.XQ <ms> <id>`, `HSET <ns>:<q>.XQ.msgs <id> <body>`, `HDEL <ns>:<q>.msgs <id>` |
| requeue (worker shutdown) | `SREM <ns>:__acks__.<w>.<q> <id>`, `RPUSH <ns>:<q> <id>` |
| maintenance (a dead worker's messages) | `RPUSH <ns>:<q> <id>`..., `DEL <ns>:__acks__.<dead>.<q>`, `ZREM` of heartbeats and expired dead letters |

A lost `LPOP` does not name the id it popped; the `SADD` after it does. So the writes are read
per message id, and each id's *last place* in the lost stream is what is restored:

- in the queue (enqueued, or put back): the id is put in the queue if the new master has it
  nowhere (its body re-added from the stream when the new master lacks it); left alone if it
  is already in the queue or held by any worker;
- in worker `<w>`'s acknowledgement set (fetched, not yet acknowledged): the id is taken out of
  the queue (or out of an acknowledgement set the stream moved it from) and put in `<w>`'s set,
  so no other worker fetches it again while `<w>` runs it, and `<w>`'s acknowledgement (held,
  sent after the hand-back) completes it; its body is re-added when the enqueue was lost too;
- acknowledged (`HDEL` of its body): the id is taken out of the queue and of the sets the stream
  names, and its body deleted, so it does not come back when `<w>`'s heartbeat expires (dramatiq
  then requeues what is left in a dead worker's set: it would run twice);
- dead-lettered: moved to the dead-letter queue as the nack did;
- a heartbeat: the newest timestamp of each worker is kept (`ZADD` only when newer).

Each id is settled once, in one Lua script on the new master (atomic), guarded so that running
it again, or after the write had in fact reached the new master, changes nothing: an id is
only moved out of a place the stream says it was in, and a body the new master lacks is only
re-added once: every id settled is recorded in `<ns>:__sentinel_settled__` (a sorted set by
time, entries older than an hour pruned at each hand-back), so a second hand-back of the same
loss (every process of the deployment reads it) never brings back a message that ran and was
acknowledged meanwhile. What cannot be restored is logged at WARNING with the ids: a message
fetched by another worker on the new master meanwhile (it runs twice), an acknowledged message
another worker holds, commands outside dramatiq's keys, purges."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .lost import LostCommand

logger = logging.getLogger("dramatiq_sentinel")

#: How long an id stays in the settled set (ms): every hand-back of one failover happens
#: within seconds of it (before the sentinels turn the old master into a replica).
SETTLED_KEEP_MS = 3_600_000

#: The settle script (ours). ARGV: settled key, now (ms), keep (ms), then records:
#: heartbeats `H key worker ms`, and per id `I kind id msgs list target xmsgs body created
#: score n source1..sourceN`. Returns `{id, outcome}` pairs.
SETTLE = r"""
local settled, now, keep = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', settled, '-inf', now - keep)
local out = {}
local i = 4
while i <= #ARGV do
  if ARGV[i] == 'H' then
    local key, worker, ms = ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
    local cur = redis.call('ZSCORE', key, worker)
    if (not cur) or tonumber(cur) < ms then
      redis.call('ZADD', key, ms, worker)
    end
    i = i + 4
  else
    local kind, id, msgs, list, target, xmsgs, body, created, score =
      ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6],
      ARGV[i + 7], ARGV[i + 8] == '1', ARGV[i + 9]
    local n = tonumber(ARGV[i + 10])
    local sources = {}
    for j = 1, n do sources[j] = ARGV[i + 10 + j] end
    i = i + 11 + n
    local present = redis.call('HEXISTS', msgs, id) == 1
    local seen = redis.call('ZSCORE', settled, id) ~= false
    local has_body = body ~= ''
    -- Takes the id out of the places the stream says it was in (never out of `keep_set`).
    local function take(keep_set, from_list)
      local removed = 0
      for _, s in ipairs(sources) do
        if s ~= keep_set then removed = removed + redis.call('SREM', s, id) end
      end
      if from_list then removed = removed + redis.call('LREM', list, 0, id) end
      return removed
    end
    -- An id not in the hash: settled since, or stored again with `put` when the lost stream
    -- created it (its enqueue, with the body), else `otherwise`.
    local function restore(put, otherwise)
      if seen then return 'settled' end
      if created and has_body then
        redis.call('HSET', msgs, id, body)
        put()
        return 'applied'
      end
      return otherwise
    end
    local outcome
    if kind == 'acks' then
      if redis.call('SISMEMBER', target, id) == 1 then
        outcome = 'present'
      elseif present then
        if take(target, true) > 0 then
          redis.call('SADD', target, id)
          outcome = 'applied'
        else
          outcome = 'elsewhere'
        end
      else
        outcome = restore(function() redis.call('SADD', target, id) end, 'ran-elsewhere')
      end
    elseif kind == 'queue' then
      if present then
        if redis.call('LPOS', list, id) then
          outcome = 'present'
        elseif take(nil, false) > 0 then
          redis.call('RPUSH', list, id)
          outcome = 'applied'
        else
          outcome = 'held'
        end
      else
        outcome = restore(function() redis.call('RPUSH', list, id) end, 'gone')
      end
    elseif kind == 'gone' then
      if present then
        if take(nil, true) > 0 then
          redis.call('HDEL', msgs, id)
          outcome = 'applied'
        else
          outcome = 'elsewhere'
        end
      elseif seen or created then
        outcome = 'present'
      else
        -- It was on the new master at the promotion and is gone now: acknowledged there,
        -- so it ran there too.
        outcome = 'ran-elsewhere'
      end
    elseif kind == 'released' then
      if take(nil, false) > 0 then outcome = 'applied' else outcome = 'present' end
    elseif kind == 'dead' then
      if redis.call('ZSCORE', target, id) then
        outcome = 'present'
      elseif present then
        if take(nil, true) > 0 then
          local stored = redis.call('HGET', msgs, id)
          redis.call('ZADD', target, score, id)
          redis.call('HSET', xmsgs, id, stored)
          redis.call('HDEL', msgs, id)
          outcome = 'applied'
        else
          outcome = 'elsewhere'
        end
      elseif (not seen) and has_body then
        redis.call('ZADD', target, score, id)
        redis.call('HSET', xmsgs, id, body)
        outcome = 'applied'
      else
        outcome = 'gone'
      end
    end
    redis.call('ZADD', settled, now, id)
    table.insert(out, id)
    table.insert(out, outcome)
  end
end
return out
"""

#: Outcomes that mean a message may run twice, or a write could not be restored.
TROUBLE = {"elsewhere", "ran-elsewhere"}


@dataclass
class _Message:
    """One message id's history in the lost stream."""

    queue: bytes
    #: Where it ended: `queue`, `acks` (in `worker`'s set), `gone`, `released`, `dead`.
    last: str = ""
    worker_set: bytes = b""
    body: bytes = b""
    #: Its enqueue (the body written to the queue's hash) is in the stream.
    created: bool = False
    score: bytes = b"0"
    #: Acknowledgement sets the stream put it in or took it out of.
    sources: list[bytes] = field(default_factory=list)

    def source(self, key: bytes) -> None:
        if key not in self.sources:
            self.sources.append(key)


@dataclass
class Plan:
    """What the lost stream says, per message id, plus what is not dramatiq's."""

    messages: dict[bytes, _Message] = field(default_factory=dict)
    #: Heartbeat key and worker -> newest timestamp (ms).
    heartbeats: dict[tuple[bytes, bytes], int] = field(default_factory=dict)
    #: Commands outside dramatiq's keys, or dramatiq's that are not re-applied (purges).
    skipped: list[LostCommand] = field(default_factory=list)
    #: dramatiq's writes that need no re-application (maintenance of dead letters, pops).
    ignored: int = 0


class Layout:
    """dramatiq's key layout under one namespace."""

    def __init__(self, namespace: str) -> None:
        self.prefix = namespace.encode() + b":"
        self.heartbeats = self.prefix + b"__heartbeats__"
        self.acks = self.prefix + b"__acks__."
        self.settled = self.prefix + b"__sentinel_settled__"

    def queue_of_hash(self, key: bytes) -> bytes | None:
        """`<ns>:<q>.msgs` -> `<q>` (not a dead-letter hash)."""
        if key.startswith(self.prefix) and key.endswith(b".msgs") and not key.endswith(b".XQ.msgs"):
            return key[len(self.prefix) : -len(b".msgs")]
        return None

    def queue_of_list(self, key: bytes) -> bytes | None:
        if not key.startswith(self.prefix) or key.startswith(self.acks):
            return None
        name = key[len(self.prefix) :]
        if name.startswith(b"__") or name.endswith((b".msgs", b".XQ", b".acks")):
            return None
        return name

    def acks_set(self, key: bytes) -> tuple[bytes, bytes] | None:
        """`<ns>:__acks__.<w>.<q>` -> (`<w>`, `<q>`) (a broker id has no dot)."""
        if not key.startswith(self.acks):
            return None
        worker, dot, queue = key[len(self.acks) :].partition(b".")
        return (worker, queue) if dot and worker and queue else None

    def dead_queue(self, key: bytes) -> bytes | None:
        """`<ns>:<q>.XQ` -> `<q>`."""
        if key.startswith(self.prefix) and key.endswith(b".XQ"):
            return key[len(self.prefix) : -len(b".XQ")]
        return None

    def dead_hash(self, key: bytes) -> bytes | None:
        if key.startswith(self.prefix) and key.endswith(b".XQ.msgs"):
            return key[len(self.prefix) : -len(b".XQ.msgs")]
        return None

    def ours(self, key: bytes) -> bool:
        return key.startswith(self.prefix)


def _transactions(commands: Iterable[LostCommand]) -> Iterable[list[LostCommand]]:
    """The stream cut into transactions (`MULTI` ... `EXEC`); a command outside one is one."""
    current: list[LostCommand] | None = None
    for command in commands:
        name = command.name
        if name == "MULTI":
            if current:
                yield current
            current = []
        elif name == "EXEC":
            if current is not None:
                yield current
            current = None
        elif current is not None:
            current.append(command)
        else:
            yield [command]
    if current:
        yield current


def plan(commands: Iterable[LostCommand], namespace: str = "dramatiq", db: int = 0) -> Plan:
    """Reads the lost stream: each message id's last place, heartbeats, and what is skipped."""
    layout = Layout(namespace)
    result = Plan()

    def message(mid: bytes, queue: bytes) -> _Message:
        found = result.messages.get(mid)
        if found is None:
            found = result.messages[mid] = _Message(queue=queue)
        return found

    for transaction in _transactions(commands):
        # Ids pushed back in this transaction without leaving a set in it: a maintenance
        # requeue, whose set (a dead worker's) is deleted after the pushes.
        pushed_back: list[bytes] = []
        for command in transaction:
            name, args = command.name, command.args
            key = args[1] if len(args) > 1 else b""
            if (command.db is not None and command.db != db) or not layout.ours(key):
                result.skipped.append(command)
                continue
            if name == "ZADD" and key == layout.heartbeats:
                pairs = [a for a in args[2:] if a.upper() not in (b"NX", b"XX", b"GT", b"LT", b"CH", b"INCR")]
                for i in range(0, len(pairs) - 1, 2):
                    try:
                        ms = int(float(pairs[i]))
                    except ValueError:
                        continue
                    slot = (key, pairs[i + 1])
                    result.heartbeats[slot] = max(ms, result.heartbeats.get(slot, ms))
            elif name in ("HSET", "HMSET") and layout.queue_of_hash(key) is not None:
                queue = layout.queue_of_hash(key) or b""
                for i in range(2, len(args) - 1, 2):
                    m = message(args[i], queue)
                    # Only an enqueue writes a body to the queue's hash.
                    m.body, m.last, m.created = args[i + 1], "queue", True
            elif name == "RPUSH" and layout.queue_of_list(key) is not None:
                queue = layout.queue_of_list(key) or b""
                for mid in args[2:]:
                    m = message(mid, queue)
                    if m.last == "released":
                        pass  # put back by a requeue
                    elif m.last != "queue":
                        pushed_back.append(mid)
                    m.last = "queue"
            elif name == "SADD" and layout.acks_set(key) is not None:
                _, queue = layout.acks_set(key) or (b"", b"")
                for mid in args[2:]:
                    m = message(mid, queue)
                    m.last, m.worker_set = "acks", key
                    m.source(key)
            elif name == "SREM" and layout.acks_set(key) is not None:
                _, queue = layout.acks_set(key) or (b"", b"")
                for mid in args[2:]:
                    m = message(mid, queue)
                    m.last = "released"
                    m.source(key)
            elif name == "HDEL" and layout.queue_of_hash(key) is not None:
                queue = layout.queue_of_hash(key) or b""
                for mid in args[2:]:
                    m = message(mid, queue)
                    if m.last != "dead":  # a nack deletes the body after dead-lettering it
                        m.last = "gone"
            elif name == "ZADD" and layout.dead_queue(key) is not None:
                queue = layout.dead_queue(key) or b""
                for i in range(2, len(args) - 1, 2):
                    m = message(args[i + 1], queue)
                    m.last, m.score = "dead", args[i]
            elif name in ("HSET", "HMSET") and layout.dead_hash(key) is not None:
                queue = layout.dead_hash(key) or b""
                for i in range(2, len(args) - 1, 2):
                    m = message(args[i], queue)
                    m.body = m.body or args[i + 1]
            elif name == "DEL" and all(layout.acks_set(k) for k in args[1:]):
                # A dead worker's set, deleted after its ids were pushed back to the queue.
                for k in args[1:]:
                    _, queue = layout.acks_set(k) or (b"", b"")
                    for mid in pushed_back:
                        if result.messages[mid].queue == queue:
                            result.messages[mid].source(k)
                result.ignored += 1
            elif name in ("LPOP", "ZREM", "HDEL") or (name == "ZADD" and key.endswith(b".acks")):
                result.ignored += 1  # pops (the SADD names the id), dead-letter expiry, compat
            else:
                result.skipped.append(command)
    return result


def script_args(the_plan: Plan, layout: Layout, now_ms: int) -> list[bytes]:
    """The settle script's ARGV for `the_plan`."""
    argv: list[bytes] = [layout.settled, str(now_ms).encode(), str(SETTLED_KEEP_MS).encode()]
    for (key, worker), ms in the_plan.heartbeats.items():
        argv += [b"H", key, worker, str(ms).encode()]
    for mid, m in the_plan.messages.items():
        queue = layout.prefix + m.queue
        canonical = m.queue[: -len(b".DQ")] if m.queue.endswith(b".DQ") else m.queue
        dead = layout.prefix + canonical + b".XQ"
        target = {"acks": m.worker_set, "dead": dead}.get(m.last, b"")
        argv += [
            b"I", m.last.encode(), mid, queue + b".msgs", queue, target, dead + b".msgs",
            m.body, b"1" if m.created else b"0", m.score, str(len(m.sources)).encode(),
            *m.sources,
        ]
    return argv


@dataclass
class Outcome:
    """What a re-application did: message ids per outcome, and what it skipped."""

    by_outcome: dict[str, list[str]] = field(default_factory=dict)
    heartbeats: int = 0
    skipped: list[LostCommand] = field(default_factory=list)

    def ids(self, *outcomes: str) -> list[str]:
        return [mid for o in outcomes for mid in self.by_outcome.get(o, [])]


def reapply(
    commands: Iterable[LostCommand],
    execute: Callable[..., Any],
    namespace: str = "dramatiq",
    db: int = 0,
) -> Outcome:
    """Re-applies dramatiq's lost writes through `execute(*args)` (a command on the new
    master, in `db`) in one script call, and returns what happened to each message id."""
    layout = Layout(namespace)
    the_plan = plan(commands, namespace, db)
    outcome = Outcome(heartbeats=len(the_plan.heartbeats), skipped=the_plan.skipped)
    if not the_plan.messages and not the_plan.heartbeats:
        return outcome
    reply = execute(b"EVAL", SETTLE, b"0", *script_args(the_plan, layout, int(time.time() * 1000)))
    pairs = list(reply or [])
    for i in range(0, len(pairs) - 1, 2):
        mid = pairs[i].decode() if isinstance(pairs[i], bytes) else str(pairs[i])
        what = pairs[i + 1].decode() if isinstance(pairs[i + 1], bytes) else str(pairs[i + 1])
        outcome.by_outcome.setdefault(what, []).append(mid)
    return outcome


#: An enqueue a switch cut after it was sent, sent again (ours; see `_retry.FailoverRetry`).
#: Only run once the check of that switch heard the old master answer after the promotion, so
#: the enqueue either ran there after the promotion (then it was read back and the hand-back
#: settled its id), or ran before it (its body is on the new master), or never ran: pushed
#: only in the last case, and its id settled like the hand-back's. KEYS: settled set, the
#: queue's hash, the queue; ARGV: id, body, now (ms).
RESEND_ENQUEUE = r"""
local settled, msgs, queue = KEYS[1], KEYS[2], KEYS[3]
local id = ARGV[1]
if redis.call('ZSCORE', settled, id) or redis.call('HEXISTS', msgs, id) == 1 then
  return 0
end
redis.call('HSET', msgs, id, ARGV[2])
redis.call('RPUSH', queue, id)
redis.call('ZADD', settled, tonumber(ARGV[3]), id)
return 1
"""


def resend_enqueue(namespace: Any, queue: Any, message_id: Any, body: Any) -> tuple[Any, ...]:
    """The command that sends a cut dramatiq enqueue again idempotently (`RESEND_ENQUEUE`)."""
    layout = Layout(_bytes(namespace).decode())
    key = layout.prefix + _bytes(queue)
    return ("EVAL", RESEND_ENQUEUE, 3, layout.settled, key + b".msgs", key,
            _bytes(message_id), _bytes(body), str(int(time.time() * 1000)).encode())


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return str(value).encode()


def _shown(command: LostCommand) -> str:
    return " ".join(a[:60].decode("utf-8", "replace") for a in command.args[:3])


def log_outcome(outcome: Outcome, old: str, new: str) -> None:
    """INFO for what was restored, WARNING for what could not be (with the ids)."""
    applied = outcome.ids("applied")
    logger.info(
        "dramatiq-sentinel: dramatiq's lost writes re-applied on %s (lost on %s): %d message(s) "
        "restored %s, %d already in place, %d heartbeat(s)",
        new, old, len(applied), applied[:20],
        len(outcome.ids("present", "held", "settled", "gone")), outcome.heartbeats,
        extra={"sentinel_event": "LostWritesReapplied", "reapplied": applied,
               "outcomes": outcome.by_outcome},
    )
    twice = outcome.ids(*sorted(TROUBLE))
    if twice:
        logger.warning(
            "dramatiq-sentinel: lost writes not re-applied: %d message(s) another worker took "
            "on %s meanwhile may run twice: %s", len(twice), new, twice,
            extra={"sentinel_event": "LostWritesNotReapplied", "message_ids": twice},
        )
    if outcome.skipped:
        logger.warning(
            "dramatiq-sentinel: %d lost command(s) outside dramatiq's writes were not re-applied "
            "(pass on_writes_lost to handle them): %s", len(outcome.skipped),
            [_shown(c) for c in outcome.skipped[:10]],
            extra={"sentinel_event": "LostWritesSkipped", "skipped": len(outcome.skipped)},
        )
