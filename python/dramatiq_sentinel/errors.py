"""The exceptions of dramatiq-sentinel.

Both derive from dramatiq's broker connection error *and* redis-py's ``ConnectionError``, so
dramatiq handles them as it handles a lost connection (the consumer restarts, an
acknowledgement is retried) and redis-py users can catch them as usual.
"""

import dramatiq.errors
import redis.exceptions

# dramatiq 2 renamed its `ConnectionError` to `BrokerConnectionError`.
_BrokerConnectionError: type[Exception] = getattr(
    dramatiq.errors, "BrokerConnectionError", None
) or getattr(dramatiq.errors, "ConnectionError")


class SentinelStartError(redis.exceptions.ConnectionError, _BrokerConnectionError):  # type: ignore[misc,valid-type]
    """The supervisor found no verified master at startup; the message names each sentinel's
    failure (unreachable, wrong password, unknown service name, ...)."""


class MasterUnavailable(redis.exceptions.ConnectionError, _BrokerConnectionError):  # type: ignore[misc,valid-type]
    """No verified master within ``hold_timeout`` (a failover is still in progress, or the
    master stayed unreachable), or the supervisor stopped."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class MasterMoved(redis.exceptions.ConnectionError):
    """The node answered ``READONLY``: it is a replica now. The command did not run; the
    supervisor was told and moves to the new master (the command is sent again there, within
    its deadline)."""

    #: The command did not run: sending it again is safe.
    retry_safe = True


class StateLost(redis.exceptions.ConnectionError):
    """The master was replaced while the connection held server-side state (watched keys, a
    transaction being built with ``MULTI``): nothing was sent, and the command is not sent
    again elsewhere (a pipeline raises ``WatchError`` for it, so the transaction is retried
    from the start)."""

    #: Sending it to the new master would run it without the state.
    retry_safe = False


class CommandTimedOut(redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
    """The master did not answer within the socket timeout (``command_timeout`` by default).
    Both a redis-py ``TimeoutError`` and a ``ConnectionError`` (the connection is closed), so
    dramatiq retries an acknowledgement instead of dropping it (it only retries connection
    errors); the supervisor was told."""
