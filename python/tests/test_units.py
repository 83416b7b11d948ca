"""The Python side's own mechanics, without Redis: the event and switch threads survive
errors, the pools registry under concurrent use, an abort that reads the socket once, the
retry policy's table, and the client certificate's temporary files."""

from __future__ import annotations

import gc
import logging
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from dramatiq_sentinel import _runtime
from dramatiq_sentinel._connection import FencedConnection
from dramatiq_sentinel._pool import FencedConnectionPool
import redis

from dramatiq_sentinel import _reapply
from dramatiq_sentinel._policy import DRAMATIQ_COMMANDS, DRAMATIQ_RESEND, RetryPolicy
from dramatiq_sentinel._settings import Settings

pytestmark = pytest.mark.smoke


def _runtime_for_test(on_event: Any = None) -> _runtime.Runtime:
    settings = Settings({"sentinels": [("127.0.0.1", 1)], "service_name": "svc"})
    return _runtime.Runtime(settings, on_event or (lambda event: None))


def _event(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "level": "INFO", "message": name, "fields": fields}


class FakeNative:
    """The native supervisor's event and activation calls, scripted."""

    def __init__(self, events: list[dict[str, Any]], activations: list[int]) -> None:
        self.events = list(events)
        self.activations = list(activations)
        self.count = 0

    def next_event(self, timeout: float) -> dict[str, Any] | None:
        return self.events.pop(0) if self.events else None

    def dropped_events(self) -> int:
        return 0

    def is_stopped(self) -> bool:
        return not self.events and not self.activations

    def wait_activation(self, seen: int, timeout: float) -> int:
        if self.activations:
            self.count = self.activations.pop(0)
        return self.count

    def generation(self) -> int:
        return self.count


def test_the_event_thread_survives_failing_hooks_and_handlers(caplog) -> None:
    """A hook that raises, and an event whose handling raises, are logged; the events after
    them are still handled (one exception ended the thread for good)."""
    seen: list[str] = []

    def hook(event: dict[str, Any]) -> None:
        seen.append(event["name"])
        if event["name"] == "SwitchDetected":
            raise RuntimeError("a user's hook failed")

    runtime = _runtime_for_test(hook)
    broken = _event("AfterReset")
    broken["fields"] = None  # handling it raises (no fields)
    native = FakeNative(
        [_event("SwitchDetected"), broken, _event("AfterReset", new="h:1"), _event("Ready")], []
    )
    with caplog.at_level(logging.ERROR, logger="dramatiq_sentinel"):
        runtime._pump_events(native, threading.Event())
    assert seen == ["SwitchDetected", "AfterReset", "Ready"]
    assert "an event hook failed" in caplog.text
    assert "handling a supervisor event failed" in caplog.text


def test_the_switch_thread_survives_a_failing_pool(caplog) -> None:
    """A pool whose closing raises is logged; the other pools are still closed, and at the
    next activation again."""
    runtime = _runtime_for_test()
    closed: list[tuple[str, int]] = []

    class Pool:
        def __init__(self, name: str, fails: bool) -> None:
            self.name, self.fails = name, fails

        def close_stale(self, generation: int) -> int:
            if self.fails:
                raise RuntimeError("boom")
            closed.append((self.name, generation))
            return 0

    pools = [Pool("bad", True), Pool("good", False)]
    for pool in pools:
        runtime.add_pool(pool)
    with caplog.at_level(logging.ERROR, logger="dramatiq_sentinel"):
        runtime._watch_switches(FakeNative([], [1, 1, 2]), threading.Event())
    assert closed == [("good", 1), ("good", 2)]
    assert "boom" in caplog.text


def test_pools_can_be_added_while_the_switch_thread_closes_them() -> None:
    """Pools created on other threads while a switch closes connections (iterating a WeakSet
    another thread adds to raised "Set changed size during iteration")."""
    runtime = _runtime_for_test()
    errors: list[BaseException] = []
    stop = threading.Event()

    class Pool:
        def close_stale(self, generation: int) -> int:
            return 0

    keep = [Pool() for _ in range(2000)]
    for pool in keep:
        runtime.add_pool(pool)

    def add() -> None:
        while not stop.is_set() and len(keep) < 20_000:
            pool = Pool()
            keep.append(pool)
            runtime.add_pool(pool)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # thread switches inside the iteration, as under load
    adder = threading.Thread(target=add)
    adder.start()
    try:
        for _ in range(100):
            try:
                runtime.close_stale(1)
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
    finally:
        stop.set()
        adder.join()
        sys.setswitchinterval(interval)
    assert not errors, errors[:1]


