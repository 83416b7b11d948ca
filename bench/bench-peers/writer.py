"""Peer writer for failover-bench: redis-py's Sentinel.master_for.

Started by `failover-bench` (bench/src) with the venv it installs under bench-peers/.
Every 1 ms: INCR <prefix>:ctr, then RPUSH <prefix>:list <seq>. Reports on stdout, one JSON
object per line, CLOCK_MONOTONIC nanoseconds in "t":
  {"ready": t}                      connected, writing from now on
  {"a": seq, "t": t}                both commands acknowledged
  {"e": seq, "t": t, "m": msg}      an error surfaced to the application
  {"end": t, "acks": n, "errors": n}
Stops when a line "stop" (or EOF) arrives on stdin.

Configuration: the documented Sentinel usage with 0.5 s socket timeouts (sentinels and master);
everything else is redis-py's default (including its default retry policy).
"""

import argparse
import json
import sys
import threading
import time

from redis.sentinel import Sentinel

TICK_NS = 1_000_000
CATCH_UP_NS = 10_000_000  # small lags (coarse timers) are caught up


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sentinels", required=True, help="host:port,host:port,...")
    parser.add_argument("--service", required=True)
    parser.add_argument("--prefix", default="bench")
    args = parser.parse_args()

    sentinels = []
    for item in args.sentinels.split(","):
        host, port = item.rsplit(":", 1)
        sentinels.append((host, int(port)))
    sentinel = Sentinel(sentinels, socket_timeout=0.5, socket_connect_timeout=0.5)
    master = sentinel.master_for(
        args.service, socket_timeout=0.5, socket_connect_timeout=0.5
    )
    ctr, lst = f"{args.prefix}:ctr", f"{args.prefix}:list"
    master.ping()

    stop = threading.Event()

    def watch_stdin():
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()

    out = sys.stdout
    out.write(json.dumps({"ready": time.monotonic_ns()}) + "\n")
    out.flush()
    seq = 0
    acks = errors = 0
    next_tick = time.monotonic_ns()
    while not stop.is_set():
        seq += 1
        try:
            master.incr(ctr)
            master.rpush(lst, seq)
            out.write('{"a":%d,"t":%d}\n' % (seq, time.monotonic_ns()))
            acks += 1
        except Exception as e:  # every error the application sees counts
            msg = f"{type(e).__name__}: {e}"
            out.write(json.dumps({"e": seq, "t": time.monotonic_ns(), "m": msg[:200]}) + "\n")
            errors += 1
        next_tick += TICK_NS
        now = time.monotonic_ns()
        if next_tick + CATCH_UP_NS < now:
            next_tick = now  # after a stall: go on from now, no burst
        elif next_tick > now:
            time.sleep((next_tick - now) / 1e9)
    out.write(json.dumps({"end": time.monotonic_ns(), "acks": acks, "errors": errors}) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
