"""Failovers with real dramatiq worker processes: every message sent runs exactly once, and
nothing is left in the queues or acknowledgement sets."""

from __future__ import annotations

import pytest

from conftest import Run, wait_for

#: Fast failure detection for the tests; every other setting is the default.
OPTIONS = {"worker_pausing_timeout_before_exit": 120.0}


def started(run: Run, n: int = 20) -> None:
    wait_for(f"{n} runs", lambda: sum(run.runs().values()) >= n)


@pytest.mark.smoke
def test_graceful_failover_under_a_backlog(run_factory) -> None:
    run = run_factory(**OPTIONS)
    producer = run.producer()
    for i in range(600):
        producer.send(f"b-{i}", work_ms=10)
    assert not producer.failed
    run.start_workers(processes=2, threads=4)
    started(run)
    old, new = run.deployment.failover()
    assert new != old
    run.wait_processed(producer.sent)
    assert run.stop_workers() == [0]
    run.check_exactly_once(producer.sent)
    run.check_redis_clean()
    log = run.log_text()
    assert "switch completed; workers resumed" in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def test_graceful_failover_under_a_stream_with_delayed_messages(run_factory) -> None:
    run = run_factory(**OPTIONS)
    run.start_workers(broker_kind="url")
    producer = run.producer(broker_kind="url")
    producer.stream("s", rate=100, delayed_every=10)
    started(run)
    run.deployment.failover()
    wait_for("1 s of messages after the failover", lambda: len(producer.sent) > 300)
    producer.stop()
    assert not producer.failed, producer.failed[:3]
    run.wait_processed(producer.sent)
    assert run.stop_workers() == [0]
    run.check_exactly_once(producer.sent)
    run.check_redis_clean()
