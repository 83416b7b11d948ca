"""Which commands of the application may be sent again after a failover cut them, once they
were written: the per-command table of dramatiq's Lua commands, read-only Redis commands, the
idempotent form of dramatiq's enqueue (`DRAMATIQ_RESEND`, see `_retry`), and what the
application adds (`retry_when_sent`). `_retry.FailoverRetry` asks it; it knows nothing of
failovers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from . import _reapply

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



def _resend_dramatiq_enqueue(args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """dramatiq's enqueue as sent, `EVALSHA <sha> 1 <ns> enqueue <ts> <queue> <broker>
    <heartbeat_timeout> <dead_message_ttl> <maintenance> <max_unpack> <id> <body>`, as the
    command that sends it again idempotently."""
    if len(args) != 14:
        return None
    return _reapply.resend_enqueue(args[3], args[6], args[12], args[13])


#: dramatiq's commands that are not sent again as they are, but may be sent again in another,
#: idempotent form once a switch proved it safe (see the module docs): command -> the form.
DRAMATIQ_RESEND: Mapping[str, Callable[[tuple[Any, ...]], tuple[Any, ...] | None]] = {
    "enqueue": _resend_dramatiq_enqueue,
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
        #: Script SHA1 -> {command -> its idempotent form, for a switch that proved it safe}.
        self.resends: dict[str, Mapping[str, Callable[[tuple[Any, ...]], Any]]] = {}

    def add_script(
        self,
        sha: Any,
        commands: Mapping[str, bool],
        resends: Mapping[str, Callable[[tuple[Any, ...]], Any]] | None = None,
    ) -> None:
        """Calls of the script `sha` with one key are classified by their first argument."""
        self.scripts[_text(sha)] = commands
        if resends:
            self.resends[_text(sha)] = resends

    def resend_when_cut(self, args: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
        """The idempotent form of `args` (one command as sent) to send once a switch proved it
        safe (`DRAMATIQ_RESEND`), or `None` if it has none."""
        if not args or isinstance(args[0], (tuple, list)) or len(args) < 5:
            return None
        if _text(args[0]).upper() != "EVALSHA" or _text(args[2]) != "1":
            return None
        form = self.resends.get(_text(args[1]), {}).get(_text(args[4]))
        return form(tuple(args)) if form is not None else None

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
        if name == "EVAL" and len(args) > 1 and args[1] is _reapply.RESEND_ENQUEUE:
            return True  # a cut enqueue sent again: idempotent itself
        if name == "SCRIPT" and len(args) > 1 and _text(args[1]).upper() in ("LOAD", "EXISTS"):
            return True
        return bool(self.retry_when_sent and self.retry_when_sent(tuple(args)))
