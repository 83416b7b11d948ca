"""Our redis-py connections: each belongs to one generation of the supervisor's verified master
(one activation), checks before every send that this generation is still the one in use (one
call into the extension), and otherwise waits in the supervisor's hold and reconnects to the
new master before sending. Commands a failover cut are sent again when that is safe
(`_retry.FailoverRetry`).

Plumbing around redis-py's own `Connection` and `SSLConnection` (as redis-py's
`SentinelManagedConnection` does it): the address comes from the supervisor instead of a
sentinel query."""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Any

import redis
from redis.connection import Connection, SSLConnection
from redis.exceptions import ReadOnlyError, TimeoutError

from ._retry import FailoverRetry
from .errors import CommandTimedOut, MasterMoved, StateLost

if TYPE_CHECKING:
    from ._fence import Fence

Address = tuple[str, int]

#: Whether redis-py opens connections through `connect_check_health` (redis-py >= 6).
_CHECK_HEALTH = hasattr(Connection, "connect_check_health")
#: How many connects of one command may fail on a master the supervisor still has in use
#: (each after waiting in the supervisor's own hold on an unreachable master) before the error
#: is raised.
CONNECT_ATTEMPTS = 3
#: Commands after which the connection holds server-side state that a new connection would
#: not have (a transaction being built, watched keys): such a connection cannot move to a new
#: master in the middle.
_STATEFUL: dict[Any, bool] = {}
for _command, _state in {"WATCH": True, "MULTI": True, "EXEC": False, "DISCARD": False,
                         "UNWATCH": False}.items():
    for _spelling in (_command, _command.lower()):  # looked up as sent: no decoding per send
        _STATEFUL[_spelling] = _STATEFUL[_spelling.encode()] = _state


def _kind(error: BaseException) -> str:
    return "timeout" if isinstance(error, (TimeoutError, socket.timeout)) else "io"


def _reraise(error: BaseException) -> None:
    """Raises `error`, a redis-py timeout as `CommandTimedOut` (see there)."""
    if isinstance(error, TimeoutError) and not isinstance(error, CommandTimedOut):
        raise CommandTimedOut(*error.args) from error
    raise error


