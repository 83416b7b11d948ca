"""The dramatiq `Worker` as the supervisor's worker pool: it only does what it is told."""

from __future__ import annotations

import logging
import threading
from typing import Any

logger = logging.getLogger("dramatiq_sentinel")


class WorkersProxy:
    """`pause()`, `resume()` and `stop(grace)` for the supervisor, on the dramatiq worker of
    this process once it booted (no-ops before: a process that only enqueues has none)."""

    def __init__(self, gate_waiters: set[int]) -> None:
        self.worker: Any = None
        self.gate_waiters = gate_waiters
        #: Set when the supervisor stops the worker (after a pause timeout).
        self.escalating = threading.Event()

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
