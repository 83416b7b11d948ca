"""Redis Sentinel failover for dramatiq, decided by a Rust core.

Importing this package starts nothing: no thread, no socket. The supervisor starts in each
dramatiq worker process when it boots, or on the first Redis command of a process that only
enqueues.
"""

from .errors import MasterUnavailable, SentinelStartError
from .middleware.sentinel import Sentinel

__all__ = ["MasterUnavailable", "Sentinel", "SentinelStartError"]
__version__ = "0.1.0"
