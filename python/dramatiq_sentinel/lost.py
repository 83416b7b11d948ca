"""Lost writes handed back: what the old master acknowledged and the new master lacks.

Redis replicates asynchronously. When the supervisor's fence comes a moment after a
promotion (the failover was led by a sentinel this process does not hear, a partition, ...),
the old master acknowledged writes the new master never received. When the old master is
still up, the supervisor reads them back from its replication backlog and, before the switch
resumes (held commands still held, no new job started), hands them to the application:

- with the dramatiq middleware, dramatiq's own writes are re-applied idempotently
  (`dramatiq_sentinel._reapply`, see the README);
- `Failover(on_writes_lost=...)` and `Sentinel(on_writes_lost=...)` call a function of yours
  with a `LostWrites`: its `commands` in the order the old master ran them, and `execute()`
  to run commands on the new master (the package's own clients are held at that moment: use
  `execute`, never them, or the call waits until the switch gives up on it).

The hand-back is bounded by `fence_timeout`: keep the function short. Nothing is re-applied
unless a function does it: what is safe to replay is the application's decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import _native

#: A command of a hand-back failed (an error reply, a broken connection, or the hand-back is
#: over and its connection closed).
CommandFailed = _native.CommandFailed


@dataclass(frozen=True)
class LostCommand:
    """One command the old master ran (and replicated) that the new master lacks."""

    #: The database it ran in, or `None` before the stream read back selected one (then it
    #: is the one the application writes to).
    db: int | None
    #: The command and its arguments, e.g. `(b"RPUSH", b"queue", b"id")`.
    args: tuple[bytes, ...]

    @property
    def name(self) -> str:
        """The command's name, upper case (`"RPUSH"`)."""
        return self.args[0].decode("ascii", "replace").upper() if self.args else ""


def _encode(value: Any) -> bytes:
    """An argument as redis-py sends it."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, bool):
        raise TypeError("a bool is not a Redis argument (send 0/1 or a string)")
    if isinstance(value, (int, float)):
        return repr(value).encode()
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"{type(value).__name__} is not a Redis argument")


class LostWrites:
    """The lost writes of one switch: `old` and `new` (`"host:port"`), `commands`
    (`LostCommand`s, in order; `MULTI` / `EXEC` kept: a script or a transaction is replicated
    as the effects it had, inside `MULTI` / `EXEC`), and `execute(*args)` on the new master,
    valid while the hand-back lasts."""

    def __init__(self, native: Any) -> None:
        self._native = native
        self.old: str = native.old
        self.new: str = native.new
        self.commands: list[LostCommand] = [
            LostCommand(db, tuple(args)) for db, args in native.commands
        ]

    def execute(self, *args: Any) -> Any:
        """Runs one command on the new master through the supervisor's connection of the
        hand-back (the package's own clients are held until the switch resumes) and returns
        its reply (`None`, `int`, `bytes`, `str` for status replies, lists). Raises
        `CommandFailed` on an error reply or once the hand-back is over."""
        return self._native.execute([_encode(a) for a in args])

    def __repr__(self) -> str:
        return f"LostWrites(old={self.old!r}, new={self.new!r}, commands={len(self.commands)})"
