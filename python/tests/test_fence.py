"""The fence at every send, pinned connections, the command deadline, and the pool's set-up
(credentials from the broker URL, a failed start, blocking pools), on real deployments."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from dramatiq.brokers.redis import RedisBroker

from conftest import wait_for
from deployment import Deployment
from dramatiq_sentinel import Failover, SentinelStartError
from dramatiq_sentinel import _runtime
from dramatiq_sentinel.middleware.sentinel import Sentinel


def _port(client: redis.Redis) -> int:
    """The port of the server that answered (`CONFIG GET port`)."""
    reply = client.execute_command("CONFIG", "GET", "port")
    values = list(reply.values()) if isinstance(reply, dict) else reply[1::2]
    value = values[0]
    return int(value.decode() if isinstance(value, bytes) else value)


def _fence_observed(deployment: Deployment, failover: Failover) -> str:
    """Starts a graceful failover and returns (the old master) once commands are held, so
    the caller sends inside the fence; tries again (the other way) if the switch completed
    before this thread saw the fence."""
    for _ in range(3):
        deployment.wait_replicated()
        old = str(deployment.cmd("failover")["old"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if failover.is_held():
                return old
            if failover.master() is not None and "%s:%d" % failover.master() != old:
                break  # switched before the fence was seen
        deployment.cmd(f"wait-new-master {old}")
    raise AssertionError("never saw the fence of a graceful failover in three tries")


@pytest.mark.smoke
def test_pinned_connections_are_fenced_at_send(deployment: Deployment) -> None:
    """A single-connection client, a pipeline watching keys and a PubSub keep their
    connection outside the pool's checkout: a command sent on them while the supervisor holds
    commands waits and goes to the new master (never to the deposed one, which still takes
    writes for seconds); the watch raises WatchError (it cannot move); the PubSub subscribes
    again on the new master."""
    failover = Failover(sentinels=deployment.sentinels, service_name=deployment.service)
    try:
        r = failover.redis()
        single = failover.redis(single_connection_client=True)
        assert _port(single) == int(deployment.master().rsplit(":", 1)[1])
        pipe = r.pipeline()
        pipe.watch("watched")
        pubsub = r.pubsub()
        pubsub.subscribe("news")
        wait_for("the subscription", lambda: pubsub.get_message(timeout=0.1))

        old = _fence_observed(deployment, failover)
        # Inside the fence: held, then sent to the new master.
        port = _port(single)
        new = str(deployment.cmd(f"wait-new-master {old}")["master"])
        assert port == int(new.rsplit(":", 1)[1]), f"sent to {port}, old {old}, new {new}"
        with pytest.raises(redis.WatchError):
            pipe.get("watched")
        pipe.reset()

        publisher = deployment.client(new)

        def delivered() -> bool:
            publisher.publish("news", "hello")
            message = pubsub.get_message(timeout=0.2)
            return bool(message and message["type"] == "message")

        wait_for("a message published on the new master", delivered)
        pubsub.close()
        single.close()
    finally:
        failover.shutdown()


@pytest.mark.smoke
def test_hold_timeout_bounds_the_whole_command() -> None:
    """The master freezes and no failover comes (down-after 60 s): a command that may be sent
    again (a read) is sent again within `hold_timeout` from its start, then raised, however
    many retries redis-py's own policy would make (`RedisBroker()`'s client carries redis-py's
    default `Retry`: 3 retries on redis-py 6 and 7, 10 on 8, each of which waited in the hold
    again)."""
    deployment = Deployment("--down-after-ms", "60000")
    try:
        mw = Sentinel(
            sentinels=deployment.sentinels, service_name=deployment.service, hold_timeout=1.0,
        )
        broker = RedisBroker(socket_timeout=0.3)
        broker.add_middleware(mw)
        mw.after_declare_queue(broker, "default")
        client = broker.client
        client.set("key", "value")
        deployment.cmd("freeze-master")
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError):
            client.get("key")
        waited = time.monotonic() - started
        assert 0.9 <= waited < 4.0, f"waited {waited:.1f} s for a 1 s hold"
        mw.shutdown()
    finally:
        deployment.close()


@pytest.mark.smoke
def test_password_in_the_broker_url_reaches_the_supervisor() -> None:
    """Data nodes with a password given only in the broker's URL: the supervisor verifies
    masters with it too (it failed with NOAUTH)."""
    deployment = Deployment("--data-password", "s3cret")
    try:
        mw = Sentinel(sentinels=deployment.sentinels, service_name=deployment.service)
        broker = RedisBroker(url="redis://:s3cret@localhost:6379/0")
        broker.add_middleware(mw)
        mw.after_declare_queue(broker, "default")
        assert broker.client.incr("counter") == 1
        old, new = deployment.failover()
        assert broker.client.incr("counter") == 2
        assert mw.discover_redis_master() == ("127.0.0.1", int(new.rsplit(":", 1)[1]))
        mw.shutdown()
    finally:
        deployment.close()


@pytest.mark.smoke
def test_a_failed_start_is_remembered(monkeypatch) -> None:
    """No sentinel answers: threads that need the supervisor at the same time get the start's
    error after one attempt, not one full `startup_timeout` each in turn."""
    starts = []
    real = _runtime._native.Supervisor

    class Counting:
        @staticmethod
        def start(*args, **kwargs):  # noqa: ANN001, ANN205
            starts.append(time.monotonic())
            return real.start(*args, **kwargs)

    monkeypatch.setattr(_runtime._native, "Supervisor", Counting)
    failover = Failover(sentinels=[("127.0.0.1", 1)], service_name="svc", startup_timeout=0.5)
    client = failover.redis()
    errors: list[BaseException] = []

    def command() -> None:
        try:
            client.ping()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=command) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(errors) == 4 and all(isinstance(e, SentinelStartError) for e in errors), errors
    assert len(starts) == 1, f"{len(starts)} start attempts"


@pytest.mark.smoke
def test_a_blocking_pool_stays_blocking() -> None:
    """`RedisBroker(client=Redis(connection_pool=BlockingConnectionPool(...)))`: the pool the
    middleware installs blocks as the user's did, with its size and timeout."""
    pool = redis.BlockingConnectionPool(max_connections=3, timeout=7)
    broker = RedisBroker(client=redis.Redis(connection_pool=pool))
    mw = Sentinel(sentinels=[("127.0.0.1", 1)], service_name="svc")
    broker.add_middleware(mw)
    mw.after_declare_queue(broker, "default")
    ours = broker.client.connection_pool
    assert ours is not pool
    assert isinstance(ours, redis.BlockingConnectionPool)
    assert (ours.max_connections, ours.timeout) == (3, 7)
