"""The re-application of dramatiq's lost writes (`dramatiq_sentinel._reapply`) against a real
Redis: synthetic lost streams (enqueue, fetch, ack, requeue, nack, maintenance, in MULTI/EXEC
and not), each applied to a "new master" that lacks the writes and to one that already has
them, twice; and the real stream of dramatiq's own dispatch script, read back from the
master's replication backlog with `PSYNC` exactly as the supervisor reads it, whose
re-application must make the new master's dramatiq keys equal the old master's."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker

from conftest import wait_for
from deployment import Deployment
from dramatiq_sentinel import _reapply
from dramatiq_sentinel.lost import LostCommand

pytestmark = pytest.mark.smoke

#: The databases used as the "new master" (the old one is db 0).
NEW_DB = 14
CAUGHT_UP_DB = 15


@pytest.fixture(scope="module")
def master() -> Iterator[tuple[Deployment, str]]:
    d = Deployment()
    try:
        yield d, d.master()
    finally:
        d.close()


@pytest.fixture
def new(master: tuple[Deployment, str]) -> redis.Redis:
    d, addr = master
    host, _, port = addr.rpartition(":")
    client = redis.Redis(host=host, port=int(port), db=NEW_DB)
    client.flushdb()
    return client


def c(*args: Any) -> LostCommand:
    return LostCommand(0, tuple(a if isinstance(a, bytes) else str(a).encode() for a in args))


def tx(*commands: LostCommand) -> list[LostCommand]:
    return [LostCommand(None, (b"MULTI",)), *commands, LostCommand(0, (b"EXEC",))]


def apply(client: redis.Redis, commands: list[LostCommand], ns: str = "dramatiq") -> _reapply.Outcome:
    return _reapply.reapply(commands, client.execute_command, ns, db=0)


def state(client: redis.Redis, ns: str = "dramatiq") -> dict[str, Any]:
    """Every dramatiq key but the bookkeeping ones, by type (lists in order)."""
    out: dict[str, Any] = {}
    for key in client.scan_iter(f"{ns}:*"):
        name = key.decode()
        if name.endswith("__sentinel_settled__"):
            continue
        kind = client.type(key).decode()
        if kind == "list":
            out[name] = client.lrange(key, 0, -1)
        elif kind == "hash":
            out[name] = client.hgetall(key)
        elif kind == "set":
            out[name] = client.smembers(key)
        elif kind == "zset":
            out[name] = dict(client.zrange(key, 0, -1, withscores=True))
    return out


HB = "dramatiq:__heartbeats__"
Q, MSGS = "dramatiq:default", "dramatiq:default.msgs"
ACKS_W, ACKS_V = "dramatiq:__acks__.w.default", "dramatiq:__acks__.v.default"


def enqueue(mid: str, body: str = "body", worker: str = "p") -> list[LostCommand]:
    return tx(c("ZADD", HB, 1000, worker), c("HSET", MSGS, mid, body), c("RPUSH", Q, mid))


def fetch(*mids: str, acks: str = ACKS_W, worker: str = "w") -> list[LostCommand]:
    pops = [x for mid in mids for x in (c("LPOP", Q), c("SADD", acks, mid))]
    return tx(c("ZADD", HB, 1001, worker), *pops)


def ack(mid: str, acks: str = ACKS_W, worker: str = "w") -> list[LostCommand]:
    return tx(c("ZADD", HB, 1002, worker), c("SREM", acks, mid), c("HDEL", MSGS, mid))


def twice(client: redis.Redis, commands: list[LostCommand]) -> dict[str, Any]:
    """Applies `commands`, then again: the second changes nothing. Returns the state."""
    apply(client, commands)
    after = state(client)
    apply(client, commands)
    assert state(client) == after, "a second re-application changed the state"
    return after


def test_a_lost_enqueue_is_restored_once(new: redis.Redis) -> None:
    after = twice(new, enqueue("m1"))
    assert after[Q] == [b"m1"] and after[MSGS] == {b"m1": b"body"}
    assert after[HB] == {b"p": 1000.0}


def test_an_enqueue_that_reached_the_new_master_is_not_pushed_again(new: redis.Redis) -> None:
    new.hset(MSGS, "m1", "body")
    new.rpush(Q, "m1")
    outcome = apply(new, enqueue("m1"))
    assert outcome.ids("present") == ["m1"]
    assert new.lrange(Q, 0, -1) == [b"m1"] and new.hgetall(MSGS) == {b"m1": b"body"}


def test_an_enqueue_fetched_by_another_worker_on_the_new_master_is_left_alone(new: redis.Redis) -> None:
    new.hset(MSGS, "m1", "body")
    new.sadd(ACKS_V, "m1")
    apply(new, enqueue("m1"))
    assert new.llen(Q) == 0 and new.smembers(ACKS_V) == {b"m1"}


def test_a_lost_fetch_moves_the_id_into_the_workers_set(new: redis.Redis) -> None:
    for mid in ("m1", "m2", "m3"):
        new.hset(MSGS, mid, "body")
        new.rpush(Q, mid)
    after = twice(new, fetch("m1", "m2"))
    assert after[Q] == [b"m3"] and after[ACKS_W] == {b"m1", b"m2"}


def test_a_fetch_that_reached_the_new_master_changes_nothing(new: redis.Redis) -> None:
    new.hset(MSGS, "m1", "body")
    new.sadd(ACKS_W, "m1")
    outcome = apply(new, fetch("m1"))
    assert outcome.ids("present") == ["m1"]
    assert new.smembers(ACKS_W) == {b"m1"} and new.llen(Q) == 0


def test_a_fetch_another_worker_made_meanwhile_is_reported(new: redis.Redis, caplog) -> None:
    new.hset(MSGS, "m1", "body")
    new.sadd(ACKS_V, "m1")
    outcome = apply(new, fetch("m1"))
    assert outcome.ids(*_reapply.TROUBLE) == ["m1"]
    assert new.smembers(ACKS_V) == {b"m1"} and not new.exists(ACKS_W)
    caplog.set_level(logging.WARNING, logger="dramatiq_sentinel")
    _reapply.log_outcome(outcome, "old:1", "new:2")
    assert "may run twice" in caplog.text and "m1" in caplog.text


def test_a_lost_ack_removes_the_message_for_good(new: redis.Redis) -> None:
    new.hset(MSGS, "m1", "body")
    new.hset(MSGS, "m2", "other")
    new.sadd(ACKS_W, "m1", "m2")
    after = twice(new, ack("m1"))
    assert after[ACKS_W] == {b"m2"} and after[MSGS] == {b"m2": b"other"}


def test_an_ack_that_reached_the_new_master_changes_nothing(new: redis.Redis) -> None:
    apply(new, fetch("m1") + ack("m1"))  # another process's hand-back of the same loss
    outcome = apply(new, ack("m1"))
    assert outcome.ids("present") == ["m1"]
    assert state(new).keys() == {HB}


def test_an_ack_of_a_message_another_worker_completed_meanwhile_is_reported(new: redis.Redis) -> None:
    # The message was on the new master at the promotion (its enqueue is not in the stream)
    # and is gone now, with no hand-back having settled it: it ran there too.
    outcome = apply(new, ack("m1"))
    assert outcome.ids(*_reapply.TROUBLE) == ["m1"]


def test_a_lost_fetch_and_ack_of_a_queued_message_take_it_out_of_the_queue(new: redis.Redis) -> None:
    new.hset(MSGS, "m1", "body")
    new.rpush(Q, "m1")
    after = twice(new, fetch("m1") + ack("m1"))
    assert set(after) == {HB}, after


def test_enqueue_fetch_and_ack_all_lost_leave_nothing_and_no_later_resurrection(new: redis.Redis) -> None:
    after = twice(new, enqueue("m1") + fetch("m1") + ack("m1"))
    assert set(after) == {HB}, after
    # Another process read the stream earlier (only the enqueue): it must not bring it back.
    apply(new, enqueue("m1"))
    assert not new.exists(Q) and not new.exists(MSGS)


def test_a_message_a_worker_completed_after_its_hand_back_is_not_brought_back(new: redis.Redis) -> None:
    # The worker's hand-back (enqueue by the producer, fetch by the worker, both lost)...
    apply(new, enqueue("m1") + fetch("m1"))
    assert new.smembers(ACKS_W) == {b"m1"} and new.llen(Q) == 0
    # ...then it runs the message and acknowledges it on the new master...
    new.srem(ACKS_W, "m1")
    new.hdel(MSGS, "m1")
    # ...then the producer's hand-back of the same loss, read before the fetch.
    apply(new, enqueue("m1"))
    assert not new.exists(Q) and not new.exists(MSGS) and not new.exists(ACKS_W)


def test_requeue_nack_and_maintenance(new: redis.Redis) -> None:
    xq, xmsgs = "dramatiq:default.XQ", "dramatiq:default.XQ.msgs"
    dead = "dramatiq:__acks__.dead.default"
    for mid in ("r1", "n1", "d1"):
        new.hset(MSGS, mid, f"body-{mid}")
    new.sadd(ACKS_W, "r1", "n1")
    new.sadd(dead, "d1")
    lost = (
        tx(c("ZADD", HB, 1003, "w"), c("SREM", ACKS_W, "r1"), c("RPUSH", Q, "r1"))  # requeue
        + tx(c("ZADD", HB, 1004, "w"), c("SREM", ACKS_W, "n1"), c("ZADD", xq, 1004, "n1"),
             c("HSET", xmsgs, "n1", "body-n1"), c("HDEL", MSGS, "n1"))  # nack
        + tx(c("ZADD", HB, 1005, "v"), c("RPUSH", Q, "d1"), c("DEL", dead),
             c("ZREM", HB, "dead"))  # maintenance: a dead worker's message back in the queue
    )
    after = twice(new, lost)
    assert after[Q] == [b"r1", b"d1"]
    assert after[MSGS] == {b"r1": b"body-r1", b"d1": b"body-d1"}
    assert dead not in after and ACKS_W not in after
    assert after[xq] == {b"n1": 1004.0} and after[xmsgs] == {b"n1": b"body-n1"}


def test_heartbeats_only_move_forward_and_other_commands_are_skipped(new: redis.Redis, caplog) -> None:
    new.zadd(HB, {"w": 5000})
    lost = [c("ZADD", HB, 4000, "w"), c("ZADD", HB, 3000, "v"), c("SET", "app:key", "v"),
            LostCommand(3, (b"RPUSH", Q.encode(), b"x"))]
    outcome = apply(new, lost)
    assert new.zrange(HB, 0, -1, withscores=True) == [(b"v", 3000.0), (b"w", 5000.0)]
    assert [x.args[0] for x in outcome.skipped] == [b"SET", b"RPUSH"]
    assert not new.exists("app:key") and not new.exists(Q)
    caplog.set_level(logging.WARNING, logger="dramatiq_sentinel")
    _reapply.log_outcome(outcome, "old:1", "new:2")
    assert "2 lost command(s) outside dramatiq's writes" in caplog.text


def _read_stream(addr: str, replid: str, start: int, end: int) -> list[LostCommand]:
    """The replication stream between two offsets (`master_repl_offset` before and after),
    read with `PSYNC <replid> <start + 1>` as the supervisor does; `SELECT` tracked as each
    command's `db`, `PING` and `REPLCONF` left out."""
    host, _, port = addr.rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    f = sock.makefile("rb")
    try:
        sock.sendall(f"PSYNC {replid} {start + 1}\r\n".encode())
        line = f.readline()
        assert line.startswith(b"+CONTINUE"), line
        read, db, out = 0, None, []
        while start + read < end:
            header = f.readline()
            read += len(header)
            assert header.startswith(b"*"), header
            args = []
            for _ in range(int(header[1:])):
                size_line = f.readline()
                size = int(size_line[1:])
                data = f.read(size + 2)
                read += len(size_line) + size + 2
                args.append(data[:-2])
            name = args[0].upper()
            if name == b"SELECT":
                db = int(args[1])
            elif name not in (b"PING", b"REPLCONF"):
                out.append(LostCommand(db, tuple(args)))
        return out
    finally:
        f.close()
        sock.close()


