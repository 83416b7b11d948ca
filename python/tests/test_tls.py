"""A TLS-only deployment that requires client certificates (the harness's TLS mode): dramatiq
workers and a producer through a graceful failover, and a command in flight on TLS cut by a
switch."""

from __future__ import annotations

import pytest
import redis

from conftest import Run, wait_for
from deployment import Deployment
from dramatiq_sentinel import Failover


def test_graceful_failover_over_tls_with_client_certificates(tls_run_factory) -> None:
    run: Run = tls_run_factory(worker_pausing_timeout_before_exit=120.0)
    run.start_workers(processes=1, threads=4)
    producer = run.producer()
    producer.stream("t", rate=50)
    wait_for("20 runs", lambda: sum(run.runs().values()) >= 20)
    run.deployment.failover()
    count = len(producer.sent)
    wait_for("messages after the failover", lambda: len(producer.sent) > count + 50)
    producer.stop()
    assert not producer.failed, producer.failed[:3]
    run.wait_processed(producer.sent)
    assert run.stop_workers() == [0]
    run.check_exactly_once(producer.sent)
    assert not run.dramatiq_noticed(), run.dramatiq_noticed()
    log = run.log_text()
    assert "switch completed; workers resumed" in log, log[-3000:]
    run.check_redis_clean()


@pytest.mark.smoke
def test_a_tls_command_cut_by_a_switch_fails_as_a_connection_error(
    tls_deployment: Deployment,
) -> None:
    """A switch shuts down a TLS connection with a command in flight: its owner's next read
    fails as a connection error. It was shut down through the `SSLSocket`, which drops the TLS
    object under the owner: a read that had passed its check then raised `ValueError`."""
    failover = Failover(
        sentinels=tls_deployment.sentinels, service_name=tls_deployment.service,
        **tls_deployment.keywords(),
    )
    try:
        client = failover.redis()
        assert client.ping()
        pool = client.connection_pool
        conn = pool.get_connection("BLPOP")  # (redis-py 5 needs a command name)
        try:
            conn.send_command("BLPOP", "nothing-here", 30)
            assert pool.close_stale(conn._generation + 1) == 1  # as a switch does
            tls_socket = conn._sock
            try:
                tls_socket.read(1)  # where the owner's read had passed the TLS object's check
            except ValueError as e:
                raise AssertionError(f"the TLS object was dropped under its owner: {e}") from e
            except OSError:
                pass  # the TLS layer sees the shut-down connection
            try:
                conn.read_response()
            except redis.ConnectionError:
                pass
            else:
                raise AssertionError("the cut command returned")
        finally:
            pool.release(conn)
        assert client.ping()
    finally:
        failover.shutdown()
