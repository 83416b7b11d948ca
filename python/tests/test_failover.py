"""Failovers with real dramatiq worker processes: every message sent runs exactly once, and
nothing is left in the queues or acknowledgement sets."""

from __future__ import annotations

import time

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
    assert "worker threads paused" not in log, "no drain by default: " + log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert not run.dramatiq_noticed(), run.dramatiq_noticed()


def test_graceful_failover_with_the_drain(run_factory) -> None:
    """`drain=True` (opt-in): the worker threads are paused at the switch, once the jobs in
    flight finished, and resumed on the new master; without it they never are (above)."""
    run = run_factory(drain=True, **OPTIONS)
    producer = run.producer()
    for i in range(300):
        producer.send(f"d-{i}", work_ms=10)
    assert not producer.failed
    run.start_workers(processes=1, threads=4)
    started(run)
    run.deployment.failover()
    run.wait_processed(producer.sent)
    assert run.stop_workers() == [0]
    run.check_exactly_once(producer.sent)
    run.check_redis_clean()
    log = run.log_text()
    assert "worker threads paused" in log, log[-3000:]
    assert "switch completed; workers resumed" in log, log[-3000:]


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
    assert not run.dramatiq_noticed(), run.dramatiq_noticed()
    run.check_redis_clean()


@pytest.mark.smoke
def test_master_killed(run_factory) -> None:
    run = run_factory(**OPTIONS)
    run.start_workers(broker_kind="client")
    producer = run.producer(broker_kind="client")
    producer.stream("k", rate=100)
    started(run)
    run.deployment.wait_replicated()
    killed = run.deployment.cmd("kill-master")["killed"]
    killed_at = time.time()
    new = run.deployment.cmd(f"wait-new-master {killed}")["master"]
    assert new != killed
    count = len(producer.sent)
    wait_for("1 s of messages after the failover", lambda: len(producer.sent) > count + 100)
    producer.stop()
    # A send in flight when the master died may have run there or not: it may be missing
    # (the dead master took it) but never run twice.
    maybe = [seq for seq, _ in producer.failed]
    run.wait_processed(producer.sent)
    assert run.stop_workers() == [0]
    run.check_exactly_once(producer.sent, maybe)
    # dramatiq never noticed: the fetches and acknowledgements the kill cut were sent again
    # on the new master (no consumer restart, no acknowledgement waiting 5 s to be retried).
    assert not run.dramatiq_noticed(), run.dramatiq_noticed()
    run.deployment.cmd(f"revive {killed}")
    run.check_redis_clean(killed_at=killed_at)


def test_master_frozen_then_thawed(run_factory) -> None:
    run = run_factory(**OPTIONS)
    run.start_workers()
    producer = run.producer()
    producer.stream("f", rate=100)
    started(run)
    run.deployment.wait_replicated()
    frozen = run.deployment.cmd("freeze-master")["frozen"]
    new = run.deployment.cmd(f"wait-new-master {frozen}")["master"]
    assert new != frozen
    count = len(producer.sent)
    wait_for("1 s of messages after the failover", lambda: len(producer.sent) > count + 100)
    run.deployment.cmd(f"thaw {frozen}")
    producer.stop()
    maybe = [seq for seq, _ in producer.failed]
    run.wait_processed(producer.sent)
    assert run.stop_workers() == [0]
    run.check_exactly_once(producer.sent, maybe)
    assert not run.dramatiq_noticed(), run.dramatiq_noticed()
    run.check_redis_clean()


@pytest.mark.smoke
def test_producer_only_process_enqueues_through_a_failover(run_factory) -> None:
    run = run_factory(**OPTIONS)
    producer = run.producer()
    producer.stream("p", rate=100, delayed_every=7)
    wait_for("messages sent", lambda: len(producer.sent) > 50)
    old, new = run.deployment.failover()
    count = len(producer.sent)
    wait_for("1 s of messages after the failover", lambda: len(producer.sent) > count + 100)
    producer.stop()
    assert not producer.failed, producer.failed[:3]
    host, port = producer.middleware._runtime.current_master() or ("", 0)
    assert f"{host}:{port}" == new
    run.start_workers()
    run.wait_processed(producer.sent)
    assert run.stop_workers() == [0]
    run.check_exactly_once(producer.sent)
    run.check_redis_clean()


def test_sentinels_down_and_back(run_factory) -> None:
    """Two sentinels stopped, then started again and a failover at once: no wait for the
    listeners (a listener reconnects at once, and a failover led by a sentinel whose listener
    is not back yet is fenced by the replica watches and its lost writes re-applied). One
    worker process: with two, a fence that comes late on a loaded machine can let a message
    run twice (test_leader_unheard.py)."""
    run = run_factory(min_backoff=0.2, max_backoff=1.0, **OPTIONS)
    run.start_workers(processes=1)
    producer = run.producer()
    producer.stream("d", rate=50)
    started(run)
    run.deployment.cmd("stop-sentinel 0")
    run.deployment.cmd("stop-sentinel 1")
    count = len(producer.sent)
    wait_for("messages sent with two sentinels down", lambda: len(producer.sent) > count + 50)
    run.deployment.cmd("start-sentinel 0")
    run.deployment.cmd("start-sentinel 1")
    run.deployment.cmd("wait-healthy")
    run.deployment.failover()
    count = len(producer.sent)
    wait_for("messages after the failover", lambda: len(producer.sent) > count + 50)
    producer.stop()
    assert not producer.failed, producer.failed[:3]
    run.wait_processed(producer.sent)
    assert run.stop_workers() == [0]
    run.check_exactly_once(producer.sent)
    run.check_redis_clean()
    log = run.log_text()
    assert "listener down" in log and "switch completed; workers resumed" in log
