"""The RQ benchmark's worker (`python -m rq_worker`, configured by `DS_RQ_BENCH`, JSON:
`variant` `ours` (a `dramatiq_sentinel.Failover` client with RQ's idempotent commands
declared, as in the README) or `plain` (redis-py's `Sentinel.master_for`), `sentinels`,
`service`, `out`), and its job `record`, which appends `<seq> <monotonic time>` to
`starts-<pid>` in `out`."""

from __future__ import annotations

import json
import logging
import os
import time

CONFIG = json.loads(os.environ["DS_RQ_BENCH"])

NOT_TWICE = frozenset(
    "RPUSH LPUSH LPOP RPOP BLPOP BRPOP LMOVE BLMOVE RPOPLPUSH BRPOPLPUSH INCR INCRBY DECR "
    "HINCRBY ZINCRBY XADD PUBLISH".split()
)


def rq_idempotent(args: tuple) -> bool:
    name = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
    return name.upper() not in NOT_TWICE


def record(seq: str) -> None:
    fd = os.open(os.path.join(CONFIG["out"], f"starts-{os.getpid()}"),
                 os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, f"{seq} {time.monotonic():.6f}\n".encode())
    finally:
        os.close(fd)


def connection(variant: str, config: dict | None = None):  # type: ignore[no-untyped-def]
    config = config or CONFIG
    sentinels = [tuple(s) for s in config["sentinels"]]
    if variant == "ours":
        from dramatiq_sentinel import Failover

        return Failover(sentinels=sentinels, service_name=config["service"]).redis(
            retry_when_sent=rq_idempotent)
    import redis.sentinel

    return redis.sentinel.Sentinel(sentinels, socket_timeout=0.5).master_for(config["service"])


if __name__ == "__main__":
    from rq import Queue, SimpleWorker

    logging.basicConfig(level=logging.INFO,
                        format="[%(asctime)s] [%(name)s] [%(levelname)s] %(message)s")
    conn = connection(CONFIG["variant"])
    SimpleWorker([Queue("default", connection=conn)], connection=conn).work(
        with_scheduler=False, logging_level="INFO")
