// Peer writer for failover-bench: ioredis in Sentinel mode, with or without `failoverDetector`.
//
// Started by `failover-bench` (bench/src) with the node_modules it installs under
// bench-peers/. Every 1 ms: INCR <prefix>:ctr, then RPUSH <prefix>:list <seq>. Reports on
// stdout, one JSON object per line, CLOCK_MONOTONIC nanoseconds in "t":
//   {"ready": t}                      connected, writing from now on
//   {"a": seq, "t": t}                both commands acknowledged
//   {"e": seq, "t": t, "m": msg}      an error surfaced to the application
//   {"end": t, "acks": n, "errors": n}
// Stops when a line "stop" (or EOF) arrives on stdin.
//
// Configuration: sentinels + name, `commandTimeout: 500`, and `reconnectOnError` for `READONLY`
// (the remedy ioredis documents for a master demoted under an open connection); with
// `--failover-detector`, `failoverDetector: true`. Everything else is ioredis's default.
"use strict";

const Redis = require("ioredis");

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const now = () => process.hrtime.bigint(); // CLOCK_MONOTONIC on Linux
const TICK = 1000000n;
const CATCH_UP = 10000000n; // small lags (coarse timers) are caught up

async function main() {
  const sentinels = arg("--sentinels", "").split(",").map((s) => {
    const i = s.lastIndexOf(":");
    return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
  });
  const name = arg("--service", "mymaster");
  const prefix = arg("--prefix", "bench");
  const detector = process.argv.includes("--failover-detector");
  const redis = new Redis({
    sentinels,
    name,
    commandTimeout: 500,
    failoverDetector: detector,
    reconnectOnError: (err) => err.message.startsWith("READONLY"),
  });
  redis.on("error", () => {}); // errors are counted where the application sees them
  await redis.ping();

  let stop = false;
  let buffered = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk) => {
    buffered += chunk;
    if (buffered.split("\n").some((l) => l.trim() === "stop")) stop = true;
  });
  process.stdin.on("end", () => {
    stop = true;
  });

  const out = [];
  const flush = () => {
    if (out.length) {
      process.stdout.write(out.join(""));
      out.length = 0;
    }
  };
  const flusher = setInterval(flush, 100);
  process.stdout.write(JSON.stringify({ ready: Number(now()) }) + "\n");

  const ctr = `${prefix}:ctr`;
  const list = `${prefix}:list`;
  let seq = 0;
  let acks = 0;
  let errors = 0;
  let next = now();
  while (!stop) {
    seq += 1;
    try {
      await redis.incr(ctr);
      await redis.rpush(list, seq);
      out.push(`{"a":${seq},"t":${now()}}\n`);
      acks += 1;
    } catch (e) {
      const m = `${e.name}: ${e.message}`.slice(0, 200);
      out.push(JSON.stringify({ e: seq, t: Number(now()), m }) + "\n");
      errors += 1;
    }
    next += TICK;
    const t = now();
    if (next + CATCH_UP < t) {
      next = t; // after a stall: go on from now, no burst
    } else if (next > t) {
      await new Promise((resolve) => setTimeout(resolve, Number(next - t) / 1e6));
    }
  }
  clearInterval(flusher);
  out.push(JSON.stringify({ end: Number(now()), acks, errors }) + "\n");
  flush();
  redis.disconnect();
  process.stdout.write("", () => process.exit(0));
}

main().catch((e) => {
  process.stderr.write(`writer.js: ${e.stack || e}\n`);
  process.exit(1);
});
