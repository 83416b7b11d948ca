"""When a command that a failover cut is sent again, and for how long: the retry policy of our
connections, which replaces redis-py's own `Retry` on them.

A command is sent again, on the verified master, when the failover cut it before any byte of
it was written (the fence at send, a refused connection: always safe), or when it was written
and its effect is the same whether it ran once or twice (`_policy.RetryPolicy`: a table for
dramatiq's Lua commands and read-only Redis commands). Anything else is raised as before: an
enqueue whose reply a master kill lost may or may not have run, and sending it again could
run the message twice.

One exception, for dramatiq's enqueue (`DRAMATIQ_RESEND`): when a switch cut it after it was
sent, and the lost-write check of that switch heard the old master answer as a master after
the promotion (`Fence.wait_check`), the enqueue is provably either on the new master (it ran
before the promotion), or read back and re-applied by the hand-back, which settled its id (it
ran after), or nowhere (it never ran: a write waiting on a deposed master paused with `CLIENT
PAUSE ... WRITE` is discarded when its client disconnects). It is then sent again, after the
switch resumed (the hand-back ran before), as one script that pushes it only in the last case
(`_reapply.RESEND_ENQUEUE`). When the check did not hear the old master (killed, frozen), it is
raised as before.

Every wait and retry of one command shares one deadline, `hold_timeout` from the command's
checkout (or its start on a pinned connection), however many times it is sent.

Nothing here decides about failovers: which master is verified, and when commands are held,
is the Rust supervisor's; this only knows which commands of the application are idempotent.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import _native
from .errors import MasterUnavailable, SentinelStartError

if TYPE_CHECKING:
    from ._fence import Fence

logger = logging.getLogger("dramatiq_sentinel")

#: The first delay between two sends of one command when no switch happened in between (a
#: master that answered READONLY, an error the supervisor is re-checking); it doubles up to
#: `MAX_PAUSE` (the core's backoff, jittered), and a switch ends the wait at once.
FIRST_PAUSE = 0.05
MAX_PAUSE = 1.0


class _Retried(Protocol):
    """What `FailoverRetry` reads and sets on its connection (`_connection._Fenced`)."""

    _fence: Fence
    _in_connect: bool
    _deadline: float | None
    _generation: int | None
    _sent: bool
    _last: tuple[Any, ...] | None
    _resend: tuple[Any, ...] | None
    address: tuple[str, int]


class FailoverRetry(Retry):
    """The `retry` of one connection of ours: sends a command again after a failover cut it,
    when `RetryPolicy` says it may, until the command's deadline. redis-py calls
    `call_with_retry` around each command (and around socket connects, which our connection
    waits for itself: those run once)."""

    def __init__(self, conn: _Retried) -> None:
        super().__init__(NoBackoff(), 0)  # our own loop below replaces the backoff
        self._conn = conn
        #: The delays between the sends of the command in progress (the core's backoff).
        self._backoff: _native.Backoff | None = None

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
                    if not self._may_send_again(error) and not self._resend_cut(error):
                        raise
                    conn._fence.note_retry(error, conn)
                    self._pause(generation, failures)
        finally:
            conn._deadline = outer
            conn._resend = None  # never carried over to the next command

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

    def _resend_cut(self, error: Exception) -> bool:
        """Whether a command a switch cut after it was sent has an idempotent form that may be
        sent instead (`RetryPolicy.resend_when_cut`), and the switch proved it safe: it left
        the master the command was sent to, and its lost-write check heard that master answer
        after the promotion (see the module docs). Waits for the switch to resume and for the
        check, within the command's deadline; on `True` the next send is that form."""
        conn = self._conn
        if isinstance(error, (MasterUnavailable, SentinelStartError,
                              redis.exceptions.AuthenticationError)) or not conn._sent:
            return False
        resend = conn._fence.policy.resend_when_cut(conn._last)
        if resend is None:
            return False
        old, sent_on, deadline = conn.address, conn._generation, conn._deadline
        if deadline is None or time.monotonic() >= deadline:
            return False
        try:
            _host, _port, generation = conn._fence.wait_master(False, deadline)
        except MasterUnavailable:
            return False
        if generation == sent_on:
            return False  # no switch since it was sent: not cut by one
        check = conn._fence.wait_check(old, max(0.0, deadline - time.monotonic()))
        logger.info(
            "dramatiq-sentinel: a command cut by the switch from %s:%d after it was sent: %s",
            old[0], old[1],
            "sent again idempotently (the switch's check heard the old master)"
            if check == "heard" else f"not sent again (the switch's check: {check})",
            extra={"sentinel_event": "CutCommandResent" if check == "heard"
                   else "CutCommandNotResent", "old": f"{old[0]}:{old[1]}", "check": check},
        )
        if check != "heard":
            return False
        conn._resend = resend
        return True

    def _pause(self, generation: int | None, failures: int) -> None:
        """Before the next send: when no switch happened since the failed one, wait until one
        does or a short, growing delay passes (within the deadline)."""
        conn = self._conn
        if conn._fence.generation() != generation or generation is None:
            return
        if failures == 1 or self._backoff is None:
            self._backoff = _native.Backoff(FIRST_PAUSE, MAX_PAUSE, 2.0)
        delay = self._backoff.next_delay(random.random())
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

