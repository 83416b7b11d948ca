"""Redis Sentinel failover for dramatiq (and any redis-py code), decided by a Rust core.

Importing this package starts nothing: no thread, no socket. The supervisor starts in each
dramatiq worker process when it boots, or on the first Redis command of a process that only
enqueues (or of a `Failover` client).
"""

from .client import Failover
from .errors import MasterUnavailable, SentinelStartError
from .lost import CommandFailed, LostCommand, LostWrites
from .middleware.sentinel import Sentinel

__all__ = [
    "CommandFailed", "Failover", "LostCommand", "LostWrites", "MasterUnavailable", "Sentinel",
    "SentinelStartError",
]
__version__ = "0.1.0"