def test_an_abort_reads_the_socket_once() -> None:
    """The connection's socket is read once: if its owner reconnected to the new master in
    between (the socket changed), the fresh socket is left alone (it was read twice, and the
    second read could shut the new master's connection down)."""
    runtime = _runtime_for_test()
    pool = FencedConnectionPool(runtime)
    old_a, old_b = socket.socketpair()
    new_a, new_b = socket.socketpair()
    reads = iter([old_a, new_a, new_a, new_a])

    class Racing(FencedConnection):
        @property
        def _sock(self) -> Any:  # the owner reconnects right after the first read
            return next(reads)

        @_sock.setter
        def _sock(self, value: Any) -> None:
            pass

    conn = Racing(fence=pool.fence)
    conn._generation = 1
    pool._in_use_connections.add(conn)
    try:
        assert pool.close_stale(2) == 1
        new_b.sendall(b"x")
        assert new_a.recv(1) == b"x", "the fresh socket still works"
        assert old_b.recv(1) == b"", "the old one was shut down"
    finally:
        pool._in_use_connections.discard(conn)
        for s in (old_a, old_b, new_a, new_b):
            s.close()


def test_the_retry_table() -> None:
    """Which commands a failover cut after they were written are sent again: dramatiq's
    idempotent Lua commands and read-only commands, never an enqueue or a plain write."""
    policy = RetryPolicy()
    policy.add_script("abc", DRAMATIQ_COMMANDS)

    def dispatch(command: str) -> tuple[Any, ...]:
        return ("EVALSHA", "abc", 1, "dramatiq", command, 1700000000000, "default")

    for command in ("fetch", "ack", "nack", "requeue", "purge", "qsize"):
        assert policy.safe_when_sent(dispatch(command)), command
    assert not policy.safe_when_sent(dispatch("enqueue"))
    assert not policy.safe_when_sent(dispatch("no-such-command"))
    assert not policy.safe_when_sent(("EVALSHA", "other", 1, "dramatiq", "fetch"))
    assert policy.safe_when_sent((b"GET", b"k"))
    assert policy.safe_when_sent(("SCRIPT", "LOAD", "return 1"))
    assert not policy.safe_when_sent(("INCR", "k"))
    assert not policy.safe_when_sent(None)
    # Pipelines: safe when every command is (a transaction's MULTI and EXEC included).
    assert policy.safe_when_sent((("MULTI",), ("EXISTS", "k"), ("GET", "k"), ("EXEC",)))
    assert not policy.safe_when_sent((("MULTI",), ("GET", "k"), ("RPUSH", "q", "x"), ("EXEC",)))
    custom = RetryPolicy(lambda args: args[0] == "SET")
    assert custom.safe_when_sent(("SET", "k", "v"))


def test_client_key_files_are_removed_and_paths_used_in_place(tmp_path: Path) -> None:
    """PEM bytes for the client certificate go to private temporary files that are removed
    with the settings (they were never removed); files given by path are used in place."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=test"],
        check=True, capture_output=True,
    )
    pems = [cert.read_bytes(), key.read_bytes()]
    settings = Settings(
        {"sentinels": [("127.0.0.1", 1)], "tls": True, "tls_client_cert": pems[0],
         "tls_client_key": pems[1]}
    )
    paths = [settings.ssl_kwargs["ssl_certfile"], settings.ssl_kwargs["ssl_keyfile"]]
    assert [Path(p).read_bytes() for p in paths] == pems
    assert os.stat(paths[1]).st_mode & 0o077 == 0, "private"
    del settings
    gc.collect()
    assert not any(os.path.exists(p) for p in paths), paths

    given = Settings(
        {"sentinels": [("127.0.0.1", 1)], "tls": True, "tls_client_cert": str(cert),
         "tls_client_key": key}
    )
    assert (given.ssl_kwargs["ssl_certfile"], given.ssl_kwargs["ssl_keyfile"]) == (
        str(cert), str(key))


def test_keyword_kinds_come_from_the_rust_settings_table() -> None:
    """The lists of keywords by kind are the extension's settings table, and every setting of
    it is handled by one of them or by a keyword of its own."""
    from dramatiq_sentinel import _native, _settings

    table = dict(_native.settings())
    assert set(table) == _settings.DURATIONS | _settings.BOOLEANS | _settings.INTEGERS | (
        _settings.SPECIAL & set(table)
    )
    assert _settings.OPTIONAL_DURATIONS <= _settings.DURATIONS
    assert {"command_timeout", "hold_timeout", "query_timeout"} <= _settings.DURATIONS
    assert {"tls", "drain"} <= _settings.BOOLEANS
    assert {"db", "max_sentinels", "jitter_seed"} <= _settings.INTEGERS
    base = {"sentinels": [("127.0.0.1", 1)], "service_name": "svc"}
    for name in sorted(_settings.DURATIONS):
        Settings({**base, name: 4.0})  # accepted by the Rust configuration as seconds
    for name in sorted(_settings.OPTIONAL_DURATIONS):
        Settings({**base, name: None})
    for name in sorted(_settings.BOOLEANS):
        Settings({**base, name: False})
    for name in sorted(_settings.INTEGERS):
        Settings({**base, name: 7})


class ScriptedFence:
    """What a connection asks the supervisor after a cut, scripted: the master and generation
    after the switch, and what the switch's lost-write check says about the old master."""

    def __init__(self, generation: int, check: str) -> None:
        self.policy = RetryPolicy()
        self.policy.add_script("abc", DRAMATIQ_COMMANDS, DRAMATIQ_RESEND)
        self.hold = 5.0
        self.after = generation
        self.check = check
        self.asked: list[tuple[str, int]] = []

    def generation(self) -> int:
        return self.after

    def wait_master(self, probe: bool, deadline: float) -> tuple[str, int, int]:
        return ("127.0.0.1", 7001, self.after)

    def wait_check(self, old: tuple[str, int], seconds: float) -> str:
        self.asked.append(old)
        return self.check if old == ("127.0.0.1", 7000) else "not-heard"

    def wait_switch(self, seconds: float) -> None:
        pass

    def report(self, address: Any, kind: str) -> None:
        pass

    def note_retry(self, error: BaseException, conn: Any) -> None:
        pass