class _Fenced:
    """The mixin of our connection classes (see the module docs)."""

    _fence: Fence
    host: str
    port: int
    _sock: Any

    def _init_fence(self, kwargs: dict[str, Any]) -> None:
        self._fence = kwargs.pop("fence")
        #: The generation of the master this connection is connected to.
        self._generation: int | None = None
        #: The deadline of the command using this connection (`time.monotonic()`), if any.
        self._deadline: float | None = None
        self._in_connect = False
        #: The arguments of the last command sent (a tuple of them for a pipeline), and
        #: whether any byte of the current one was written.
        self._last: tuple[Any, ...] | None = None
        self._pending: tuple[Any, ...] | None = None
        self._sent = False
        self._stateful = False
        self._failover_retry = FailoverRetry(self)

    # redis-py assigns `retry` in its constructor and `ConnectionPool.set_retry`: our policy
    # stays in force (it is the hold's deadline; see `_retry`).
    @property
    def retry(self) -> FailoverRetry:
        return self._failover_retry

    @retry.setter
    def retry(self, value: Any) -> None:
        pass

    @property
    def address(self) -> Address:
        return (self.host, int(self.port))

    def _command_deadline(self) -> float:
        if self._deadline is not None:
            return self._deadline
        checkout = self._fence.checkout_deadline()
        return checkout if checkout is not None else time.monotonic() + self._fence.hold

    def _open(self, opener: Any, *args: Any, **kwargs: Any) -> Any:
        """Opens the connection with `opener` (redis-py's own), to the verified master."""
        if self._sock:
            return None
        deadline = self._command_deadline()
        probe = False
        for attempt in range(CONNECT_ATTEMPTS):
            self.host, self.port, self._generation = self._fence.wait_master(probe, deadline)
            self._in_connect = True
            try:
                return opener(*args, **kwargs)
            except redis.exceptions.AuthenticationError:
                raise
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as e:
                self._fence.report(self.address, _kind(e))
                if attempt == CONNECT_ATTEMPTS - 1 or time.monotonic() >= deadline:
                    _reraise(e)
                # Wait as the supervisor's own connection waits on an unreachable master
                # (retrying until it answers or another master is in use, within the
                # deadline); its failure is the clear error raised.
                probe = True
            finally:
                self._in_connect = False
        return None

    # redis-py >= 6 connects through `connect_check_health` (also when it retries a command
    # on the same connection object), older versions through `connect`.
    if _CHECK_HEALTH:

        def connect_check_health(self, *args: Any, **kwargs: Any) -> Any:
            return self._open(super().connect_check_health, *args, **kwargs)  # type: ignore[misc]

        def connect(self) -> Any:
            # redis-py's own wraps this in its retry; the hold is ours (`_open`). Every
            # checkout calls it: the connected case first.
            if self._sock:
                return None
            return self.connect_check_health(check_health=True, retry_socket_connect=False)

    else:

        def connect(self) -> Any:
            if self._sock:
                return None
            return self._open(super().connect)  # type: ignore[misc]

    def disconnect(self, *args: Any, **kwargs: Any) -> None:
        self._stateful = False
        super().disconnect(*args, **kwargs)  # type: ignore[misc]

    def _check_fence(self) -> None:
        """The fence at send: the slow path of `send_packed_command` when this connection's
        generation is no longer the one in use (or commands are held)."""
        if self._stateful:
            address = self.address
            self.disconnect()
            raise StateLost(
                f"dramatiq-sentinel: the master {address[0]}:{address[1]} was replaced while "
                "this connection held a transaction or watched keys; nothing was sent"
            )
        _host, _port, generation = self._fence.wait_master(False, self._command_deadline())
        if generation != self._generation:
            self.disconnect()  # a connection serves one generation; `connect` opens the next

    def pack_commands(self, commands: Any) -> Any:
        """A pipeline packs its commands here before sending them in one write: remembered
        for the retry policy (a pipeline is sent again only if every command in it may)."""
        commands = list(commands)
        self._pending = tuple(commands)
        return super().pack_commands(commands)  # type: ignore[misc]

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        self._pending = args
        try:
            super().send_command(*args, **kwargs)  # type: ignore[misc]
        finally:
            self._pending = None

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self._in_connect:
            self._last, self._pending = self._pending, None
            self._sent = False
            # The fence, checked at every send: one call into the extension.
            if self._sock is not None and self._fence.runtime.generation() != self._generation:
                self._check_fence()
            if not self._sock:
                self.connect()
            last = self._last
            if last and not isinstance(last[0], (tuple, list)):
                self._stateful = _STATEFUL.get(last[0], self._stateful)
            else:
                # A pipeline: on a connection watching keys it is the transaction,
                # MULTI .. EXEC, which ends the watch.
                self._stateful = False
            self._sent = True
        try:
            super().send_packed_command(command, check_health)  # type: ignore[misc]
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
            self._fence.report(self.address, _kind(e))
            _reraise(e)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)  # type: ignore[misc]
        except ReadOnlyError:
            address = self.address
            self._fence.report(address, "readonly")
            self.disconnect()
            raise MasterMoved(
                f"dramatiq-sentinel: {address[0]}:{address[1]} answered READONLY (it is a "
                "replica now); the command did not run"
            ) from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
            self._fence.report(self.address, _kind(e))
            _reraise(e)

    def abort(self, generation: int) -> bool:
        """Makes a command in flight on this connection fail now (from another thread) if the
        connection belongs to a generation other than `generation`; returns whether it did.

        The socket is read once, before the generation (which `_open` sets before it opens
        the next socket): a fresh connection to the new master is never shut down. It is shut
        down, not closed (its owner closes it), through the plain socket type even for TLS:
        `SSLSocket.shutdown` drops the TLS object under the owner, whose read then raises
        `ValueError` instead of a connection error."""
        sock = self._sock
        if sock is None or self._generation == generation:
            return False
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except (OSError, ValueError):
            pass
        return True


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
