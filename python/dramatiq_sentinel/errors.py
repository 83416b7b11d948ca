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


class SentinelStartError(_BrokerConnectionError, redis.exceptions.ConnectionError):  # type: ignore[misc,valid-type]
    """The supervisor found no verified master at startup; the message names each sentinel's
    failure (unreachable, wrong password, unknown service name, ...)."""


class MasterUnavailable(_BrokerConnectionError, redis.exceptions.ConnectionError):  # type: ignore[misc,valid-type]
    """No verified master within ``hold_timeout`` (a failover is still in progress, or the
    master stayed unreachable), or the supervisor stopped."""


class MasterMoved(redis.exceptions.ConnectionError):
    """The node answered ``READONLY``: it is a replica now. The command did not run; the
    supervisor was told and moves to the new master."""
