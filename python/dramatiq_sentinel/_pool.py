"""Our connection pools: redis-py's `ConnectionPool` and `BlockingConnectionPool` with our
connections (`_connection`), so every command goes to the supervisor's verified master, waits
in its hold while a failover is in progress, and is sent again when a failover cut it and that
is safe (`_retry`). On a switch, connections of an earlier generation are shut down, which
makes commands in flight on them fail (and be sent again, or raised, by `_retry`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis
from redis.connection import SSLConnection

from ._connection import FencedConnection, FencedSSLConnection, _Fenced
from ._fence import Fence, checkout
from ._policy import RetryPolicy

if TYPE_CHECKING:
    from ._runtime import Runtime

#: connection_kwargs of a plain pool that do not apply to ours (the address is the
#: supervisor's; the retry is ours, see `_retry`).
_DROPPED = {"host", "port", "path", "connection_class", "fence", "unix_socket_path", "retry"}


def _connection_kwargs(runtime: Runtime, kwargs: dict[str, Any]) -> tuple[type, dict[str, Any]]:
    tls = kwargs.pop("ssl", False) or runtime.tls
    for key in _DROPPED:
        kwargs.pop(key, None)
    # A timeout the user's pool leaves at None (redis-py's default: wait forever, as
    # `RedisBroker()`'s does) is the supervisor's: a frozen master must not hang a command.
    if kwargs.get("socket_timeout") is None:
        kwargs["socket_timeout"] = runtime.command_timeout
    if kwargs.get("socket_connect_timeout") is None:
        kwargs["socket_connect_timeout"] = runtime.connect_timeout
    kwargs.setdefault("db", runtime.db)
    if runtime.redis_auth is not None:
        kwargs.setdefault("username", runtime.redis_auth[0])
        kwargs.setdefault("password", runtime.redis_auth[1])
    if tls:
        kwargs.update(runtime.ssl_kwargs())
    return (FencedSSLConnection if tls else FencedConnection), kwargs


class FencedPoolMixin:
    """What our two pool classes add to redis-py's."""

    runtime: Runtime
    fence: Fence

    def __init__(
        self,
        runtime: Runtime,
        retry_when_sent: Callable[[tuple[Any, ...]], bool] | None = None,
        **kwargs: Any,
    ) -> None:
        self.runtime = runtime
        self.fence = Fence(runtime, RetryPolicy(retry_when_sent))
        cls, kwargs = _connection_kwargs(runtime, kwargs)
        kwargs["connection_class"] = cls
        kwargs["fence"] = self.fence
        super().__init__(**kwargs)  # type: ignore[call-arg]  # redis-py's pool, next in the MRO
        runtime.add_pool(self)

    @property
    def policy(self) -> RetryPolicy:
        """Which written commands may be sent again after a failover cut them."""
        return self.fence.policy

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        runtime = self.runtime
        if runtime._native is None:
            runtime.ensure()
        # One deadline for the checkout (its connects) and the command that follows.
        deadline = time.monotonic() + runtime.hold
        checkout.deadline = deadline
        try:
            conn = super().get_connection(*args, **kwargs)  # type: ignore[misc]
        finally:
            checkout.deadline = None
        conn._deadline = deadline
        return conn

    def release(self, connection: Any) -> None:
        connection._deadline = None
        super().release(connection)  # type: ignore[misc]

    def _every_connection(self) -> list[Any]:
        lock = getattr(self, "_lock", None)
        if lock is None:
            return []
        with lock:
            every = getattr(self, "_connections", None)
            if every is not None:  # BlockingConnectionPool
                return list(every)
            return list(getattr(self, "_available_connections", [])) + list(
                getattr(self, "_in_use_connections", [])
            )

    def close_stale(self, generation: int) -> int:
        """The supervisor activated the master of `generation`: shut down every connection of
        an earlier one (idle ones too; their owner or the next checkout closes them), so
        commands in flight on them fail now. Returns how many."""
        return sum(
            1 for conn in self._every_connection() if isinstance(conn, _Fenced) and conn.abort(generation)
        )


class FencedConnectionPool(FencedPoolMixin, redis.ConnectionPool):
    """A redis-py pool whose connections follow the supervisor's verified master
    (`FencedConnectionPool(runtime, retry_when_sent=None, **connection_kwargs)`)."""


class FencedBlockingConnectionPool(FencedPoolMixin, redis.BlockingConnectionPool):
    """redis-py's `BlockingConnectionPool` (a checkout waits for a free connection, up to
    `timeout`), with connections that follow the supervisor's verified master."""


def replacing(runtime: Runtime, pool: redis.ConnectionPool) -> FencedPoolMixin:
    """A pool of ours with the settings of `pool` (credentials, database, timeouts,
    decoding, size, and blocking or not), pointed at the supervisor's master instead of
    `pool`'s address."""
    kwargs = dict(pool.connection_kwargs)
    if isinstance(pool.connection_class, type) and issubclass(pool.connection_class, SSLConnection):
        kwargs["ssl"] = True
    if getattr(pool, "max_connections", None) not in (None, 2**31):
        kwargs["max_connections"] = pool.max_connections
    if isinstance(pool, redis.BlockingConnectionPool):
        kwargs["timeout"] = pool.timeout
        kwargs["queue_class"] = pool.queue_class
        return FencedBlockingConnectionPool(runtime, **kwargs)
    return FencedConnectionPool(runtime, **kwargs)
