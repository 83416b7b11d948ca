"""The dramatiq workload through a failover, with this package and with plain dramatiq on
redis-py's `Sentinel.master_for` (what users do without a middleware); the method of
`failover-bench` (BENCHMARKS.md), on real deployments started by the project's harness
(`redis-deployment`).

Per run: a fresh deployment (3 data nodes, 3 sentinels, down-after 1000 ms), an independent
observer (`PSUBSCRIBE *` on every sentinel; on every replica a probe that tries an `RPUSH`
every 1 ms until one succeeds: the candidate became writable), for the `backlog` workload a
backlog of 2,000 messages of 10 ms, then one `dramatiq` worker process with 4 threads and a
producer of 100 messages/s in this process (a producer-only process, through the same kind of
client as the worker); 3 s later the scenario (graceful `SENTINEL FAILOVER`, `SIGKILL` of the
master, or `SIGSTOP` for 3 s); production stops 15 s after the trigger and the queue is drained
(60 s at most).

Figures: messages produced (sends that returned), lost (produced, never started), run twice
(started more than once), send errors (sends that raised), errors dramatiq logged (its
CRITICAL and ERROR records in the worker, and its "Failed to ..." warnings that retry a step
after 5 s), processing gap (longest time without a job start from 1 s before the trigger
until production stopped), candidate writable -> first message processed (the first job start
after the observer saw the candidate writable), candidate writable -> workers resumed and
first sentinel signal -> workers resumed ("resumed": ours, the supervisor's `SwitchCompleted`;
plain, the worker's first connection to the new master).

    python python/bench/dramatiq_failover_bench.py [--reps N] [--scenarios graceful,kill,freeze]
        [--workloads stream,backlog] [--variants ours,plain]

Needs the package installed (an optimised build: `maturin develop --release`), dramatiq,
redis-py, and the harness command (`DRAMATIQ_SENTINEL_DEPLOYMENT`, else built with cargo).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import dramatiq
import redis
import redis.sentinel
from dramatiq.brokers.redis import RedisBroker

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from deployment import Deployment  # noqa: E402

FAILOVER_CHANNELS = {
    "+odown", "+new-epoch", "+try-failover", "+vote-for-leader", "+elected-leader",
    "+failover-state-select-slave", "+selected-slave", "+failover-state-send-slaveof-noone",
    "+failover-state-wait-promotion", "+promoted-slave", "+failover-state-reconf-slaves",
    "+switch-master",
}
BACKLOG, RATE, JOB_MS, THREADS = 2000, 100, 10, 4


class Observer:
    """Sentinel messages and the first successful write on each replica, timestamped."""

    def __init__(self, d: Deployment, master: str) -> None:
        self.signals: list[tuple[float, str, str]] = []
        self.writable: list[tuple[float, str]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._listen, args=(s,), daemon=True)
                        for s in d.sentinels]
        self.threads += [threading.Thread(target=self._probe, args=(d, n), daemon=True)
                         for n in d.service_nodes if n != master]
        for t in self.threads:
            t.start()

    def _listen(self, sentinel: tuple[str, int]) -> None:
        pubsub = redis.Redis(*sentinel, socket_timeout=2).pubsub()
        pubsub.psubscribe("*")
        while not self.stop.is_set():
            try:
                m = pubsub.get_message(timeout=0.1)
            except redis.RedisError:
                continue
            if m and m["type"] == "pmessage":
                self.signals.append((time.monotonic(), m["channel"].decode(), m["data"].decode()))

    def _probe(self, d: Deployment, node: str) -> None:
        client = d.client(node)
        while not self.stop.is_set():
            try:
                client.rpush("bench:probe", "marker")
                self.writable.append((time.monotonic(), node))
                return
            except redis.RedisError:
                time.sleep(0.001)

    def first_signal(self, t0: float) -> float | None:
        ts = [t for t, ch, data in self.signals if t >= t0 and (
            ch in FAILOVER_CHANNELS or (ch == "+sdown" and data.startswith("master ")))]
        return min(ts, default=None)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=5)


def producer_broker(variant: str, d: Deployment) -> tuple[RedisBroker, Any]:
    if variant == "ours":
        from dramatiq_sentinel.middleware.sentinel import Sentinel

        mw = Sentinel(sentinels=d.sentinels, service_name=d.service)
        broker = RedisBroker()
        broker.add_middleware(mw)
        return broker, mw
    client = redis.sentinel.Sentinel(d.sentinels, socket_timeout=0.5).master_for(
        d.service, socket_timeout=0.5)
    return RedisBroker(client=client), None


def read(out: Path, prefix: str) -> list[tuple[str, float]]:
    rows = []
    for path in out.glob(f"{prefix}-*"):
        for line in path.read_text().splitlines():
            key, t = line.rsplit(" ", 1)
            rows.append((key, float(t)))
    return rows


def dramatiq_errors(log: Path) -> int:
    """dramatiq's own CRITICAL/ERROR records and its "Failed to ..." warnings in the log."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return sum(
        1 for line in text.splitlines()
        if "] [dramatiq." in line and ("[CRITICAL]" in line or "[ERROR]" in line or "Failed to" in line)
    )


