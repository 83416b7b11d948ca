"""An RQ worker whose Redis client is a `dramatiq_sentinel.Failover` client: its commands
follow the verified master through failovers. Configured by `DS_RQ` (JSON: `sentinels`,
`service`, `options`); `python -m rq_app.worker` runs it until SIGTERM."""

from __future__ import annotations

import json
import logging
import os

from rq import Queue, SimpleWorker

from dramatiq_sentinel import Failover

CONFIG = json.loads(os.environ["DS_RQ"])
logging.basicConfig(
    level=logging.INFO, format="[%(asctime)s] [PID %(process)d] [%(name)s] [%(levelname)s] %(message)s"
)
failover = Failover(
    sentinels=[tuple(s) for s in CONFIG["sentinels"]],
    service_name=CONFIG["service"],
    **CONFIG.get("options", {}),
)
connection = failover.redis()
worker = SimpleWorker([Queue("default", connection=connection)], connection=connection)
worker.work(with_scheduler=False, logging_level="INFO")
failover.shutdown()
