"""The broker's connection pool: every connection it hands out goes to the master the Rust
supervisor verified, and new connections wait (GIL released, in Rust) while it holds
commands. Errors the connections see are reported to the supervisor, which decides.

This is plumbing around redis-py's own `ConnectionPool` and `Connection` (as redis-py's
`SentinelConnectionPool` does it): the address comes from the supervisor instead of a
sentinel query, and connections to any other address are closed."""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

import redis
from redis.connection import Connection, SSLConnection
from redis.exceptions import ReadOnlyError, TimeoutError

from .errors import CommandTimedOut, MasterMoved

if TYPE_CHECKING:
    from ._runtime import Runtime

Address = tuple[str, int]

#: Whether redis-py opens connections through `connect_check_health` (redis-py >= 6).
_CHECK_HEALTH = hasattr(Connection, "connect_check_health")
#: Reports of the same kind about the same node within this interval are sent once.
REPORT_INTERVAL = 0.05
#: How often a connect that found the master unreachable waits for it (through the
#: supervisor's own hold) before giving up.
CONNECT_ATTEMPTS = 3


class Fence(Protocol):
    """What connections need from the supervisor."""

    def wait_master(self, probe: bool = False) -> Address: ...
    def current_master(self) -> Address | None: ...
    def report(self, address: Address, kind: str) -> None: ...