def run_once(variant: str, scenario: str, workload: str) -> dict[str, Any]:
    d = Deployment("--down-after-ms", "1000")
    out = Path(tempfile.mkdtemp(prefix="dramatiq-bench-"))
    worker = None
    mw = None
    try:
        master = d.master()
        observer = Observer(d, master)
        broker, mw = producer_broker(variant, d)
        job = dramatiq.actor(lambda seq, work_ms=JOB_MS: None, actor_name="job", broker=broker,
                             max_retries=0)
        sent: list[str] = []
        for i in range(BACKLOG if workload == "backlog" else 0):
            job.send(f"b-{i}")
            sent.append(f"b-{i}")
        d.wait_replicated()
        env = {**os.environ, "PYTHONPATH": str(HERE), "DS_BENCH": json.dumps({
            "variant": variant, "sentinels": d.sentinels, "service": d.service, "out": str(out)})}
        worker = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "app", "--processes", "1", "--threads",
             str(THREADS)], env=env, cwd=HERE, stdout=open(out / "worker.log", "wb"),
            stderr=subprocess.STDOUT, start_new_session=True)
        stop = threading.Event()
        failed: list[str] = []

        def produce() -> None:
            n, next_at = 0, time.monotonic()
            while not stop.is_set():
                n += 1
                try:
                    job.send(f"s-{n}")
                    sent.append(f"s-{n}")
                except Exception:
                    failed.append(f"s-{n}")
                next_at += 1 / RATE
                time.sleep(max(0.0, next_at - time.monotonic()))

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        deadline = time.monotonic() + 60
        while not read(out, "starts") and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(3)
        t0 = time.monotonic()
        sent_at_trigger = len(sent)
        if scenario == "graceful":
            d.cmd("failover")
        elif scenario == "kill":
            d.cmd("kill-master")
        else:
            frozen = d.cmd("freeze-master")["frozen"]
            threading.Timer(3, lambda: d.cmd(f"thaw {frozen}")).start()
        time.sleep(max(0.0, t0 + 15 - time.monotonic()))
        stop.set()
        producer.join()
        t_stop = time.monotonic()
        new = d.cmd(f"wait-new-master {master}")["master"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if set(sent) <= {k for k, _ in read(out, "starts")}:
                break
            time.sleep(0.2)
        time.sleep(1)
        observer.close()
        starts = read(out, "starts")
        counts: dict[str, int] = {}
        for k, _ in starts:
            counts[k] = counts.get(k, 0) + 1
        times = sorted(t for _, t in starts if t0 - 1 <= t <= t_stop)
        gap = max((b - a for a, b in zip(times, times[1:])), default=float("nan"))
        if variant == "ours":
            resumed = min((t for k, t in read(out, "events") if k == "SwitchCompleted" and t >= t0),
                          default=None)
        else:
            resumed = min((t for k, t in read(out, "connects") if k == new and t >= t0),
                          default=None)
        signal_t = observer.first_signal(t0)
        writable = min((t for t, _ in observer.writable if t >= t0), default=None)
        first = min((t for _, t in starts if writable is not None and t >= writable), default=None)
        ms = lambda a, b: (a - b) * 1000 if a is not None and b is not None else float("nan")  # noqa: E731
        return {
            "produced": len(sent), "lost": sum(1 for s in sent if s not in counts),
            "lost_ids": [s for s in sent if s not in counts][:10],
            "sent_at_trigger": sent_at_trigger,
            "twice": sum(1 for n in counts.values() if n > 1), "send_errors": len(failed),
            "dramatiq_errors": dramatiq_errors(out / "worker.log"),
            "gap_ms": gap * 1000, "signal_to_resumed_ms": ms(resumed, signal_t),
            "writable_to_first_ms": ms(first, writable),
            "writable_to_resumed_ms": ms(resumed, writable),
        }
    finally:
        if mw is not None:
            mw.shutdown()
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        d.close()


def cell(values: list[float], digits: int = 0) -> str:
    vals = [v for v in values if v == v]
    if not vals:
        return "n/a"
    fmt = f"{{:.{digits}f}}"
    med = fmt.format(statistics.median(vals))
    if min(vals) == max(vals):
        return med
    return f"{med} ({fmt.format(min(vals))}..{fmt.format(max(vals))})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--scenarios", default="graceful,kill,freeze")
    parser.add_argument("--workloads", default="stream,backlog")
    parser.add_argument("--variants", default="ours,plain")
    args = parser.parse_args()
    names = {"graceful": "graceful `SENTINEL FAILOVER`", "kill": "master SIGKILL",
             "freeze": "master frozen 3 s"}
    loads = {"stream": "stream of 100/s", "backlog": "backlog of 2,000 + 100/s"}
    labels = {"ours": "dramatiq-sentinel", "plain": "plain, `Sentinel.master_for`"}
    started = time.monotonic()
    lines = ["", "| scenario | workload | variant | produced | lost | run twice | send errors | "
             "errors dramatiq logged | processing gap (ms) | candidate writable → first message "
             "processed (ms) | candidate writable → workers resumed (ms) | first signal → workers "
             "resumed (ms) | runs |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for scenario in args.scenarios.split(","):
        for workload in args.workloads.split(","):
            for variant in args.variants.split(","):
                runs = []
                for rep in range(args.reps):
                    r = run_once(variant, scenario, workload)
                    print(f"# {scenario} {workload} {variant} {rep + 1}/{args.reps}: "
                          f"{json.dumps(r)}", flush=True)
                    runs.append(r)
                col = lambda k, digits=0: cell([r[k] for r in runs], digits)  # noqa: E731
                lines.append(
                    f"| {names[scenario]} | {loads[workload]} | {labels[variant]} | "
                    f"{col('produced')} | {col('lost')} | {col('twice')} | {col('send_errors')} | "
                    f"{col('dramatiq_errors')} | {col('gap_ms')} | "
                    f"{col('writable_to_first_ms', 1)} | {col('writable_to_resumed_ms', 1)} | "
                    f"{col('signal_to_resumed_ms')} | "
                    f"{len(runs)} |")
    print("\n".join(lines))
    print(f"\n(duration {(time.monotonic() - started) / 60:.0f} min; cells: median (min..max))")


if __name__ == "__main__":
    main()
