"""A pause that never completes: the worker is stopped with the grace and the process exits
with 69, as the original did (here decided and timed by the Rust core). With `drain=True` the
core drains workers on a switch (the gate waits for the jobs in flight, as the original
paused them); the stuck job never ends."""

from __future__ import annotations

import dramatiq

from conftest import Run, wait_for


def test_a_pause_that_never_completes_exits_69(run_factory) -> None:
    run: Run = run_factory(drain=True, worker_pausing_timeout_before_exit=2.0, stop_grace=1.0)
    producer = run.producer()

    def stuck(seq: str) -> None:  # the app's `stuck` actor never finishes
        raise AssertionError("runs in the worker")

    dramatiq.actor(stuck, actor_name="stuck", broker=producer.broker, max_retries=0).send("s")
    proc = run.start_workers(processes=1, threads=2)
    wait_for("the stuck job to start", lambda: run.runs()["s"] >= 1)
    run.deployment.failover()
    code = proc.wait(timeout=120)
    log = run.log_text()
    assert code == 69, log[-3000:]
    assert "workers did not pause in time" in log, log[-3000:]
    assert "exiting the process with code 69" in log, log[-3000:]