class _Reporter:
    """Forwards errors to the supervisor, at most one per node and kind per interval."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.last: dict[tuple[Address, str], float] = {}
        self.lock = threading.Lock()

    def wait_master(self, probe: bool = False) -> Address:
        return self.runtime.wait_master(probe=probe)

    def current_master(self) -> Address | None:
        return self.runtime.current_master()

    def report(self, address: Address, kind: str) -> None:
        now = time.monotonic()
        with self.lock:
            if now - self.last.get((address, kind), -1.0) < REPORT_INTERVAL:
                return
            self.last[(address, kind)] = now
        self.runtime.report(address, kind)


def _kind(error: BaseException) -> str:
    return "timeout" if isinstance(error, (TimeoutError, socket.timeout)) else "io"


def _reraise(error: BaseException) -> None:
    """Raises `error`, a redis-py timeout as `CommandTimedOut` (see there)."""
    if isinstance(error, TimeoutError) and not isinstance(error, CommandTimedOut):
        raise CommandTimedOut(*error.args) from error
    raise error


class _Fenced:
    """The mixin of our connection classes."""

    fence: Fence
    host: str
    port: int

    def _init_fence(self, kwargs: dict[str, Any]) -> None:
        self.fence = kwargs.pop("fence")

    @property
    def address(self) -> Address:
        return (self.host, int(self.port))

    def _open(self, opener: Any, *args: Any, **kwargs: Any) -> Any:
        """Opens the connection with `opener` (redis-py's own), to the verified master."""
        if getattr(self, "_sock", None):
            return None
        probe = False
        for attempt in range(CONNECT_ATTEMPTS):
            self.host, self.port = self.fence.wait_master(probe=probe)
            try:
                return opener(*args, **kwargs)
            except redis.exceptions.AuthenticationError:
                raise
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as e:
                self.fence.report(self.address, _kind(e))
                if attempt == CONNECT_ATTEMPTS - 1:
                    _reraise(e)
                # Wait as the supervisor's own connection waits on an unreachable master
                # (retrying until it answers or another master is in use, within
                # hold_timeout); its failure is the clear error raised.
                probe = True
        return None

    # redis-py >= 6 reconnects through `connect_check_health` (also when it retries a
    # command on the same connection object), older versions through `connect`.
    if _CHECK_HEALTH:

        def connect_check_health(self, *args: Any, **kwargs: Any) -> Any:
            return self._open(super().connect_check_health, *args, **kwargs)  # type: ignore[misc]

    else:

        def connect(self) -> Any:
            return self._open(super().connect)  # type: ignore[misc]

    def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().send_packed_command(*args, **kwargs)  # type: ignore[misc]
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
            self.fence.report(self.address, _kind(e))
            _reraise(e)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)  # type: ignore[misc]
        except ReadOnlyError:
            address = self.address
            self.fence.report(address, "readonly")
            self.disconnect()  # type: ignore[attr-defined]
            raise MasterMoved(
                f"dramatiq-sentinel: {address[0]}:{address[1]} answered READONLY (it is a "
                "replica now); the command did not run"
            ) from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
            self.fence.report(self.address, _kind(e))
            _reraise(e)

    def abort(self) -> None:
        """Makes a command in flight on this connection fail now (from another thread)."""
        sock = getattr(self, "_sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class FencedConnection(_Fenced, Connection):
    """A redis-py connection to the supervisor's verified master."""

    def __init__(self, **kwargs: Any) -> None:
        self._init_fence(kwargs)
        super().__init__(**kwargs)


class FencedSSLConnection(_Fenced, SSLConnection):
    """A TLS redis-py connection to the supervisor's verified master."""

    def __init__(self, **kwargs: Any) -> None:
        self._init_fence(kwargs)
        super().__init__(**kwargs)


#: connection_kwargs of a plain pool that do not apply to ours.
_DROPPED = {"host", "port", "path", "connection_class", "fence", "unix_socket_path"}


class FencedConnectionPool(redis.ConnectionPool):
    """A redis-py pool whose connections follow the supervisor's verified master."""

    def __init__(self, runtime: Runtime, **kwargs: Any) -> None:
        self.runtime = runtime
        fence = _Reporter(runtime)
        tls = kwargs.pop("ssl", False) or runtime.tls
        for key in _DROPPED:
            kwargs.pop(key, None)
        kwargs.setdefault("socket_timeout", runtime.command_timeout)
        kwargs.setdefault("socket_connect_timeout", runtime.connect_timeout)
        kwargs.setdefault("db", runtime.db)
        if runtime.redis_auth is not None:
            kwargs.setdefault("username", runtime.redis_auth[0])
            kwargs.setdefault("password", runtime.redis_auth[1])
        if tls:
            kwargs.update(runtime.ssl_kwargs())
        cls = FencedSSLConnection if tls else FencedConnection
        super().__init__(connection_class=cls, fence=fence, **kwargs)
        runtime.pools.add(self)

    @classmethod
    def replacing(cls, runtime: Runtime, pool: redis.ConnectionPool) -> FencedConnectionPool:
        """A pool with the settings of `pool` (credentials, database, timeouts, decoding),
        pointed at the supervisor's master instead of `pool`'s address."""
        kwargs = dict(pool.connection_kwargs)
        if isinstance(pool.connection_class, type) and issubclass(
            pool.connection_class, SSLConnection
        ):
            kwargs["ssl"] = True
        if getattr(pool, "max_connections", None) not in (None, 2**31):
            kwargs["max_connections"] = pool.max_connections
        return cls(runtime, **kwargs)

    def get_connection(self, *args: Any, **kwargs: Any) -> Connection:
        self.runtime.wait_master()  # the hold: waits while the supervisor holds commands
        conn = super().get_connection(*args, **kwargs)
        try:
            # An idle connection may still point at a master that has been replaced.
            if isinstance(conn, _Fenced) and conn.address != self.runtime.wait_master():
                conn.disconnect()
                conn.connect()
        except BaseException:
            self.release(conn)
            raise
        return conn

    def release(self, connection: Any) -> None:
        current = self.runtime.current_master()
        if isinstance(connection, _Fenced) and getattr(connection, "_sock", None):
            if current is not None and connection.address != current:
                connection.disconnect()  # type: ignore[attr-defined]
        super().release(connection)

    def switched(self, master: Address) -> None:
        """The supervisor moved to `master`: close every connection elsewhere, and make
        commands in flight on them fail."""
        self._close_others(master, in_use=True)

    def _close_others(self, master: Address, in_use: bool) -> None:
        lock = getattr(self, "_lock", None)
        if lock is None:
            return
        with lock:
            # Idle connections are disconnected under the pool's lock: once out of it, another
            # thread may take one from the pool and check it (`can_read`) while it is being
            # closed here, which redis-py answers with a ValueError it does not catch ("I/O
            # operation on closed file"). Busy ones are only shut down (`abort`), which their
            # owner sees as a connection error.
            for conn in list(getattr(self, "_available_connections", [])):
                if getattr(conn, "_sock", None) and conn.address != master:
                    conn.disconnect()
            busy = list(getattr(self, "_in_use_connections", [])) if in_use else []
        for conn in busy:
            if getattr(conn, "_sock", None) and conn.address != master:
                conn.abort()
