"""`Failover`: the supervisor for any redis-py code (RQ, Celery's Redis transport, your own),
with no dramatiq involved: `Failover(...).redis()` is a `redis.Redis` whose connection pool is
ours, so its commands follow the verified master, wait while a failover is in progress, and
are sent again when a failover cut them and that is safe.

    from dramatiq_sentinel import Failover

    failover = Failover(sentinels=[("10.0.0.1", 26379), ("10.0.0.2", 26379)],
                        service_name="mymaster")
    r = failover.redis(decode_responses=True)   # any redis.Redis keyword but host/port
    r.set("greeting", "hello")
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis

from ._pool import FencedBlockingConnectionPool, FencedConnectionPool
from ._runtime import Runtime
from ._settings import Settings
from .lost import LostWrites

logger = logging.getLogger("dramatiq_sentinel")

#: Keywords of `redis.Redis` itself rather than of its pool.
_CLIENT_KEYWORDS = ("single_connection_client",)


class Failover:
    """One supervisor (per process) for a Sentinel-monitored service, and redis-py clients
    that follow its verified master.

    Keywords are the middleware's (`sentinels`, `service_name`, `sentinel_password`,
    `hold_timeout`, `redis_password`, `tls`, ...; see the README); invalid values raise
    `ValueError` naming the keyword. Nothing starts here: the supervisor starts on the first
    command of a client (blocking until a master is verified, at most `startup_timeout`) or on
    `start()`. A forked child starts its own on its first command. `on_event(event)` is called
    with every supervisor event as a dict (`name`, `level`, `message`, `fields`), on a thread
    of its own; every event is also a record of the `dramatiq_sentinel` logger.

    `on_writes_lost(lost)` receives the writes the old master acknowledged and the new one
    lacks (a `dramatiq_sentinel.LostWrites`: `old`, `new`, `commands`, `execute(*args)` on the
    new master), when a fence came after a promotion and the old master could still be read.
    It runs before the switch resumes: this process's clients are still held, so re-apply
    through `lost.execute`, idempotently (what is safe to replay is yours to decide), and
    keep it short (the switch resumes without waiting after `fence_timeout`).
    """

    def __init__(
        self,
        sentinels: list[tuple[str, int]] | None = None,
        service_name: str = "redis",
        on_event: Callable[[dict[str, Any]], None] | None = None,
        on_writes_lost: Callable[[LostWrites], None] | None = None,
        **keywords: Any,
    ) -> None:
        if on_writes_lost is not None and not callable(on_writes_lost):
            raise ValueError("dramatiq-sentinel: invalid `on_writes_lost`: not callable")
        settings = Settings(
            {
                "sentinels": [("localhost", 26379)] if sentinels is None else sentinels,
                "service_name": service_name,
                **keywords,
            }
        )
        self._on_event = on_event
        self._runtime = Runtime(settings, self._event)
        self._runtime.workers.on_writes_lost = on_writes_lost

    def _event(self, event: dict[str, Any]) -> None:
        if self._on_event is not None:
            self._on_event(event)

    def redis(
        self,
        *,
        retry_when_sent: Callable[[tuple[Any, ...]], bool] | None = None,
        blocking: bool = False,
        redis_class: type[redis.Redis] = redis.Redis,
        **kwargs: Any,
    ) -> redis.Redis:
        """A client whose pool is ours. `kwargs` are redis-py's connection-pool keywords
        (`decode_responses`, `max_connections`, `socket_timeout`, `db`, `password`, ...; the
        address comes from the supervisor) and `single_connection_client`; `blocking=True` makes it a
        `BlockingConnectionPool` (with its `timeout`). A command a failover cut before it was
        written, or a read-only one, is sent again on the new master within `hold_timeout`;
        `retry_when_sent(args)` may declare more commands safe to run twice."""
        client_kwargs = {k: kwargs.pop(k) for k in _CLIENT_KEYWORDS if k in kwargs}
        cls = FencedBlockingConnectionPool if blocking else FencedConnectionPool
        pool = cls(self._runtime, retry_when_sent, **kwargs)
        return redis_class(connection_pool=pool, **client_kwargs)

    def start(self) -> None:
        """Starts the supervisor now (it otherwise starts on the first command); raises
        `SentinelStartError` naming each sentinel's failure."""
        self._runtime.ensure()

    def master(self) -> tuple[str, int] | None:
        """The verified master in use, or `None` before the start."""
        return self._runtime.current_master()

    def is_held(self) -> bool:
        """Whether commands are held now (a failover is in progress)."""
        return self._runtime.is_held()

    def status(self) -> dict[str, Any]:
        """Everything the supervisor knows: master, replicas, sentinels, quorum."""
        return self._runtime.status()

    def shutdown(self, timeout: float = 15.0) -> None:
        """Stops the supervisor of this process; later commands start a new one."""
        self._runtime.shutdown(timeout)
