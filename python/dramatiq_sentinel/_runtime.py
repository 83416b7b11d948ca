"""The supervisor of one middleware in one process: started lazily (worker boot, or the first
Redis command), forgotten in forked children, and its events turned into Python logging
records and hook calls on a thread of its own."""

from __future__ import annotations

import logging
import os
import sys
import threading
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
#: How long the event thread waits for one event before it checks whether to stop.
EVENT_POLL = 0.25

_RUNTIMES: weakref.WeakSet[Runtime] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for runtime in list(_RUNTIMES):
        runtime._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _address(text: str | None) -> Address | None:
    if not text:
        return None
    host, _, port = text.rpartition(":")
    return (host.strip("[]"), int(port))


class Runtime:
    """Owns the native supervisor of one middleware instance in this process."""

    def __init__(self, settings: Settings, on_event: Callable[[dict[str, Any]], None]) -> None:
        self.settings = settings
        self.config = settings.config
        self.on_event = on_event
        self.gate_waiters: set[int] = set()
        self.workers = WorkersProxy(self.gate_waiters)
        self.pools: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._native: Any = None
        self._pump: threading.Thread | None = None
        self._stop_pump = threading.Event()
        _RUNTIMES.add(self)

    # -- settings the pool needs -------------------------------------------------------
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
    def db(self) -> int:
        return int(self.config.db)

    @property
    def redis_auth(self) -> tuple[str | None, str] | None:
        return self.settings.redis_auth

    def ssl_kwargs(self) -> dict[str, Any]:
        return dict(self.settings.ssl_kwargs)

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._native is not None

    def ensure(self) -> Any:
        """The running supervisor, started now if needed (blocking until a master is
        verified, at most `startup_timeout`)."""
        native = self._native
        if native is not None:
            return native
        with self._lock:
            if self._native is None:
                try:
                    self._native = _native.Supervisor.start(
                        self.config, self.workers, self._before_exit
                    )
                except _native.StartError as e:
                    raise SentinelStartError(f"dramatiq-sentinel: {e}") from None
                self._stop_pump.clear()
                self._pump = threading.Thread(
                    target=self._pump_events, name="dramatiq-sentinel-events", daemon=True
                )
                self._pump.start()
            return self._native

    def shutdown(self, timeout: float) -> None:
        with self._lock:
            native, self._native = self._native, None
        if native is None:
            return
        ended = native.shutdown(timeout)
        if ended:
            logger.warning("dramatiq-sentinel: supervisor stopped: %s", ended)
        self._stop_pump.set()
        pump = self._pump
        if pump is not None and pump is not threading.current_thread():
            pump.join(timeout=5)

    def _forked(self) -> None:
        """In a forked child: the supervisor's threads and sockets are the parent's."""
        native, self._native = self._native, None
        if native is not None:
            native.abandon()
        self._lock = threading.Lock()
        self._pump = None
        self._stop_pump = threading.Event()
        self.gate_waiters.clear()

    # -- what the pool and the middleware ask ----------------------------------------------
    def wait_master(self, probe: bool = False) -> Address:
        native = self.ensure()
        try:
            host, port = native.wait_master(probe)
        except _native.MasterUnavailable as e:
            message = e.args[0] if e.args else str(e)
            raise MasterUnavailable(message) from None
        return (host, port)

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

    # -- events ----------------------------------------------------------------------
    def _pump_events(self) -> None:
        native = self._native
        while native is not None:
            try:
                event = native.next_event(EVENT_POLL)
            except _native.MasterUnavailable:
                return  # closed (shut down) while this thread waited: no event will come
            if event is None:
                if self._stop_pump.is_set() or native.is_stopped():
                    return
                continue
            self._handle(event)

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
        if event["name"] == "AfterReset":
            new = _address(fields.get("new"))
            if new is not None:
                for pool in list(self.pools):
                    pool.switched(new)
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
