"""The supervisor of one middleware in one process: started lazily (worker boot, or the first
Redis command), forgotten in forked children, and its events turned into Python logging
records and hook calls on a thread of its own."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from . import _native
from ._settings import Settings
from ._workers import WorkersProxy
from .errors import MasterUnavailable, SentinelStartError

logger = logging.getLogger("dramatiq_sentinel")

Address = tuple[str, int]
#: How long one wait in the worker gate lasts before it is renewed.
GATE_SLICE = 1.0
#: How long the event and switch threads wait before they check whether to stop.
EVENT_POLL = 0.25
#: A failed start is remembered (and raised at once to every caller) for as long as it took,
#: at least this long: one thread retries after that, not every waiting thread in turn.
START_RETRY_AFTER = 1.0

_RUNTIMES: weakref.WeakSet[Runtime] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for runtime in list(_RUNTIMES):
        runtime._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _stop_threads_at_exit() -> None:
    """Ends the event and switch threads before the interpreter finalizes: a daemon thread
    still inside a native wait then would be unwound through Rust frames (an abort)."""
    for runtime in list(_RUNTIMES):
        runtime._stop_threads.set()
        for thread in runtime._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=2 * EVENT_POLL + 1)


def _address(text: str | None) -> Address | None:
    if not text:
        return None
    host, _, port = text.rpartition(":")
    return (host.strip("[]"), int(port))


def _not_started() -> None:
    """`Runtime.generation` before the supervisor runs: no generation (the slow path)."""
    return None


class Runtime:
    """Owns the native supervisor of one middleware instance in this process."""

    def __init__(self, settings: Settings, on_event: Callable[[dict[str, Any]], None]) -> None:
        self.settings = settings
        self.on_event = on_event
        self.gate_waiters: set[int] = set()
        self.workers = WorkersProxy(self.gate_waiters)
        self._pools: weakref.WeakSet[Any] = weakref.WeakSet()
        self._pools_lock = threading.Lock()
        self._lock = threading.Lock()
        self._native: Any = None
        #: `hold_timeout` in seconds: the deadline of one command, from its checkout.
        self.hold = float(settings.config.hold_timeout)
        #: The generation check before every send: the native method once started.
        self.generation: Callable[[], int | None] = _not_started
        self._failed: tuple[float, SentinelStartError] | None = None
        self._threads: list[threading.Thread] = []
        self._stop_threads = threading.Event()
        self._dropped_logged = 0
        _RUNTIMES.add(self)

    # -- settings the pool needs -------------------------------------------------------
    @property
    def config(self) -> Any:
        return self.settings.config

    @property
    def tls(self) -> bool:
        return bool(self.config.tls)

    @property
    def command_timeout(self) -> float | None:
        return self.config.command_timeout

    @property
    def connect_timeout(self) -> float:
        return float(self.config.connect_timeout)

    @property
    def hold_timeout(self) -> float:
        return self.hold

    @property
    def db(self) -> int:
        return int(self.config.db)

    @property
    def redis_auth(self) -> tuple[str | None, str] | None:
        return self.settings.redis_auth

    def ssl_kwargs(self) -> dict[str, Any]:
        return dict(self.settings.ssl_kwargs)

    def adopt_redis_auth(self, username: str | None, password: str | None) -> None:
        """Credentials a broker's own client carries (e.g. in its URL) for the data nodes:
        the supervisor verifies masters with them too, unless `redis_password` was given.
        Only before the supervisor starts (it is logged otherwise)."""
        if password is None or self.settings.redis_auth is not None:
            return
        with self._lock:
            if self._native is not None:
                logger.warning(
                    "dramatiq-sentinel: the broker's client has a password but the supervisor "
                    "already started without one; pass `redis_password` to the middleware"
                )
                return
            self.settings.adopt_redis_auth(username, password)

    # -- the pools to close on a switch --------------------------------------------------
    def add_pool(self, pool: Any) -> None:
        with self._pools_lock:
            self._pools.add(pool)

    def pools(self) -> list[Any]:
        with self._pools_lock:
            return list(self._pools)

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._native is not None

    def ensure(self) -> Any:
        """The running supervisor, started now if needed (blocking until a master is
        verified, at most `startup_timeout`). A failed start is raised at once to every
        caller for a while (`START_RETRY_AFTER`), then one caller tries again."""
        native = self._native
        if native is not None:
            return native
        with self._lock:
            if self._native is not None:
                return self._native
            failed = self._failed
            if failed is not None and time.monotonic() < failed[0]:
                raise failed[1]
            started = time.monotonic()
            try:
                native = _native.Supervisor.start(self.config, self.workers, self._before_exit)
            except _native.StartError as e:
                error = SentinelStartError(f"dramatiq-sentinel: {e}")
                took = time.monotonic() - started
                self._failed = (time.monotonic() + max(START_RETRY_AFTER, took), error)
                raise error from None
            self._failed = None
            self._native = native
            self.generation = native.generation
            self._stop_threads = threading.Event()
            self._threads = [
                threading.Thread(
                    target=self._pump_events,
                    args=(native, self._stop_threads),
                    name="dramatiq-sentinel-events",
                    daemon=True,
                ),
                threading.Thread(
                    target=self._watch_switches,
                    args=(native, self._stop_threads),
                    name="dramatiq-sentinel-switch",
                    daemon=True,
                ),
            ]
            for thread in self._threads:
                thread.start()
            return native

    def shutdown(self, timeout: float) -> None:
        with self._lock:
            native, self._native = self._native, None
            self.generation = _not_started
        if native is None:
            return
        ended = native.shutdown(timeout)
        if ended:
            logger.warning("dramatiq-sentinel: supervisor stopped: %s", ended)
        self._stop_threads.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)

    def _forked(self) -> None:
        """In a forked child: the supervisor's threads and sockets are the parent's."""
        native, self._native = self._native, None
        self.generation = _not_started
        if native is not None:
            native.abandon()
        self._lock = threading.Lock()
        self._pools_lock = threading.Lock()
        self._threads = []
        self._stop_threads = threading.Event()
        self._failed = None
        self.gate_waiters.clear()

    # -- what the pool and the middleware ask ----------------------------------------------
    def wait_master(self, probe: bool = False, timeout: float | None = None) -> tuple[str, int, int]:
        """`(host, port, generation)` of the verified master, waiting while commands are held
        (at most `hold_timeout`, and at most `timeout` seconds when given)."""
        native = self.ensure()
        try:
            host, port, generation = native.wait_master(probe, timeout)
        except _native.MasterUnavailable as e:
            message = e.args[0] if e.args else str(e)
            raise MasterUnavailable(message) from None
        return (host, port, generation)

    def wait_switch(self, seconds: float) -> None:
        """Waits `seconds` at most, less if a master is activated meanwhile."""
        native = self._native
        if native is None or seconds <= 0:
            return
        seen = native.wait_activation(2**64 - 1, 0.0)
        native.wait_activation(seen, seconds)

    def current_master(self) -> Address | None:
        native = self._native
        try:
            return native.current_master() if native is not None else None
        except _native.MasterUnavailable:
            return None

    def is_held(self) -> bool:
        native = self._native
        try:
            return bool(native.is_held()) if native is not None else False
        except _native.MasterUnavailable:
            return False

    def report(self, address: Address, kind: str) -> None:
        native = self._native
        if native is not None:
            try:
                native.check_error(address[0], address[1], kind)
            except _native.MasterUnavailable:
                pass

    def enter_gate(self) -> Any:
        """A permit for one job, waiting while the gate is closed (fenced); `None` if no
        supervisor runs here or it stopped."""
        native = self._native
        if native is None:
            return None
        try:
            permit = native.enter_gate(0.0)
            if permit is not None:
                return permit
            ident = threading.get_ident()
            self.gate_waiters.add(ident)
            try:
                while permit is None:
                    permit = native.enter_gate(GATE_SLICE)
                return permit
            finally:
                self.gate_waiters.discard(ident)
        except _native.MasterUnavailable:
            return None

    def status(self) -> dict[str, Any]:
        native = self.ensure()
        try:
            return dict(native.status())
        except _native.MasterUnavailable as e:
            raise MasterUnavailable(f"dramatiq-sentinel: {e}") from None

    # -- the switch thread: connections of an earlier generation are shut down ----------
    def _watch_switches(self, native: Any, stop: threading.Event) -> None:
        """Wakes at every activation of a master (the supervisor's `AfterReset`, signalled
        from its task, not through the event queue: a slow hook cannot delay it) and shuts
        down every connection of an earlier generation, so commands in flight on the old
        master fail now (and are sent again where safe). Never ends on an error."""
        seen = 0
        pending = False
        while not stop.is_set():
            try:
                count = native.wait_activation(seen, EVENT_POLL)
                if count != seen:
                    seen, pending = count, True
                if not pending:
                    if native.is_stopped():
                        return
                    continue
                generation = native.generation()
                if generation is None:
                    continue  # held again already (fenced at send meanwhile): retry next wake
                pending = False
                self.close_stale(generation)
            except Exception:
                logger.exception("dramatiq-sentinel: closing connections to the old master failed")
                stop.wait(EVENT_POLL)

    def close_stale(self, generation: int) -> None:
        for pool in self.pools():
            try:
                pool.close_stale(generation)
            except Exception:
                logger.exception("dramatiq-sentinel: closing the connections of %r failed", pool)

    # -- events ----------------------------------------------------------------------
    def _pump_events(self, native: Any, stop: threading.Event) -> None:
        """Turns every event into a logging record and runs the hooks, in order. An error in
        one event's handling is logged and the next event is handled: the thread ends only
        when the supervisor stopped (or `shutdown`)."""
        while True:
            try:
                event = native.next_event(EVENT_POLL)
                if event is None:
                    if stop.is_set() or native.is_stopped():
                        return
                    continue
                self._handle(event)
                dropped = native.dropped_events()
                if dropped > self._dropped_logged:
                    logger.warning(
                        "dramatiq-sentinel: %d routine events dropped (the event thread fell "
                        "behind)", dropped - self._dropped_logged,
                    )
                    self._dropped_logged = dropped
            except Exception:
                logger.exception("dramatiq-sentinel: handling a supervisor event failed")

    def _handle(self, event: dict[str, Any]) -> None:
        fields = event["fields"]
        shown = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        level = logging.getLevelName(event["level"])
        logger.log(
            level if isinstance(level, int) else logging.INFO,
            "%s (%s)",
            event["message"],
            shown,
            extra={"sentinel_event": event["name"], "sentinel_fields": fields, **fields},
        )
        try:
            self.on_event(event)
        except Exception:
            logger.exception("dramatiq-sentinel: an event hook failed")

    def _before_exit(self, code: int) -> None:
        """Right before the supervisor exits the process after a pause timeout."""
        logger.critical("dramatiq-sentinel: exiting the process with code %d", code)
        try:
            logging.shutdown()
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
