"""An RQ worker (`SimpleWorker`) and a producer of 50 jobs/s through a failover, on this
package's `Failover` client and on redis-py's `Sentinel.master_for`, in the same run.

Per run: a fresh deployment (3 data nodes, 3 sentinels, down-after 1000 ms), the worker
process and a producer in this process (same kind of client); 3 s later a graceful `SENTINEL
FAILOVER` or a `SIGKILL` of the master; production stops 10 s after the trigger and the queue
is drained (60 s at most). Figures: jobs enqueued (enqueues that returned), lost (enqueued,
never run), run twice, enqueue errors, errors RQ logged in the worker, whether the worker
was still running at the end, processing gap (longest time without a job start from 1 s
before the trigger until production stopped).

    python python/bench/rq_failover_bench.py [--reps 2] [--scenarios graceful,kill]
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from deployment import Deployment  # noqa: E402

RATE = 50


def run_once(variant: str, scenario: str) -> dict[str, Any]:
    from rq import Queue

    d = Deployment("--down-after-ms", "1000")
    out = Path(tempfile.mkdtemp(prefix="rq-bench-"))
    config = {"variant": variant, "sentinels": d.sentinels, "service": d.service, "out": str(out)}
    os.environ["DS_RQ_BENCH"] = json.dumps(config)
    import rq_worker  # noqa: F401  (after DS_RQ_BENCH is set)

    worker = None
    try:
        env = {**os.environ, "PYTHONPATH": str(HERE)}
        worker = subprocess.Popen([sys.executable, "-m", "rq_worker"], env=env, cwd=HERE,
                                  stdout=open(out / "worker.log", "wb"), stderr=subprocess.STDOUT,
                                  start_new_session=True)
        queue = Queue("default", connection=rq_worker.connection(variant, config))
        sent: list[str] = []
        failed: list[str] = []
        stop = threading.Event()

        def produce() -> None:
            n, next_at = 0, time.monotonic()
            while not stop.is_set():
                n += 1
                try:
                    queue.enqueue("rq_worker.record", f"s-{n}")
                    sent.append(f"s-{n}")
                except Exception:
                    failed.append(f"s-{n}")
                next_at += 1 / RATE
                time.sleep(max(0.0, next_at - time.monotonic()))

        def starts() -> list[tuple[str, float]]:
            rows = []
            for path in out.glob("starts-*"):
                for line in path.read_text().splitlines():
                    key, t = line.rsplit(" ", 1)
                    rows.append((key, float(t)))
            return rows

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        deadline = time.monotonic() + 60
        while not starts() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(3)
        d.wait_replicated()
        master = d.master()
        t0 = time.monotonic()
        d.cmd("failover" if scenario == "graceful" else "kill-master")
        time.sleep(max(0.0, t0 + 10 - time.monotonic()))
        stop.set()
        producer.join()
        t_stop = time.monotonic()
        d.cmd(f"wait-new-master {master}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not set(sent) <= {k for k, _ in starts()}:
            time.sleep(0.2)
        rows = starts()
        counts: dict[str, int] = {}
        for k, _ in rows:
            counts[k] = counts.get(k, 0) + 1
        times = sorted(t for _, t in rows if t0 - 1 <= t <= t_stop)
        gap = max((b - a for a, b in zip(times, times[1:])), default=float("nan"))
        log = (out / "worker.log").read_text(errors="replace")
        return {
            "produced": len(sent), "lost": sum(1 for s in sent if s not in counts),
            "twice": sum(1 for n in counts.values() if n > 1), "enqueue_errors": len(failed),
            "rq_errors": sum(1 for line in log.splitlines() if "[ERROR]" in line),
            "worker_alive": int(worker.poll() is None), "gap_ms": gap * 1000,
        }
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        d.close()


def cell(values: list[float]) -> str:
    vals = [v for v in values if v == v]
    if not vals:
        return "n/a"
    med = f"{statistics.median(vals):.0f}"
    return med if min(vals) == max(vals) else f"{med} ({min(vals):.0f}..{max(vals):.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--scenarios", default="graceful,kill")
    parser.add_argument("--variants", default="ours,plain")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    names = {"graceful": "graceful `SENTINEL FAILOVER`", "kill": "master SIGKILL"}
    labels = {"ours": "`Failover().redis()`", "plain": "`Sentinel.master_for`"}
    started = time.monotonic()
    lines = ["| scenario | client | enqueued | lost | run twice | enqueue errors | errors RQ "
             "logged | worker still running | processing gap (ms) | runs |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for scenario in args.scenarios.split(","):
        for variant in args.variants.split(","):
            runs = []
            for rep in range(args.reps):
                r = run_once(variant, scenario)
                print(f"# {scenario} {variant} {rep + 1}/{args.reps}: {json.dumps(r)}", flush=True)
                runs.append(r)
            col = lambda k: cell([r[k] for r in runs])  # noqa: E731
            lines.append(
                f"| {names[scenario]} | {labels[variant]} | {col('produced')} | {col('lost')} | "
                f"{col('twice')} | {col('enqueue_errors')} | {col('rq_errors')} | "
                f"{sum(r['worker_alive'] for r in runs)}/{len(runs)} | {col('gap_ms')} | "
                f"{len(runs)} |")
    print("\n".join(lines))
    print(f"\n(duration {(time.monotonic() - started) / 60:.0f} min; cells: median (min..max))")


if __name__ == "__main__":
    main()
