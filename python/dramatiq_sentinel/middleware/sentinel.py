"""`Sentinel`: the drop-in replacement of the original `dramatiq-sentinel` middleware.

Every failover decision is made by the Rust supervisor (`dramatiq_sentinel._native`); this
middleware hands it the broker's connection pool and the dramatiq worker, and turns its
events into logging records and the original's hooks."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import dramatiq
import redis

from .. import _reapply, _status
from .._pool import FencedConnectionPool, FencedPoolMixin, replacing
from .._policy import DRAMATIQ_COMMANDS, DRAMATIQ_RESEND
from .._runtime import Runtime
from .._settings import Settings
from ..errors import SentinelStartError
from ..lost import LostWrites

logger = logging.getLogger("dramatiq_sentinel")

#: The original's hook names, and the event that fires each.
HOOKS = {
    "redis_master_switch_detected": "SwitchDetected",
    "before_redis_connection_reset": "BeforeReset",
    "after_redis_connection_reset": "AfterReset",
}


class Sentinel(dramatiq.Middleware):
    """Redis Sentinel failover for dramatiq's `RedisBroker`.

    The original's keywords keep their names and defaults; the Rust configuration's other
    settings are keywords too (`hold_timeout`, `early_fencing`, `watch_replicas`,
    `startup_fail_fast`, `redis_password`, ...). Invalid values raise `ValueError` naming the
    keyword. Nothing starts here: the supervisor starts when a dramatiq worker boots, or on the
    first Redis command of a process that only enqueues.

    Writes the old master acknowledged and the new one lacks (a fence that came after the
    promotion) are handed back before the switch resumes: dramatiq's own are re-applied
    idempotently (see `dramatiq_sentinel._reapply`), then `on_writes_lost(lost)` (a
    `dramatiq_sentinel.LostWrites`), if given, receives all of them.
    """

    def __init__(
        self,
        sentinels: list[tuple[str, int]] | None = None,
        sentinel_password: str | None = None,
        socket_timeout: float = 0.5,
        service_name: str = "redis",
        min_backoff: float = 3.0,
        max_backoff: float = 60.0,
        backoff_factor: float = 2.0,
        periodic_master_check: float | None = None,
        worker_pausing_timeout_before_exit: float = 600.0,
        nat: dict[Any, Any] | None = None,
        on_writes_lost: Callable[[LostWrites], None] | None = None,
        **options: Any,
    ) -> None:
        if on_writes_lost is not None and not callable(on_writes_lost):
            raise ValueError("dramatiq-sentinel: invalid `on_writes_lost`: not callable")
        keywords: dict[str, Any] = {
            "sentinels": [("localhost", 26379)] if sentinels is None else sentinels,
            "sentinel_password": sentinel_password,
            "socket_timeout": socket_timeout,
            "service_name": service_name,
            "min_backoff": min_backoff,
            "max_backoff": max_backoff,
            "backoff_factor": backoff_factor,
            "periodic_master_check": periodic_master_check,
            "worker_pausing_timeout_before_exit": worker_pausing_timeout_before_exit,
            "nat": nat,
        }
        for name, value in options.items():
            if name in {"query_timeout", "periodic_check", "pause_timeout"}:
                keywords[name] = value
                # The newer name replaces the original's default (not a value the user gave).
                old = {v: k for k, v in _RENAMED.items()}[name]
                if keywords[old] == _DEFAULTS[old]:
                    del keywords[old]
            else:
                keywords[name] = value
        self._settings = Settings(keywords)
        self._hooks: dict[str, list[Callable[..., Any]]] = {name: [] for name in HOOKS}
        self._runtime = Runtime(self._settings, self._on_event)
        self._runtime.workers.on_writes_lost = on_writes_lost
        self._permit = threading.local()
        self._broker: Any = None

    # -- the original's public surface ----------------------------------------------
    def subscribe_to_event(self, event_name: str, callback: Callable[..., Any]) -> None:
        """Calls `callback` on `event_name`: `redis_master_switch_detected(old, new,
        sentinel)`, `before_redis_connection_reset(old, new)`,
        `after_redis_connection_reset(old, new)`; addresses are `"host:port"` strings (after
        the NAT map), `old` and `sentinel` may be `None`."""
        if event_name not in self._hooks:
            raise ValueError(
                f"dramatiq-sentinel: invalid `event_name`: {event_name!r} is not one of "
                + ", ".join(sorted(self._hooks))
            )
        if not callable(callback):
            raise ValueError("dramatiq-sentinel: invalid `callback`: not callable")
        self._hooks[event_name].append(callback)

    def emit_event(self, event_name: str, *args: Any) -> None:
        """Calls every callback subscribed to `event_name` with `args` (a failing callback is
        logged, the others still run)."""
        for callback in list(self._hooks.get(event_name, [])):
            try:
                callback(*args)
            except Exception:
                logger.exception("dramatiq-sentinel: %s callback %r failed", event_name, callback)

    @property
    def switching_master(self) -> bool:
        """Whether a failover is in progress (commands are held)."""
        return self._runtime.is_held()

    def get_redis_master(
        self,
        username: str | None = None,
        password: str | None = None,
        database: int = 0,
        max_iterations: int | None = None,
    ) -> redis.Redis:
        """A redis-py client whose connections always go to the verified master (for
        `RedisBroker(client=...)`). It connects lazily: the supervisor starts on its first
        command (bounded by `startup_timeout`; `max_iterations` is accepted and ignored)."""
        if max_iterations is not None:
            logger.info(
                "dramatiq-sentinel: `max_iterations` is ignored; startup_timeout bounds the wait"
            )
        kwargs: dict[str, Any] = {"db": database}
        if password is not None:
            kwargs["password"] = password
            kwargs["username"] = username
        pool = FencedConnectionPool(self._runtime, **kwargs)
        # The broker this client is given to registers its commands at its first hook.
        return redis.Redis(connection_pool=pool)

    def discover_redis_master(self) -> tuple[str, int] | None:
        """The verified master `(host, port)` (starting the supervisor if needed), or `None`
        when none could be verified (the reason is logged)."""
        try:
            self._runtime.ensure()
        except SentinelStartError as e:
            logger.error("%s", e)
            return None
        return self._runtime.current_master()

    def status(self) -> dict[str, Any]:
        """Everything the supervisor knows: master, replicas, sentinels (flags, fields),
        quorum, the master in use and whether commands are held."""
        return self._runtime.status()

    def get_sentinel_redis_hosts_status(self) -> dict[str, Any]:
        """The original's `{"total_hosts": "a/n", "hosts_status": [...]}`, plus `quorum`."""
        return _status.hosts(self._runtime.status())

    def get_sentinels_status(self) -> dict[str, Any]:
        """The original's `{"total_sentinels": "a/n", "sentinels_status": [...]}`, plus
        `quorum`."""
        return _status.sentinels(self._runtime.status())

    def _check_sentinel_quorum(self) -> dict[str, Any]:
        """`SENTINEL CKQUORUM` of the first answering sentinel: `{"reachable", "message"}`."""
        return dict(self._runtime.status()["quorum"])

    def log_redis_status(self) -> None:
        """Logs `get_sentinel_redis_hosts_status()`."""
        logger.info("dramatiq-sentinel: redis hosts %s", self.get_sentinel_redis_hosts_status())

    def log_sentinel_status(self) -> None:
        """Logs `get_sentinels_status()`."""
        logger.info("dramatiq-sentinel: sentinels %s", self.get_sentinels_status())

    def shutdown(self, timeout: float = 15.0) -> None:
        """Stops the supervisor of this process (dramatiq's worker shutdown does it)."""
        self._runtime.shutdown(timeout)

    # -- dramatiq hooks -------------------------------------------------------------
    def _attach(self, broker: Any) -> None:
        """Gives the broker's redis-py client our pool (once), and tells it which of the
        broker's commands may be sent again after a failover cut them."""
        client = getattr(broker, "client", None)
        if client is None:
            return
        pool = client.connection_pool
        if self._broker is broker and isinstance(pool, FencedPoolMixin):
            return  # every dramatiq hook calls this: the common case first
        if not isinstance(pool, FencedPoolMixin):
            kwargs = pool.connection_kwargs
            self._runtime.adopt_redis_auth(kwargs.get("username"), kwargs.get("password"))
            fenced = replacing(self._runtime, pool)
            client.connection_pool = fenced
            pool.disconnect()
            pool = fenced
        dispatch = getattr(broker, "scripts", {}).get("dispatch")
        sha = getattr(dispatch, "sha", None)
        if sha is not None:
            pool.policy.add_script(sha, DRAMATIQ_COMMANDS, DRAMATIQ_RESEND)
        self._broker = broker
        self._runtime.workers.reapply = self._reapplier(
            str(getattr(broker, "namespace", "dramatiq")),
            int(pool.connection_kwargs.get("db") or 0),
        )

    def _reapplier(self, namespace: str, db: int) -> Callable[[LostWrites], None]:
        """Re-applies dramatiq's lost writes of the broker's namespace and database."""
        config_db = int(self._settings.config.db)

        def reapply(lost: LostWrites) -> None:
            if db != config_db:
                lost.execute("SELECT", db)  # the hand-back's connection is in `db` (setting)
            outcome = _reapply.reapply(lost.commands, lost.execute, namespace, db)
            _reapply.log_outcome(outcome, lost.old, lost.new)

        return reapply

    def after_declare_queue(self, broker: Any, queue_name: str) -> None:
        self._attach(broker)

    def after_process_boot(self, broker: Any) -> None:
        self._attach(broker)

    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        self._attach(broker)
        self._runtime.workers.worker = worker
        self._runtime.ensure()

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        if self._runtime.workers.escalating.is_set():
            return  # the supervisor is stopping this worker itself, then exits
        self._runtime.workers.worker = None  # already stopped: nothing for the supervisor
        self._runtime.shutdown(self._settings.config.stop_grace + 5.0)

    def before_enqueue(self, broker: Any, message: Any, delay: Any) -> None:
        self._attach(broker)

    def before_delay_message(self, broker: Any, message: Any) -> None:
        self._attach(broker)

    def before_ack(self, broker: Any, message: Any) -> None:
        self._attach(broker)

    def before_nack(self, broker: Any, message: Any) -> None:
        self._attach(broker)

    def before_process_message(self, broker: Any, message: Any) -> None:
        # Never SkipMessage: a message fetched during a failover waits here (the gate is
        # closed while fenced) and then runs once.
        self._release_permit()
        self._permit.value = self._runtime.enter_gate()

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        self._release_permit()

    def after_skip_message(self, broker: Any, message: Any) -> None:
        self._release_permit()

    def _release_permit(self) -> None:
        permit = getattr(self._permit, "value", None)
        self._permit.value = None
        if permit is not None:
            permit.release()

    # -- events -----------------------------------------------------------------------
    def _on_event(self, event: dict[str, Any]) -> None:
        fields = event["fields"]
        name = event["name"]
        if name == "SwitchDetected":
            self.emit_event(
                "redis_master_switch_detected", fields["old"], fields["new"], fields["sentinel"]
            )
        elif name == "BeforeReset":
            self.emit_event("before_redis_connection_reset", fields["old"], fields["new"])
        elif name == "AfterReset":
            self.emit_event("after_redis_connection_reset", fields["old"], fields["new"])


_RENAMED = {
    "socket_timeout": "query_timeout",
    "periodic_master_check": "periodic_check",
    "worker_pausing_timeout_before_exit": "pause_timeout",
}
_DEFAULTS: dict[str, Any] = {
    "socket_timeout": 0.5,
    "periodic_master_check": None,
    "worker_pausing_timeout_before_exit": 600.0,
}
