"""The original middleware's README Quickstart, saved unchanged as `quickstart/quickstart.py`,
runs against a local deployment: sentinels reachable at localhost:26379-26381 (forwarded to
the harness's sentinels), its password and service name. Its `nat` rules name Docker
addresses the sentinels never report, so they stay unused."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from conftest import TESTS, wait_for
from deployment import Deployment

QUICKSTART = TESTS / "quickstart"
PORTS = (26379, 26380, 26381)


class Forwarder:
    """Accepts on 127.0.0.1:`port` and relays each connection to `target` (loopback only)."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.server.bind(("127.0.0.1", port))
        except OSError as e:
            self.server.close()
            pytest.fail(f"the Quickstart needs 127.0.0.1:{port} free: {e}")
        self.server.listen(64)
        self.sockets: list[socket.socket] = [self.server]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        for s in self.sockets:
            s.close()


@pytest.fixture
def quickstart_deployment() -> Iterator[Deployment]:
    d = Deployment(
        "--service-name", "redis-sentinel-service-name", "--sentinel-password",
        "sentinel-passsword",
    )
    forwarders = [Forwarder(port, target) for port, target in zip(PORTS, d.sentinels)]
    try:
        yield d
    finally:
        for f in forwarders:
            f.close()
        d.close()


def test_the_original_quickstart_runs_unchanged(quickstart_deployment: Deployment, tmp_path) -> None:
    d = quickstart_deployment
    sent = subprocess.run(
        [sys.executable, "quickstart.py"], cwd=QUICKSTART, capture_output=True, text=True,
        timeout=120,
    )
    assert sent.returncode == 0, sent.stderr[-3000:]
    master = d.client(d.master())
    assert master.llen("dramatiq:default") == 1
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "quickstart", "--processes", "1", "--threads", "1"],
            cwd=QUICKSTART, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_for("the message to be processed", lambda: not master.exists(
            "dramatiq:default", "dramatiq:default.msgs"))
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
