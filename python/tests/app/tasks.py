"""The dramatiq application the tests run with the `dramatiq` command (and import as a
producer). Configured by the `DS_TEST` environment variable (JSON): `sentinels`, `service`,
`options` (Sentinel keywords), `broker` (`default`, `url` or `client`), `records` (a
directory: each run of `job` appends `{"seq", "pid", "t", "rid"}` to a file of its process;
`rid` is the message's Redis id, the one the middleware's logs name)."""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage

from dramatiq_sentinel.middleware.sentinel import Sentinel as DramatiqSentinel

CONFIG = json.loads(os.environ["DS_TEST"])
# `kill -USR1 <pid>` writes every thread's stack to the worker log (for debugging).
faulthandler.register(signal.SIGUSR1, all_threads=True)

sentinel = DramatiqSentinel(
    sentinels=[tuple(s) for s in CONFIG["sentinels"]],
    service_name=CONFIG["service"],
    **CONFIG.get("options", {}),
)
if CONFIG.get("broker") == "client":
    broker = RedisBroker(client=sentinel.get_redis_master())
elif CONFIG.get("broker") == "url":
    broker = RedisBroker(url="redis://localhost:6379/0")
else:
    broker = RedisBroker()
broker.add_middleware(sentinel)
broker.add_middleware(CurrentMessage())
dramatiq.set_broker(broker)


def _record(seq: str) -> None:
    message = CurrentMessage.get_current_message()
    rid = message.options.get("redis_message_id") if message is not None else None
    line = json.dumps({"seq": seq, "pid": os.getpid(), "t": time.time(), "rid": rid}) + "\n"
    path = os.path.join(CONFIG["records"], f"runs-{os.getpid()}.jsonl")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@dramatiq.actor(max_retries=0)
def job(seq: str, work_ms: int = 0) -> None:
    _record(seq)
    if work_ms:
        time.sleep(work_ms / 1000)


@dramatiq.actor(max_retries=0)
def stuck(seq: str) -> None:
    """Never finishes (for the pause-timeout scenario)."""
    _record(seq)
    while True:
        time.sleep(1)
