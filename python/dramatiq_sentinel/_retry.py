"""When a command that a failover cut is sent again, and for how long: the retry policy of our
connections, which replaces redis-py's own `Retry` on them.

A command is sent again, on the verified master, when the failover cut it before any byte of
it was written (the fence at send, a refused connection: always safe), or when it was written
and its effect is the same whether it ran once or twice (the per-command table below, for
dramatiq's Lua commands and read-only Redis commands). Anything else is raised as before: an
enqueue whose reply a master kill lost may or may not have run, and sending it again could
run the message twice.

Every wait and retry of one command shares one deadline, `hold_timeout` from the command's
checkout (or its start on a pinned connection), however many times it is sent.

Nothing here decides about failovers: which master is verified, and when commands are held,
is the Rust supervisor's; this only knows which commands of the application are idempotent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .errors import MasterUnavailable, SentinelStartError

if TYPE_CHECKING:
    from ._connection import _Fenced

#: dramatiq's `dispatch` Lua script, per command (argument 5 of its `EVALSHA`): may a call
#: whose reply a failover lost be sent again? Decided from the script's effect, see the
#: README's table (Python (dramatiq) > Failovers dramatiq never notices).
DRAMATIQ_COMMANDS: Mapping[str, bool] = {
    # Moves up to `prefetch` ids from the queue to this worker's acknowledgement set and
    # returns their bodies. A lost reply leaves those ids in the set until this worker's
    # heartbeat stops, whether or not the fetch is sent again; sending it again fetches others.
    "fetch": True,
    # Removes the id from the acknowledgement set, and the body only if it was there: a second
    # run changes nothing.
    "ack": True,
    # Moves the message to the dead-letter queue only if it was still in the acknowledgement
    # set: a second run changes nothing.
    "nack": True,
    # Puts each id back on the queue only if it was still in the acknowledgement set.
    "requeue": True,
    # Deletes the queue's keys; a second run deletes nothing more.
    "purge": True,
    # Reads sizes.
    "qsize": True,
    # Stores the body and pushes the id: a second run pushes the id twice (runs twice).
    "enqueue": False,
}

#: Redis commands that change nothing (or only what the connection itself re-establishes):
#: sent again after a lost reply by every pool of ours.
READ_ONLY: frozenset[str] = frozenset(
    """PING ECHO TIME INFO ROLE DBSIZE TYPE EXISTS TTL PTTL GET MGET STRLEN GETRANGE HGET HMGET
    HGETALL HKEYS HVALS HLEN HEXISTS LLEN LRANGE LINDEX SCARD SMEMBERS SISMEMBER SMISMEMBER
    ZCARD ZSCORE ZMSCORE ZRANK ZREVRANK ZRANGE ZRANGEBYSCORE ZREVRANGE ZREVRANGEBYSCORE ZCOUNT
    SCAN SSCAN HSCAN ZSCAN KEYS XLEN XRANGE XREVRANGE XINFO EVALSHA_RO EVAL_RO FCALL_RO
    SUBSCRIBE PSUBSCRIBE SSUBSCRIBE UNSUBSCRIBE PUNSUBSCRIBE SUNSUBSCRIBE""".split()
)

#: The commands that frame a transaction: a pipeline of them around safe commands is safe.
_TRANSACTION = frozenset({"MULTI", "EXEC"})

#: The first delay between two sends of one command when no switch happened in between (a
#: master that answered READONLY, an error the supervisor is re-checking); it doubles up to
#: `MAX_PAUSE`, and a switch ends the wait at once.
FIRST_PAUSE = 0.05
MAX_PAUSE = 1.0


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class RetryPolicy:
    """Which written commands may be sent again: `READ_ONLY`, the scripts registered with
    `add_script` (dramatiq's, by the middleware), and `retry_when_sent(args)` if given."""

    def __init__(self, retry_when_sent: Callable[[tuple[Any, ...]], bool] | None = None) -> None:
        self.retry_when_sent = retry_when_sent
        #: Script SHA1 -> {command (argument after the keys) -> safe}.
        self.scripts: dict[str, Mapping[str, bool]] = {}

    def add_script(self, sha: Any, commands: Mapping[str, bool]) -> None:
        """Calls of the script `sha` with one key are classified by their first argument."""
        self.scripts[_text(sha)] = commands

    def safe_when_sent(self, args: tuple[Any, ...] | None) -> bool:
        """Whether `args` (a command as sent, or a pipeline as a tuple of commands) may run
        twice: a pipeline may if each of its commands may (`MULTI` and `EXEC` included)."""
        if not args:
            return False
        if isinstance(args[0], (tuple, list)):
            return all(
                _text(c[0]).upper() in _TRANSACTION or self.safe_when_sent(tuple(c)) for c in args
            )
        name = _text(args[0]).upper()
        if name == "EVALSHA" and len(args) > 4 and _text(args[2]) == "1":
            commands = self.scripts.get(_text(args[1]))
            if commands is not None:
                return bool(commands.get(_text(args[4]), False))
        if name in READ_ONLY:
            return True
        if name == "SCRIPT" and len(args) > 1 and _text(args[1]).upper() in ("LOAD", "EXISTS"):
            return True
        return bool(self.retry_when_sent and self.retry_when_sent(tuple(args)))


class FailoverRetry(Retry):
    """The `retry` of one connection of ours: sends a command again after a failover cut it,
    when `RetryPolicy` says it may, until the command's deadline. redis-py calls
    `call_with_retry` around each command (and around socket connects, which our connection
    waits for itself: those run once)."""

    def __init__(self, conn: _Fenced) -> None:
        super().__init__(NoBackoff(), 0)  # our own loop below replaces the backoff
        self._conn = conn

    def call_with_retry(
        self,
        do: Callable[[], Any],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> Any:
        conn = self._conn
        if conn._in_connect:
            # redis-py's connect wraps the socket connect; our `_open` retries that.
            try:
                return do()
            except Exception as error:
                _call_fail(fail, error, 1, with_failure_count)
                raise
        outer = conn._deadline
        if outer is None:
            conn._deadline = time.monotonic() + conn._fence.hold
        failures = 0
        try:
            while True:
                generation = conn._generation
                try:
                    return do()
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
                    failures += 1
                    _call_fail(fail, error, failures, with_failure_count)
                    if is_retryable is not None and not is_retryable(error):
                        raise
                    if not self._may_send_again(error):
                        raise
                    conn._fence.note_retry(error, conn)
                    self._pause(generation, failures)
        finally:
            conn._deadline = outer

    def _may_send_again(self, error: Exception) -> bool:
        conn = self._conn
        if isinstance(error, (MasterUnavailable, SentinelStartError)):
            return False  # the hold itself gave up, or no supervisor: nothing to wait for
        if isinstance(error, redis.exceptions.AuthenticationError):
            return False
        if time.monotonic() >= conn._deadline:  # type: ignore[operator]
            return False
        safe = getattr(error, "retry_safe", None)
        if safe is not None:
            return bool(safe)
        if not conn._sent:
            return True  # not a byte written: it did not run
        return conn._fence.policy.safe_when_sent(conn._last)

    def _pause(self, generation: int | None, failures: int) -> None:
        """Before the next send: when no switch happened since the failed one, wait until one
        does or a short, growing delay passes (within the deadline)."""
        conn = self._conn
        if conn._fence.generation() != generation or generation is None:
            return
        delay = min(FIRST_PAUSE * 2 ** (failures - 1), MAX_PAUSE)
        left = conn._deadline - time.monotonic()  # type: ignore[operator]
        conn._fence.wait_switch(min(delay, max(left, 0.0)))


def _call_fail(fail: Callable[..., Any], error: Exception, count: int, with_count: bool) -> None:
    """redis-py's failure handler (it disconnects, and for a pipeline that was watching keys
    raises `WatchError`): anything it raises other than `error` itself propagates."""
    try:
        if with_count:
            fail(error, count)
        else:
            fail(error)
    except BaseException as raised:
        if raised is not error:
            raise

