"""An RQ worker whose Redis client is a `dramatiq_sentinel.Failover` client: its commands
follow the verified master through failovers. Configured by `DS_RQ` (JSON: `sentinels`,
`service`, `options`); `python -m rq_app.worker` runs it until SIGTERM."""

from __future__ import annotations

import json
import logging
import os

from rq import Queue, SimpleWorker

from dramatiq_sentinel import Failover

#: RQ's commands whose second run changes state again (queue pushes and pops, counters,
#: notifications). Everything else RQ sends (job hashes, registries, heartbeats, expirations,
#: removals) sets the same state twice, so it may be sent again after a failover cut it.
NOT_TWICE = frozenset(
    "RPUSH LPUSH LPOP RPOP BLPOP BRPOP LMOVE BLMOVE RPOPLPUSH BRPOPLPUSH INCR INCRBY DECR "
    "HINCRBY ZINCRBY XADD PUBLISH".split()
)


def rq_idempotent(args: tuple) -> bool:
    name = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
    return name.upper() not in NOT_TWICE


CONFIG = json.loads(os.environ["DS_RQ"])
logging.basicConfig(
    level=logging.INFO, format="[%(asctime)s] [PID %(process)d] [%(name)s] [%(levelname)s] %(message)s"
)
failover = Failover(
    sentinels=[tuple(s) for s in CONFIG["sentinels"]],
    service_name=CONFIG["service"],
    **CONFIG.get("options", {}),
)
connection = failover.redis(retry_when_sent=rq_idempotent)
worker = SimpleWorker([Queue("default", connection=connection)], connection=connection)
worker.work(with_scheduler=False, logging_level="INFO")
failover.shutdown()
