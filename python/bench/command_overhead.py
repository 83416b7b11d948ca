"""Client CPU per command of this package's redis-py pool (`dramatiq_sentinel.Failover`)
against a plain redis-py pool on the same master, while no failover is under way: what the
fence at every send and the rest of our connection code cost.

Each measurement runs in a fresh child process (one variant, one shape): `threads` threads
send `INCR` (or pipelines of 16 `INCR`) for `--seconds`; the figure is the process's user +
system CPU time over the measured window (all threads, the supervisor's included) divided by
the commands sent, which is far steadier than throughput on a shared machine. Rounds alternate
the order of the variants; cells are medians over the rounds, ratios the median of the
per-round ratios.

    python python/bench/command_overhead.py [--rounds 5] [--seconds 3]
        [--shapes incr:1,incr:4,incr:16,pipeline:4]

Needs the package installed (an optimised build: `maturin build --release`), redis-py, and the
harness command (`DRAMATIQ_SENTINEL_DEPLOYMENT`, else built with cargo).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PIPELINE = 16


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(args: argparse.Namespace) -> None:
    import redis

    host, port = args.master.rsplit(":", 1)
    failover = None
    if args.variant == "ours":
        from dramatiq_sentinel import Failover

        sentinels = [(h, int(p)) for h, p in (s.rsplit(":", 1) for s in args.sentinels.split(","))]
        failover = Failover(sentinels=sentinels, service_name=args.service)
        client = failover.redis()
    else:
        client = redis.Redis(host=host, port=int(port))
    kind, threads = args.shape.split(":")
    count = [0] * int(threads)
    stop = threading.Event()
    go = threading.Barrier(int(threads) + 1)

    def work(i: int) -> None:
        key = f"bench:{i}"
        go.wait()
        n = 0
        while not stop.is_set():
            if kind == "pipeline":
                pipe = client.pipeline(transaction=False)
                for _ in range(PIPELINE):
                    pipe.incr(key)
                pipe.execute()
                n += PIPELINE
            else:
                client.incr(key)
                n += 1
        count[i] = n

    for _ in range(200):  # warm up: connections open, supervisor started
        client.incr("bench:warm")
    workers = [threading.Thread(target=work, args=(i,)) for i in range(int(threads))]
    for w in workers:
        w.start()
    cpu0, t0 = _cpu(), time.monotonic()
    go.wait()
    time.sleep(args.seconds)
    stop.set()
    for w in workers:
        w.join()
    cpu, wall = _cpu() - cpu0, time.monotonic() - t0
    ops = sum(count)
    print(json.dumps({"ops": ops, "cpu": cpu, "wall": wall}))
    if failover is not None:
        failover.shutdown()


def measure(variant: str, shape: str, d: Any, seconds: float) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--variant", variant, "--shape", shape,
         "--master", d.master(), "--sentinels", ",".join(f"{h}:{p}" for h, p in d.sentinels),
         "--service", d.service, "--seconds", str(seconds)],
        check=True, capture_output=True, text=True,
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {"us_per_cmd": r["cpu"] / r["ops"] * 1e6, "ops_per_s": r["ops"] / r["wall"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--shapes", default="incr:1,incr:4,incr:16,pipeline:4")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--variant")
    parser.add_argument("--shape")
    parser.add_argument("--master")
    parser.add_argument("--sentinels")
    parser.add_argument("--service")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    sys.path.insert(0, str(HERE.parent / "tests"))
    from deployment import Deployment

    started = time.monotonic()
    d = Deployment()
    rows = []
    try:
        for shape in args.shapes.split(","):
            runs: dict[str, list[dict[str, float]]] = {"ours": [], "plain": []}
            for rnd in range(args.rounds):
                order = ("plain", "ours") if rnd % 2 == 0 else ("ours", "plain")
                for variant in order:
                    runs[variant].append(measure(variant, shape, d, args.seconds))
                print(f"# {shape} round {rnd + 1}: " + json.dumps(
                    {v: runs[v][-1] for v in runs}), flush=True)
            med = lambda v, k: statistics.median(r[k] for r in runs[v])  # noqa: E731
            ratio = lambda k: statistics.median(  # noqa: E731
                o[k] / p[k] for o, p in zip(runs["ours"], runs["plain"]))
            kind, threads = shape.split(":")
            label = f"{threads} thread(s), " + ("`INCR`" if kind == "incr" else
                                                f"pipelines of {PIPELINE} `INCR`")
            rows.append(
                f"| {label} | {med('plain', 'us_per_cmd'):.1f} | {med('ours', 'us_per_cmd'):.1f} | "
                f"**{ratio('us_per_cmd'):.3f}** | {ratio('ops_per_s'):.3f} |")
    finally:
        d.close()
    print("\n| load | client CPU per command, plain redis-py (µs) | ours (µs) | CPU ratio ours / "
          "plain | throughput ratio ours / plain |\n|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\n(rounds {args.rounds} of {args.seconds:.0f} s per variant; "
          f"duration {(time.monotonic() - started) / 60:.1f} min)")


if __name__ == "__main__":
    main()
