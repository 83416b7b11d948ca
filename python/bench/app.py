"""The benchmark's dramatiq application (run by the `dramatiq` command, configured by the
`DS_BENCH` environment variable, JSON): `variant` `ours` (RedisBroker + Sentinel middleware)
or `plain` (RedisBroker on redis-py's `Sentinel.master_for`), `sentinels`, `service`, `out`
(a directory). Each job start appends `<seq> <monotonic time>` to `starts-<pid>`; `ours`
appends `<name> <monotonic time>` of the supervisor's switch events to `events-<pid>`;
`plain` appends `<host:port> <monotonic time>` of each new connection to `connects-<pid>`."""

from __future__ import annotations

import json
import logging
import os
import time

import dramatiq
import redis
import redis.sentinel
from dramatiq.brokers.redis import RedisBroker

CONFIG = json.loads(os.environ["DS_BENCH"])
OUT = CONFIG["out"]


def append(name: str, line: str) -> None:
    fd = os.open(os.path.join(OUT, f"{name}-{os.getpid()}"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


class _Events(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        name = getattr(record, "sentinel_event", None)
        if name in ("Fenced", "SwitchDetected", "AfterReset", "SwitchCompleted"):
            append("events", f"{name} {time.monotonic():.6f}")


class _Connection(redis.sentinel.SentinelManagedConnection):
    def connect_to(self, address):  # type: ignore[no-untyped-def]
        super().connect_to(address)
        append("connects", f"{address[0]}:{address[1]} {time.monotonic():.6f}")


def broker_of(variant: str) -> RedisBroker:
    sentinels = [tuple(s) for s in CONFIG["sentinels"]]
    if variant == "ours":
        from dramatiq_sentinel.middleware.sentinel import Sentinel

        logging.getLogger("dramatiq_sentinel").addHandler(_Events())
        broker = RedisBroker()
        broker.add_middleware(Sentinel(sentinels=sentinels, service_name=CONFIG["service"]))
        return broker
    sentinel = redis.sentinel.Sentinel(sentinels, socket_timeout=0.5)
    client = sentinel.master_for(
        CONFIG["service"], socket_timeout=0.5, connection_class=_Connection
    )
    return RedisBroker(client=client)


broker = broker_of(CONFIG["variant"])
dramatiq.set_broker(broker)


@dramatiq.actor(max_retries=0)
def job(seq: str, work_ms: int = 10) -> None:
    append("starts", f"{seq} {time.monotonic():.6f}")
    time.sleep(work_ms / 1000)
