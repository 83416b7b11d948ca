"""What our connections need from the supervisor, for one pool: the generation check, the hold
(bounded by the command's deadline), error reports (at most one per node and kind per
interval), and the pool's retry policy."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from ._policy import RetryPolicy

if TYPE_CHECKING:
    from ._runtime import Runtime

logger = logging.getLogger("dramatiq_sentinel")

Address = tuple[str, int]
#: Reports of the same kind about the same node within this interval are sent once.
REPORT_INTERVAL = 0.05

#: `deadline`: the deadline of the command whose checkout is connecting on this thread (set
#: by `FencedPoolMixin.get_connection` around redis-py's checkout, `None` outside it).
checkout = threading.local()


class Fence:
    """The supervisor as one pool's connections see it."""

    def __init__(self, runtime: Runtime, policy: RetryPolicy) -> None:
        self.runtime = runtime
        self.policy = policy
        self.last: dict[tuple[Address, str], float] = {}
        self.lock = threading.Lock()

    @property
    def hold(self) -> float:
        """`hold_timeout` in seconds: the deadline of one command, from its checkout."""
        return self.runtime.hold

    def generation(self) -> int | None:
        """The generation in use if commands may go to it now, else `None` (cheap)."""
        return self.runtime.generation()

    def wait_master(self, probe: bool, deadline: float) -> tuple[str, int, int]:
        """`(host, port, generation)` of the verified master, waiting while held, until
        `deadline` at most (raises `MasterUnavailable`)."""
        return self.runtime.wait_master(probe, max(0.0, deadline - time.monotonic()))

    def wait_switch(self, seconds: float) -> None:
        """Waits `seconds` at most, less if a master is activated meanwhile."""
        self.runtime.wait_switch(seconds)

    def wait_check(self, old: Address, seconds: float) -> str:
        """The lost-write check of the latest switch, waited for `seconds` at most: `"heard"`
        if that switch left `old` and its check heard `old` answer as a master after the
        promotion, else `"not-heard"`, or `"unknown"` (not reported in time)."""
        return self.runtime.wait_check(old, seconds)

    @staticmethod
    def checkout_deadline() -> float | None:
        return getattr(checkout, "deadline", None)

    def report(self, address: Address, kind: str) -> None:
        now = time.monotonic()
        with self.lock:
            if now - self.last.get((address, kind), -1.0) < REPORT_INTERVAL:
                return
            self.last[(address, kind)] = now
        self.runtime.report(address, kind)

    def note_retry(self, error: BaseException, conn: Any) -> None:
        logger.debug(
            "dramatiq-sentinel: sending again a command a failover cut (%s): %r",
            "not sent" if not conn._sent else "idempotent",
            error,
        )
