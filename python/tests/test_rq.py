"""RQ (any redis-py code) on the public factory `dramatiq_sentinel.Failover`: an RQ worker and
a producer through a graceful failover and a master kill; every job enqueued runs once."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import TESTS, wait_for
from deployment import Deployment
from dramatiq_sentinel import Failover

rq = pytest.importorskip("rq")


class RqRun:
    def __init__(self, deployment: Deployment, tmp_path: Path) -> None:
        self.deployment = deployment
        self.records = tmp_path / "records"
        self.records.mkdir()
        self.log = tmp_path / "rq-worker.log"
        env = dict(os.environ)
        env["DS_RQ"] = json.dumps({"sentinels": deployment.sentinels, "service": deployment.service})
        env["DS_RQ_RECORDS"] = str(self.records)
        env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
        os.environ["DS_RQ_RECORDS"] = str(self.records)
        with open(self.log, "ab") as log:
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "rq_app.worker"], env=env, cwd=TESTS, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.failover = Failover(sentinels=deployment.sentinels, service_name=deployment.service)
        self.queue = rq.Queue("default", connection=self.failover.redis())
        self.sent: list[str] = []
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            seq = f"r-{n}"
            try:
                self.queue.enqueue("rq_app.jobs.record", seq)
                self.sent.append(seq)
            except Exception:  # a send that raised may or may not have happened
                self.failed.append(seq)
            time.sleep(0.02)

    def runs(self) -> collections.Counter[str]:
        counts: collections.Counter[str] = collections.Counter()
        for path in self.records.glob("runs-*.jsonl"):
            for line in path.read_text().splitlines():
                if line.strip():
                    counts[json.loads(line)["seq"]] += 1
        return counts

    def finish(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        wanted = set(self.sent)
        wait_for(f"{len(wanted)} RQ jobs run", lambda: wanted <= set(self.runs()))
        runs = self.runs()
        twice = {s: n for s, n in runs.items() if n > 1}
        assert not twice, f"jobs run more than once: {twice}"
        assert set(runs) <= set(self.sent) | set(self.failed)

    def close(self) -> None:
        self._stop.set()
        if self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)
        try:
            self.worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait()
        self.failover.shutdown()


@pytest.fixture
def rq_run(deployment: Deployment, tmp_path: Path):
    run = RqRun(deployment, tmp_path)
    try:
        yield run
    finally:
        run.close()


def test_rq_worker_through_a_graceful_failover(rq_run: RqRun) -> None:
    wait_for("RQ jobs run", lambda: len(rq_run.runs()) >= 20)
    rq_run.deployment.failover()
    count = len(rq_run.sent)
    wait_for("jobs enqueued after the failover", lambda: len(rq_run.sent) > count + 50)
    rq_run.finish()
    assert not rq_run.failed, rq_run.failed[:3]


def test_rq_worker_through_a_master_kill(rq_run: RqRun) -> None:
    wait_for("RQ jobs run", lambda: len(rq_run.runs()) >= 20)
    rq_run.deployment.wait_replicated()
    killed = rq_run.deployment.cmd("kill-master")["killed"]
    rq_run.deployment.cmd(f"wait-new-master {killed}")
    count = len(rq_run.sent)
    wait_for("jobs enqueued after the failover", lambda: len(rq_run.sent) > count + 50)
    rq_run.finish()
    # An enqueue whose reply the kill lost is raised (it may have run): at most the ones in
    # flight at the kill.
    assert len(rq_run.failed) <= 2, rq_run.failed
