"""The dramatiq `Worker` as the supervisor's worker pool: it only does what it is told."""

from __future__ import annotations

import logging
import threading
from typing import Any

logger = logging.getLogger("dramatiq_sentinel")

#: How often a pause re-checks the threads it waits for.
PAUSE_POLL = 0.05


class WorkersProxy:
    """`pause()`, `resume()` and `stop(grace)` for the supervisor, on the dramatiq worker of
    this process once it booted (no-ops before: a process that only enqueues has none)."""

    def __init__(self, gate_waiters: set[int]) -> None:
        self.worker: Any = None
        self.gate_waiters = gate_waiters
        #: Set when the supervisor stops the worker after a pause timeout.
        self.escalating = threading.Event()

    def pause(self) -> None:
        """`worker.pause()`, except that a worker thread waiting in the worker gate (in
        `before_process_message`, holding a message it will run once the gate opens) counts
        as paused: it starts nothing until then, and waiting for it would deadlock."""
        worker = self.worker
        if worker is None:
            return
        try:
            children = [*worker.consumers.values(), *worker.workers]
            for child in children:
                child.pause()
            pending = children
            while pending:
                pending = [
                    c
                    for c in pending
                    if not c.paused_event.wait(PAUSE_POLL)
                    and c.ident not in self.gate_waiters
                    and c.is_alive()
                ]
            logger.info("dramatiq-sentinel: dramatiq worker paused")
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
        logger.error(
            "dramatiq-sentinel: stopping the dramatiq worker (grace %.1f s): workers did not "
            "pause in time",
            grace,
        )
        try:
            worker.stop(timeout=int(grace * 1000))
        except Exception:
            logger.exception("dramatiq-sentinel: stopping the dramatiq worker failed")