def _copy(client: redis.Redis, to_db: int) -> None:
    for key in client.scan_iter("dramatiq:*"):
        client.copy(key, key, destination_db=to_db, replace=True)


def test_dramatiqs_own_stream_read_back_restores_the_old_masters_state(master, new: redis.Redis) -> None:
    """A real dramatiq broker enqueues, fetches and acknowledges on db 0; the new master (db
    14) is a copy of db 0 taken at an offset; what db 0 did after it, read back from the
    backlog, is re-applied to db 14, which must then equal db 0; re-applying it again, or to
    a copy that already had everything (db 15), changes nothing."""
    d, addr = master
    host, _, port = addr.rpartition(":")
    old = redis.Redis(host=host, port=int(port), db=0)
    caught_up = redis.Redis(host=host, port=int(port), db=CAUGHT_UP_DB)
    for client in (old, caught_up):
        client.flushdb()
    broker = RedisBroker(host=host, port=int(port), db=0)
    name = f"q{uuid.uuid4().hex[:6]}"

    @dramatiq.actor(broker=broker, queue_name=name, actor_name=f"job_{name}")
    def job(n: int) -> None:
        pass

    broker.declare_queue(name)
    for n in range(6):
        job.send(n)
    consumer = broker.consume(name, prefetch=4, timeout=100)

    def fetch_one() -> Any:  # a miss returns None (the consumer backs off)
        return wait_for("a message", lambda: next(consumer))

    consumer.ack(fetch_one())  # fetches 4 (0..3), acknowledges 0
    # The promotion: the new master has everything up to here.
    _copy(old, NEW_DB)
    info = old.info("replication")
    replid, start = info["master_replid"], info["master_repl_offset"]
    # What the old master acknowledged after it: enqueues (one delayed), acknowledgements of
    # messages fetched before and after, a nack, a fetch left unacknowledged.
    for n in range(6, 9):
        job.send(n)
    job.send_with_options(args=(99,), delay=60_000)
    consumer.ack(fetch_one())  # 1, fetched before
    consumer.nack(fetch_one())  # 2
    consumer.ack(fetch_one())  # 3
    consumer.ack(fetch_one())  # fetches 4..7, acknowledges 4
    end = old.info("replication")["master_repl_offset"]
    assert end > start
    lost = _read_stream(addr, replid, start, end)
    names = {x.name for x in lost}
    assert {"MULTI", "EXEC", "HSET", "RPUSH", "LPOP", "SADD", "SREM", "HDEL", "ZADD"} <= names, names

    expected = state(old)
    assert state(new) != expected
    _reapply.reapply(lost, new.execute_command, "dramatiq", db=0)
    assert state(new) == expected
    _reapply.reapply(lost, new.execute_command, "dramatiq", db=0)
    assert state(new) == expected
    _copy(old, CAUGHT_UP_DB)
    _reapply.reapply(lost, caught_up.execute_command, "dramatiq", db=0)
    assert state(caught_up) == expected
    consumer.close()
    broker.close()
