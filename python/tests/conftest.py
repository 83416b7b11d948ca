"""Fixtures: a real deployment per test (the Rust harness), real `dramatiq` worker processes,
and an in-process producer using the middleware (a process that only enqueues)."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker

from dramatiq_sentinel.middleware.sentinel import Sentinel
from deployment import Deployment

TESTS = Path(__file__).resolve().parent
#: Generous: the machine is small and shared.
DEADLINE = float(os.environ.get("DS_TEST_DEADLINE", "90"))


def wait_for(what: str, check: Callable[[], Any], timeout: float = DEADLINE) -> Any:
    """Polls `check` until it returns something true; fails naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@pytest.fixture
def deployment() -> Iterator[Deployment]:
    d = Deployment()
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def tls_deployment() -> Iterator[Deployment]:
    """TLS only, client certificates required (the harness's TLS mode)."""
    d = Deployment("--tls")
    try:
        yield d
    finally:
        d.close()


class Producer:
    """A process that only enqueues: a broker with the middleware in this test process."""

    def __init__(self, run: Run, broker_kind: str = "default") -> None:
        self.middleware = Sentinel(
            sentinels=run.sentinels, service_name=run.deployment.service,
            **run.deployment.keywords(), **run.options,
        )
        if broker_kind == "client":
            self.broker = RedisBroker(client=self.middleware.get_redis_master())
        elif broker_kind == "url":
            self.broker = RedisBroker(url="redis://localhost:6379/0")
        else:
            self.broker = RedisBroker()
        self.broker.add_middleware(self.middleware)

        def job(seq: str, work_ms: int = 0) -> None:  # runs in the workers, not here
            raise AssertionError("the producer runs no job")

        self.job = dramatiq.actor(job, actor_name="job", broker=self.broker, max_retries=0)
        self.sent: list[str] = []
        self.failed: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def send(self, seq: str, work_ms: int = 0, delay: int | None = None) -> None:
        try:
            self.job.send_with_options(args=(seq,), kwargs={"work_ms": work_ms}, delay=delay)
            self.sent.append(seq)
        except Exception as e:  # counted: a send that raised may or may not have happened
            self.failed.append((seq, repr(e)))

    def stream(self, prefix: str, rate: float, work_ms: int = 5, delayed_every: int = 0) -> None:
        """Sends `rate` messages per second on a thread until `stop()`; every
        `delayed_every`-th one with a 500 ms delay."""

        def loop() -> None:
            n = 0
            next_at = time.monotonic()
            while not self._stop.is_set():
                n += 1
                delay = 500 if delayed_every and n % delayed_every == 0 else None
                self.send(f"{prefix}-{n}", work_ms, delay)
                next_at += 1.0 / rate
                time.sleep(max(0.0, next_at - time.monotonic()))

        self._thread = threading.Thread(target=loop, name="producer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=DEADLINE)

    def close(self) -> None:
        self.stop()
        self.middleware.shutdown()


class Run:
    """One scenario: the deployment, the app's configuration, worker processes, records."""

    def __init__(
        self,
        deployment: Deployment,
        tmp_path: Path,
        sentinels: list[tuple[str, int]] | None = None,
        **options: Any,
    ) -> None:
        self.deployment = deployment
        #: The sentinels the app is configured with (the deployment's by default).
        self.sentinels = deployment.sentinels if sentinels is None else sentinels
        self.tmp_path = tmp_path
        self.records = tmp_path / "records"
        self.records.mkdir()
        self.options = options
        self.workers: list[subprocess.Popen[bytes]] = []
        self.producers: list[Producer] = []
        self.log = tmp_path / "worker.log"

    def env(self, broker_kind: str) -> dict[str, str]:
        config = {
            "sentinels": self.sentinels,
            "service": self.deployment.service,
            "options": {**self.deployment.keywords(), **self.options},
            "broker": broker_kind,
            "records": str(self.records),
        }
        env = dict(os.environ)
        env["DS_TEST"] = json.dumps(config)
        env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
        return env

    def start_workers(
        self, processes: int = 2, threads: int = 4, broker_kind: str = "default"
    ) -> subprocess.Popen[bytes]:
        log = open(self.log, "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "app.tasks", "--processes", str(processes),
             "--threads", str(threads)],
            env=self.env(broker_kind),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=TESTS,
            start_new_session=True,  # its worker processes can be killed as a group
        )
        log.close()
        self.workers.append(proc)
        return proc

    def producer(self, broker_kind: str = "default") -> Producer:
        p = Producer(self, broker_kind)
        self.producers.append(p)
        return p

    def runs(self) -> collections.Counter[str]:
        counts: collections.Counter[str] = collections.Counter()
        for path in self.records.glob("runs-*.jsonl"):
            for line in path.read_text().splitlines():
                if line.strip():
                    counts[json.loads(line)["seq"]] += 1
        return counts

    def wait_processed(self, seqs: list[str], timeout: float = DEADLINE) -> None:
        wanted = set(seqs)
        try:
            wait_for(
                f"{len(wanted)} messages processed",
                lambda: wanted <= set(self.runs()),
                timeout,
            )
        except AssertionError as e:
            self.dump_stacks()
            missing = sorted(wanted - set(self.runs()))
            raise AssertionError(
                f"{e}: {len(missing)} missing, e.g. {missing[:5]}; {self.redis_summary()}"
            ) from None

    def redis_summary(self) -> str:
        """Each data node's role and dramatiq keys with their sizes (for failure messages)."""
        lines = []
        for addr in self.deployment.nodes:
            try:
                c = self.deployment.client(addr)
                role = c.execute_command("ROLE")[0]
                sizes = {}
                for key in c.scan_iter("dramatiq:*"):
                    kind = c.type(key).decode()
                    size = {"list": c.llen, "hash": c.hlen, "zset": c.zcard,
                            "set": c.scard}.get(kind, lambda k: -1)(key)
                    sizes[key.decode()] = size
                lines.append(f"{addr} {role!r} {sizes}")
            except Exception as err:
                lines.append(f"{addr}: {err!r}")
        return "; ".join(lines)

    def dump_stacks(self) -> None:
        """Every worker process writes its threads' stacks to the worker log (SIGUSR1)."""
        for proc in self.workers:
            found = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
            pids = found.stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGUSR1)
                except OSError:
                    pass
        time.sleep(1)

    def stop_workers(self, timeout: float = 60.0) -> list[int | None]:
        codes = []
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                codes.append(proc.wait(timeout=timeout))
            except subprocess.TimeoutExpired:
                self.dump_stacks()
                os.killpg(proc.pid, signal.SIGKILL)
                codes.append(proc.wait())
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # worker processes left behind, if any
            except ProcessLookupError:
                pass
        return codes

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def dramatiq_noticed(self) -> list[str]:
        """Lines where dramatiq itself noticed trouble: its CRITICAL and ERROR records (a
        consumer's connection error, a failed acknowledgement) and its warnings that a
        post-processing step failed and waits to be retried. A failover must cause none."""
        noticed = []
        for line in self.log_text().splitlines():
            if "] [dramatiq." not in line:
                continue
            if "[CRITICAL]" in line or "[ERROR]" in line or "Failed to" in line:
                noticed.append(line)
        return noticed

    def check_exactly_once(self, sent: list[str], maybe: list[str] = ()) -> None:  # type: ignore[assignment]
        runs = self.runs()
        missing = [s for s in sent if runs[s] == 0]
        twice = {s: n for s, n in runs.items() if n > 1}
        assert not missing, f"{len(missing)} sent messages never ran, e.g. {missing[:5]}"
        assert not twice, f"messages run more than once: {dict(list(twice.items())[:5])}"
        unknown = set(runs) - set(sent) - set(maybe)
        assert not unknown, f"runs of messages never sent: {sorted(unknown)[:5]}"

    def run_times(self) -> dict[str, list[float]]:
        times: dict[str, list[float]] = collections.defaultdict(list)
        for path in self.records.glob("runs-*.jsonl"):
            for line in path.read_text().splitlines():
                if line.strip():
                    record = json.loads(line)
                    times[record["seq"]].append(record["t"])
        return times

    def check_redis_clean(self, killed_at: float | None = None) -> None:
        """Nothing left on the final master: no queue, message hash, delay queue, dead letter
        or acknowledgement set of any broker (only the heartbeats remain).

        With `killed_at` (the master was SIGKILLed then): a message that ran once, started
        before the kill, and is still in an acknowledgement set was acknowledged by the killed
        master, which died before replicating that write (Redis replicates asynchronously; no
        client can prevent it without `WAIT`). Those are tolerated and reported; anything
        else fails."""
        master = self.deployment.master()
        client = self.deployment.client(master)
        times = self.run_times()
        left: dict[str, int] = {}
        members: dict[str, set[str]] = {}
        for key in client.scan_iter("dramatiq:*"):
            name = key.decode()
            if name in ("dramatiq:__heartbeats__", "dramatiq:__sentinel_settled__"):
                continue  # bookkeeping: dramatiq's heartbeats, the ids a hand-back settled
            kind = client.type(key).decode()
            if kind == "hash":
                members[name] = {k.decode() for k in client.hkeys(key)}
            elif kind == "zset":
                members[name] = {m.decode() for m in client.zrange(key, 0, -1)}
            elif kind == "set":
                members[name] = {m.decode() for m in client.smembers(key)}
            size = {"list": client.llen, "hash": client.hlen, "zset": client.zcard,
                    "set": client.scard}.get(kind, lambda k: -1)(key)
            if size:
                left[name] = size
        if not left:
            return
        described = []
        excused: set[str] = set()
        for name in left:
            if not name.endswith(".msgs"):
                continue
            for mid, body in client.hgetall(name).items():
                args = json.loads(body).get("args")
                seq = args[0] if args else None
                ran = times.get(seq, [])
                described.append(f"{mid.decode()}: args {args}, ran {len(ran)}x")
                if killed_at is not None and len(ran) == 1 and ran[0] < killed_at:
                    excused.add(mid.decode())
        unexplained = {
            name: size
            for name, size in left.items()
            if not (name.endswith(".msgs") or "__acks__" in name) or not members.get(name, set()) <= excused
        }
        if unexplained or not excused:
            raise AssertionError(f"left on the master {master}: {left}; {described[:5]}")
        print(f"acknowledged by the killed master, not replicated: {sorted(excused)} ({described})")

    def close(self) -> None:
        for p in self.producers:
            p.close()
        self.stop_workers(timeout=30)


def _runs(deployment: Deployment, tmp_path: Path) -> Iterator[Callable[..., Run]]:
    runs: list[Run] = []

    def make(**options: Any) -> Run:
        r = Run(deployment, tmp_path, **options)
        runs.append(r)
        return r

    try:
        yield make
    finally:
        for r in runs:
            r.close()


@pytest.fixture
def run_factory(deployment: Deployment, tmp_path: Path) -> Iterator[Callable[..., Run]]:
    yield from _runs(deployment, tmp_path)


@pytest.fixture
def tls_run_factory(tls_deployment: Deployment, tmp_path: Path) -> Iterator[Callable[..., Run]]:
    yield from _runs(tls_deployment, tmp_path)
