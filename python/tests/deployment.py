"""The project's real-Redis test harness (`harness/`, the Rust crate dramatiq-sentinel-harness),
driven through its `redis-deployment` command: one deployment per test, killed when the test
ends (and by the command itself if this process dies and its stdin closes)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[2]


def command() -> list[str]:
    """The `redis-deployment` binary (`DRAMATIQ_SENTINEL_DEPLOYMENT`, else built here)."""
    path = os.environ.get("DRAMATIQ_SENTINEL_DEPLOYMENT")
    if path:
        return [path]
    subprocess.run(
        ["cargo", "build", "-q", "-p", "dramatiq-sentinel-harness", "--bin", "redis-deployment"],
        cwd=ROOT,
        check=True,
    )
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return [str(target / "debug" / "redis-deployment")]


class Deployment:
    """A running deployment: `sentinels`, `service`, `master`, and the harness's commands."""

    def __init__(self, *args: str) -> None:
        #: The data nodes' password (`--data-password`), for `client()`.
        self.password = args[args.index("--data-password") + 1] if "--data-password" in args else None
        self.proc = subprocess.Popen(
            [*command(), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.info = self._read()
        if not self.info.get("ok"):
            self.close()
            raise RuntimeError(f"redis-deployment failed to start: {self.info.get('error')}")
        self.sentinels: list[tuple[str, int]] = [self._split(s) for s in self.info["sentinels"]]
        self.service: str = self.info["service"]
        self.nodes: list[str] = [n["addr"] for n in self.info["nodes"]]
        #: The data nodes of the first service.
        self.service_nodes = [n["addr"] for n in self.info["nodes"] if n["service"] == self.service]
        #: With `--tls`: the PEM files `{"ca", "cert", "key"}` (every process requires TLS
        #: with a client certificate).
        self.tls: dict[str, str] | None = self.info.get("tls")

    @staticmethod
    def _split(addr: str) -> tuple[str, int]:
        host, _, port = addr.rpartition(":")
        return (host, int(port))

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            return {"ok": False, "error": f"redis-deployment exited ({self.proc.poll()})"}
        return dict(json.loads(line))

    def cmd(self, line: str) -> dict[str, Any]:
        """Runs one harness command; raises with the harness's error."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self._read()
        if not answer.get("ok"):
            raise RuntimeError(f"redis-deployment `{line}`: {answer.get('error')}")
        return answer

    def master(self) -> str:
        return str(self.cmd("master")["master"])

    def client(self, addr: str) -> redis.Redis:
        host, port = self._split(addr)
        if self.tls:
            return redis.Redis(
                host=host, port=port, socket_timeout=5, ssl=True, ssl_ca_certs=self.tls["ca"],
                ssl_certfile=self.tls["cert"], ssl_keyfile=self.tls["key"],
            )
        return redis.Redis(host=host, port=port, socket_timeout=5, password=self.password)

    def keywords(self) -> dict[str, object]:
        """The middleware's TLS keywords for this deployment (none without `--tls`)."""
        if not self.tls:
            return {}
        return {"tls": True, "tls_root_cert": self.tls["ca"],
                "tls_client_cert": self.tls["cert"], "tls_client_key": self.tls["key"]}

    def wait_replicated(self, timeout: float = 60.0) -> None:
        """Waits until every replica of the master is online and has received everything the
        master had written when this was called. Redis replicates asynchronously: a replica promoted right
        after its initial sync may lack everything written meanwhile (seen with a failover
        a second after the deployment started), which no client can prevent."""
        deadline = time.monotonic() + timeout
        detail = ""
        target = None
        while time.monotonic() < deadline:
            info = self.client(self.master()).info("replication")
            if target is None:
                target = info.get("master_repl_offset", 0)
            replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
            behind = [r for r in replicas if r.get("state") != "online" or r.get("offset", 0) < target]
            if len(replicas) == len(self.service_nodes) - 1 and not behind:
                return
            detail = f"master offset when asked {target}, replicas {replicas}"
            time.sleep(0.05)
        raise RuntimeError(f"replicas did not catch up within {timeout} s: {detail}")

    def watches(self) -> dict[str, int]:
        """Per replica of the current master, how many idle watch connections supervisors
        keep on it (`ROLE` answered on RESP3, nothing since: `cmd=role`, not a sentinel's)."""
        master = self.master()
        counts = {}
        for addr in self.service_nodes:
            if addr == master:
                continue
            try:
                clients = self.client(addr).execute_command("CLIENT", "LIST")
            except redis.RedisError:
                counts[addr] = 0
                continue
            text = clients.decode() if isinstance(clients, bytes) else str(clients)
            counts[addr] = sum(
                1 for line in text.splitlines()
                if " cmd=role " in line and " resp=3" in line and "name=sentinel" not in line
            )
        return counts

    def failover(self) -> tuple[str, str]:
        """A graceful failover once the replicas caught up; returns (old, new) master."""
        self.wait_replicated()
        old = str(self.cmd("failover")["old"])
        return old, str(self.cmd(f"wait-new-master {old}")["master"])

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