ENQUEUE = ("EVALSHA", "abc", 1, "ns", "enqueue", 1700000000000, "default", "w", 60000,
           604800000, "0", 7999, "mid-1", b"body")


def _cut_then_sent(fence: ScriptedFence, command: tuple[Any, ...] = ENQUEUE) -> Any:
    """Runs `command` through a connection's retry: the first send is cut after it was written
    (on the master 127.0.0.1:7000, generation 1); returns what the second send would write
    instead of the command (its idempotent form), or raises the cut."""
    conn = FencedConnection(fence=fence)
    conn.host, conn.port, conn._generation = "127.0.0.1", 7000, 1
    sends: list[Any] = []

    def do() -> Any:
        sends.append(conn._resend)
        if len(sends) == 1:
            conn._sent, conn._last = True, command
            raise redis.exceptions.ConnectionError("cut by the switch")
        return sends[-1]

    try:
        return conn.retry.call_with_retry(do, lambda error: None)
    finally:
        assert conn._resend is None, "never carried over to the next command"


@pytest.mark.parametrize("check", ["not-heard", "unknown"])
def test_a_cut_enqueue_is_raised_unless_the_switch_heard_the_old_master(check: str) -> None:
    """The old master killed or frozen (its check did not hear it, or did not report within
    the command's deadline): the enqueue may have run there and been lost, or be read by no
    one; it is raised as before."""
    fence = ScriptedFence(generation=2, check=check)
    with pytest.raises(redis.exceptions.ConnectionError):
        _cut_then_sent(fence)
    assert fence.asked == [("127.0.0.1", 7000)]


def test_a_cut_enqueue_is_sent_again_idempotently_when_the_switch_heard_the_old_master() -> None:
    """The switch away from the master it was sent to heard that master answer after the
    promotion (`NothingLost` with it answering, or `WritesLost` read back): sent again, as the
    script that pushes it only if it is neither settled nor on the new master."""
    form = _cut_then_sent(ScriptedFence(generation=2, check="heard"))
    assert form[:3] == ("EVAL", _reapply.RESEND_ENQUEUE, 3)
    assert form[3:8] == (b"ns:__sentinel_settled__", b"ns:default.msgs", b"ns:default",
                         b"mid-1", b"body")
    # Cut again on its way: the form itself is idempotent.
    assert RetryPolicy().safe_when_sent(form)


def test_a_cut_enqueue_without_a_switch_is_raised() -> None:
    """Cut with no switch since it was sent (the same generation): no check speaks for it."""
    fence = ScriptedFence(generation=1, check="heard")
    with pytest.raises(redis.exceptions.ConnectionError):
        _cut_then_sent(fence)
    assert fence.asked == []


def test_only_an_enqueue_has_an_idempotent_form() -> None:
    fence = ScriptedFence(generation=2, check="heard")
    with pytest.raises(redis.exceptions.ConnectionError):
        _cut_then_sent(fence, ("INCR", "k"))
    assert fence.policy.resend_when_cut(ENQUEUE[:4] + ("fetch",) + ENQUEUE[5:]) is None
    assert fence.policy.resend_when_cut((ENQUEUE, ENQUEUE)) is None  # a pipeline
