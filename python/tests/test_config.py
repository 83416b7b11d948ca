"""Keywords, errors, status, hooks, logging records, and import/fork safety."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import Run, wait_for
from deployment import Deployment
from dramatiq_sentinel import SentinelStartError
from dramatiq_sentinel.middleware.sentinel import Sentinel


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("keywords", "named"),
    [
        ({"socket_timeout": -1}, "socket_timeout"),
        ({"socket_timeout": math.nan}, "socket_timeout"),
        ({"socket_timeout": "fast"}, "socket_timeout"),
        ({"min_backoff": 9.0, "max_backoff": 3.0}, "min_backoff"),
        ({"backoff_factor": -2.0}, "backoff_factor"),
        ({"worker_pausing_timeout_before_exit": math.inf}, "worker_pausing_timeout_before_exit"),
        ({"periodic_master_check": -1}, "periodic_master_check"),
        ({"sentinels": "localhost:26379"}, "sentinels"),
        ({"sentinels": [("localhost", 0)]}, "sentinels"),
        ({"sentinels": []}, "sentinels"),
        ({"service_name": "two words"}, "service_name"),
        ({"nat": {"nohost": "127.0.0.1:1"}}, "nat"),
        ({"hold_timeout": 0}, "hold_timeout"),
        ({"early_fencing": "yes"}, "early_fencing"),
        ({"startup_fail_fast": 1}, "startup_fail_fast"),
        ({"watch_replicas": "no"}, "watch_replicas"),
        ({"db": -1}, "db"),
        ({"on_pause_timeout": "exit:0"}, "on_pause_timeout"),
        ({"no_such_keyword": 1}, "no_such_keyword"),
        ({"socket_timeout": 1.0, "query_timeout": 1.0}, "query_timeout"),
    ],
)
def test_invalid_values_raise_value_error_naming_the_keyword(keywords, named) -> None:
    with pytest.raises(ValueError, match=f"`{named}`"):
        Sentinel(**keywords)


@pytest.mark.smoke
def test_the_originals_keywords_and_clamped_values_keep_working(caplog) -> None:
    caplog.set_level(logging.INFO, logger="dramatiq_sentinel")
    Sentinel(
        sentinels=[("localhost", 26379), ("127.0.0.1", 26380)],
        sentinel_password="pw",
        socket_timeout=0.05,
        service_name="svc",
        min_backoff=0.0,
        max_backoff=100000.0,
        backoff_factor=0.5,
        periodic_master_check=0.0,
        worker_pausing_timeout_before_exit=10.0,
        nat={"10.0.0.1:6379": "127.0.0.1:6379", ("10.0.0.2", 6379): ("127.0.0.1", 6380)},
    )
    logged = caplog.text
    for keyword in ("min_backoff", "backoff_factor", "periodic_master_check",
                    "worker_pausing_timeout_before_exit"):
        assert f"`{keyword}`" in logged, logged


@pytest.mark.smoke
def test_nothing_starts_at_import_or_in_init() -> None:
    script = textwrap.dedent(
        """
        import os, threading
        before = (threading.active_count(), len(os.listdir("/proc/self/fd")))
        import dramatiq
        from dramatiq.brokers.redis import RedisBroker
        from dramatiq_sentinel.middleware.sentinel import Sentinel
        broker = RedisBroker()
        broker.add_middleware(Sentinel(sentinels=[("127.0.0.1", 1)]))
        @dramatiq.actor(broker=broker)
        def job():
            pass
        after = (threading.active_count(), len(os.listdir("/proc/self/fd")))
        assert after == before, (before, after)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def test_a_forked_child_starts_its_own_supervisor(deployment: Deployment) -> None:
    script = textwrap.dedent(
        f"""
        import os, threading
        import dramatiq
        from dramatiq.brokers.redis import RedisBroker
        from dramatiq_sentinel.middleware.sentinel import Sentinel
        mw = Sentinel(sentinels={deployment.sentinels!r}, service_name={deployment.service!r})
        broker = RedisBroker()
        broker.add_middleware(mw)
        job = dramatiq.actor(lambda: None, actor_name="job", broker=broker)
        job.send()
        assert mw._runtime.started
        pid = os.fork()
        if pid == 0:
            ok = not mw._runtime.started and threading.active_count() == 1
            job.send()  # starts a supervisor of its own
            ok = ok and mw._runtime.started
            mw.shutdown()
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        job.send()
        mw.shutdown()
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert deployment.client(deployment.master()).llen("dramatiq:default") == 3


@pytest.mark.smoke
def test_wrong_sentinel_password_is_a_clear_error(tmp_path) -> None:
    d = Deployment("--sentinel-password", "s3cret")
    try:
        mw = Sentinel(
            sentinels=d.sentinels, service_name=d.service, sentinel_password="wrong",
            startup_timeout=2.0,
        )
        with pytest.raises(SentinelStartError) as raised:
            mw.get_redis_master().ping()
        message = str(raised.value)
        assert "authentication" in message.lower() or "WRONGPASS" in message, message
        for host, port in d.sentinels:
            assert f"{host}:{port}" in message, message
        # With the default startup_timeout (60 s): the start fails as soon as every sentinel
        # refused us (startup_fail_fast); with startup_fail_fast=False it retries until the
        # (here short) startup_timeout.
        mw = Sentinel(sentinels=d.sentinels, service_name=d.service, sentinel_password="wrong")
        began = time.monotonic()
        with pytest.raises(SentinelStartError):
            mw.get_redis_master().ping()
        assert time.monotonic() - began < 30, "startup_fail_fast: not at once"
        mw = Sentinel(sentinels=d.sentinels, service_name=d.service, sentinel_password="wrong",
                      startup_fail_fast=False, startup_timeout=3.0)
        began = time.monotonic()
        with pytest.raises(SentinelStartError):
            mw.get_redis_master().ping()
        assert time.monotonic() - began >= 3.0, "startup_fail_fast=False: retried until the deadline"
        # The same in a dramatiq worker process: it keeps retrying (as the original did)
        # and says why each time, until it is stopped.
        run = Run(d, tmp_path, sentinel_password="wrong", startup_timeout=2.0)
        try:
            run.start_workers(processes=1, threads=1)
            wait_for("the error in the worker's log", lambda: "WRONGPASS" in run.log_text()
                     or "authentication" in run.log_text().lower())
            assert "no sentinel reachable" in run.log_text(), run.log_text()[-2000:]
        finally:
            run.close()
    finally:
        d.close()


@pytest.mark.smoke
def test_status_hooks_and_logging_records(deployment: Deployment, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="dramatiq_sentinel")
    mw = Sentinel(sentinels=deployment.sentinels, service_name=deployment.service)
    calls: list[tuple[str, tuple]] = []
    for name in ("redis_master_switch_detected", "before_redis_connection_reset",
                 "after_redis_connection_reset"):
        mw.subscribe_to_event(name, lambda *a, name=name: calls.append((name, a)))
    with pytest.raises(ValueError, match="event_name"):
        mw.subscribe_to_event("no_such_event", print)
    try:
        master = mw.discover_redis_master()
        assert master is not None and "%s:%d" % master == deployment.master()
        assert mw.switching_master is False
        hosts = wait_for("every host available", lambda: (
            lambda h: h if h["total_hosts"] == "3/3" else None)(mw.get_sentinel_redis_hosts_status()))
        roles = sorted(h["role"] for h in hosts["hosts_status"])
        assert roles == ["master", "replica", "replica"], hosts
        sentinels = wait_for("every sentinel available", lambda: (
            lambda s: s if s["total_sentinels"] == "3/3" else None)(mw.get_sentinels_status()))
        assert sentinels["quorum"]["reachable"] is True, sentinels
        old, new = deployment.failover()
        wait_for("the after-reset hook", lambda: any(c[0] == "after_redis_connection_reset"
                                                      and c[1][1] == new for c in calls))
        detected = [a for n, a in calls if n == "redis_master_switch_detected" and a[1] == new]
        assert detected and detected[0][0] == old, calls
        wait_for("the master in use", lambda: mw.discover_redis_master() == tuple(
            (new.rsplit(":", 1)[0], int(new.rsplit(":", 1)[1]))))
        completed = wait_for("a SwitchCompleted record", lambda: [
            r for r in caplog.records if getattr(r, "sentinel_event", "") == "SwitchCompleted"
            and r.new == new])
        record = completed[0]
        assert record.old == old and record.path in ("early-signal", "event")
        assert record.to_connected_ms > 0 and record.total_ms >= record.to_connected_ms
        # The check of lost writes after the switch: typed fields, not a dump of the event.
        checked = wait_for("the switch's check of lost writes", lambda: [
            r for r in caplog.records
            if getattr(r, "sentinel_event", "") in ("NothingLost", "WritesLost") and r.new == new])
        record = checked[0]
        assert record.sentinel_event == "NothingLost", record.getMessage()
        assert record.old == old and record.levelno == logging.DEBUG
        assert set(record.sentinel_fields) == {"old", "new", "old_offset", "new_offset"}
        assert all(record.sentinel_fields[k] is None or isinstance(record.sentinel_fields[k], int)
                   for k in ("old_offset", "new_offset")), record.sentinel_fields
        assert record.getMessage().startswith("no write lost in the switch ("), record.getMessage()
    finally:
        mw.shutdown()
