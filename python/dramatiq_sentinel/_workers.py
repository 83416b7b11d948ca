"""The dramatiq `Worker` as the supervisor's worker pool: it only does what it is told."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from .lost import LostWrites

logger = logging.getLogger("dramatiq_sentinel")


class WorkersProxy:
    """`pause()`, `resume()` and `stop(grace)` for the supervisor, on the dramatiq worker of
    this process once it booted (no-ops before: a process that only enqueues has none), and
    `writes_lost(lost)`, which hands lost writes to the re-application of dramatiq's writes
    (once a broker is attached) and to the user's `on_writes_lost`."""

    def __init__(self, gate_waiters: set[int]) -> None:
        self.worker: Any = None
        self.gate_waiters = gate_waiters
        #: Set when the supervisor stops the worker (after a pause timeout).
        self.escalating = threading.Event()
        #: Re-applies dramatiq's lost writes (set by the middleware when it sees the broker).
        self.reapply: Callable[[LostWrites], None] | None = None
        #: The user's `on_writes_lost(lost)`.
        self.on_writes_lost: Callable[[LostWrites], None] | None = None

    def writes_lost(self, native: Any) -> None:
        """Called by the supervisor, before the switch resumes (held commands still held, no
        new job started), with the writes the old master acknowledged and the new one lacks.
        Each handler's failure is logged; the switch resumes when this returns (or after
        `fence_timeout`)."""
        lost = LostWrites(native)
        logger.info(
            "dramatiq-sentinel: %d lost command(s) handed back (%s -> %s)",
            len(lost.commands), lost.old, lost.new,
            extra={"sentinel_event": "LostWritesHandedBack", "old": lost.old, "new": lost.new,
                   "commands": len(lost.commands)},
        )
        for name, handler in (("re-applying dramatiq's lost writes", self.reapply),
                              ("on_writes_lost", self.on_writes_lost)):
            if handler is None:
                continue
            try:
                handler(lost)
            except Exception:
                logger.exception("dramatiq-sentinel: %s failed", name)

    def pause(self) -> None:
        """Pauses the dramatiq worker threads (they finish their message and start no other
        until `resume()`), without waiting for them and without pausing the consumer threads.

        Why not `worker.pause()`: the supervisor calls this once the worker gate is closed
        and drained (no job in flight, and every job start waits in the gate until the
        supervisor resumes), so waiting adds nothing but latency: an idle worker thread
        notices a pause only after `worker_timeout` (1 s), a thread waiting in the gate
        never does (a deadlock until `pause_timeout`), and dramatiq 2 restarts a paused
        consumer after a 3 s sleep. Consumers keep fetching; their commands are held by the
        broker's pool while fenced and go to the verified master afterwards."""
        worker = self.worker
        if worker is None:
            return
        try:
            for thread in list(worker.workers):
                thread.pause()
            logger.info("dramatiq-sentinel: dramatiq worker threads paused")
        except Exception:
            logger.exception("dramatiq-sentinel: pausing the dramatiq worker failed")

    def resume(self) -> None:
        worker = self.worker
        if worker is None:
            return
        try:
            worker.resume()
            logger.info("dramatiq-sentinel: dramatiq worker resumed")
        except Exception:
            logger.exception("dramatiq-sentinel: resuming the dramatiq worker failed")

    def stop(self, grace: float) -> None:
        worker = self.worker
        if worker is None:
            return
        self.escalating.set()
        logger.error("dramatiq-sentinel: stopping the dramatiq worker (grace %.1f s)", grace)
        try:
            worker.stop(timeout=int(grace * 1000))
        except Exception:
            logger.exception("dramatiq-sentinel: stopping the dramatiq worker failed")
