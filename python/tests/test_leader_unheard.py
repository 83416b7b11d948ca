"""Failovers led by a sentinel the processes do not hear (issue 18), with real dramatiq
workers and a producer: only the leader publishes a failover's early signals, and the other
sentinels learn of the promotion from it about a second later. The supervisor's watch on
every replica of the master in use closes at the promotion (Sentinel's `CLIENT KILL` in the
promotion's transaction), so it fences at once (path `replica-watch`), and whatever the old
master acknowledged after the promotion is read back from its backlog and re-applied before
the switch resumes. Every message runs exactly once, from the app's own records."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import defaultdict

import redis

from conftest import DEADLINE, Run, wait_for
from deployment import Deployment

#: The listener backoff is made far longer than the story (the cut-off sentinel is tried
#: rarely), and failure detection is the default otherwise.
OPTIONS = {"worker_pausing_timeout_before_exit": 120.0, "min_backoff": 20.0, "max_backoff": 40.0}


def dead_port() -> tuple[str, int]:
    """A port that accepts connections and closes them at once, for the rest of the test
    process (the address the cut-off sentinel is reached at)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)

    def serve() -> None:
        while True:
            conn, _ = listener.accept()
            conn.close()

    threading.Thread(target=serve, name="dead-port", daemon=True).start()
    return listener.getsockname()


def failover_led_by(d: Deployment, leader: tuple[str, int]) -> str:
    """`SENTINEL FAILOVER` sent to `leader` (asked again while it refuses: `INPROG`,
    `NOGOODSLAVE` right after another failover) once the replicas caught up; returns the old
    master."""
    d.wait_replicated()
    old = d.master()
    client = redis.Redis(host=leader[0], port=leader[1], socket_timeout=5)
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            client.execute_command("SENTINEL", "FAILOVER", d.service)
            return old
        except redis.ResponseError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


#: `[PID n] ... message (fields)` of the worker log.
LINE = re.compile(r"\[PID (\d+)\] \[[^\]]*\] \[[^\]]*\] \[[A-Z]+\] (.*)$")


def by_process(log: str) -> dict[str, list[str]]:
    lines: dict[str, list[str]] = defaultdict(list)
    for line in log.splitlines():
        m = LINE.search(line)
        if m:
            lines[m.group(1)].append(m.group(2))
    return lines


def check_switches(run: Run, failovers: int, producer_records: list, worker_processes: int) -> None:
    """Every switch of every process came from a replica's watch; every loss reported was read
    back and handed back, and dramatiq's share of it re-applied."""
    log = run.log_text()
    processes = {pid: lines for pid, lines in by_process(log).items()
                 if any("switch completed" in x for x in lines)}
    assert len(processes) == worker_processes, f"the worker processes switched: {sorted(processes)}"
    for pid, lines in processes.items():
        switches = [x for x in lines if x.startswith("switch completed; workers resumed")]
        paths = [re.search(r"path=(\S+)", x).group(1) for x in switches]  # type: ignore[union-attr]
        moves = [x for x in switches if "(old=" in x]
        assert len(moves) == failovers and all(p == "replica-watch" for p in paths[-failovers:]), (
            f"process {pid}: {switches}")
        lost = [x for x in lines if x.startswith("acknowledged writes lost")]
        handed = [x for x in lines if "lost command(s) handed back" in x]
        reapplied = [x for x in lines if "dramatiq's lost writes re-applied" in x]
        for x in lost:
            assert "unread=" not in x, f"process {pid}: a loss not read back: {x}"
        assert len(handed) == len(lost) == len(reapplied), (pid, lost, handed, reapplied)
        print(f"process {pid}: paths {paths}; {len(lost)} loss(es) handed back: {reapplied}")
    paths = [r.path for r in producer_records if getattr(r, "sentinel_event", "") ==
             "SwitchCompleted" and r.old is not None]
    assert paths == ["replica-watch"] * failovers, f"the producer's switches: {paths}"


def cut_off_run(run_factory, deployment: Deployment) -> tuple[Run, tuple[str, int]]:
    """A run whose processes are all cut off from sentinel 0 (its configured and announced
    address leads to a port that closes every connection); returns it and that sentinel."""
    leader = deployment.sentinels[0]
    dead = dead_port()
    sentinels = [dead if s == leader else s for s in deployment.sentinels]
    nat = {f"{leader[0]}:{leader[1]}": f"{dead[0]}:{dead[1]}"}
    return run_factory(sentinels=sentinels, nat=nat, **OPTIONS), leader


def failovers_led_by(run: Run, leader: tuple[str, int], failovers: int, processes: int) -> None:
    """`failovers` graceful failovers led by `leader` while the producer streams."""
    d = run.deployment
    producer = run.producers[0]
    for _ in range(failovers):
        # A process whose watches are not open yet (started a moment before) would be
        # fenced late, like any client: wait until every replica is watched by each.
        wait_for("every replica watched by every process",
                 lambda: (lambda w: w if w and min(w.values()) >= processes else None)(
                     d.watches()))
        old = failover_led_by(d, leader)
        new = d.cmd(f"wait-new-master {old}")["master"]
        assert new != old
        count = len(producer.sent)
        wait_for("1 s of messages after the failover", lambda: len(producer.sent) > count + 100)
    producer.stop()
    assert not producer.failed, producer.failed[:3]
    run.wait_processed(producer.sent)
    assert run.stop_workers() == [0]


def test_leader_unheard_cut_off_sentinel(run_factory, deployment: Deployment, caplog) -> None:
    """Two failovers in a row led by a sentinel every process is cut off from, while a worker
    process (4 threads) runs a stream of messages: every message runs exactly once, every
    switch came from a replica's watch, every loss was read back and re-applied."""
    caplog.set_level("INFO", logger="dramatiq_sentinel")
    run, leader = cut_off_run(run_factory, deployment)
    run.start_workers(processes=1, threads=4)
    run.producer().stream("u", rate=100, work_ms=5)
    wait_for("20 runs", lambda: sum(run.runs().values()) >= 20)
    failovers_led_by(run, leader, failovers=2, processes=2)
    run.check_exactly_once(run.producers[0].sent)
    run.check_redis_clean()
    check_switches(run, 2, caplog.records, worker_processes=1)
    assert not run.dramatiq_noticed(), run.dramatiq_noticed()
    assert "Traceback" not in run.log_text(), run.log_text()[-3000:]


def test_leader_unheard_two_worker_processes(run_factory, deployment: Deployment, caplog) -> None:
    """The same with two worker processes, whose fences come at slightly different moments:
    a process whose fence comes late (its supervisor's thread not scheduled for some ms on a
    loaded machine) may fetch on the old master, after the promotion, messages another
    process's hand-back did not see yet (it read the backlog before), and that other process
    fetches them again on the new master. Nothing is lost, and no message runs twice
    silently: every double run is one the late process's hand-back reported at WARNING."""
    caplog.set_level("INFO", logger="dramatiq_sentinel")
    run, leader = cut_off_run(run_factory, deployment)
    run.start_workers(processes=2, threads=4)
    run.producer().stream("v", rate=100, work_ms=5)
    wait_for("20 runs", lambda: sum(run.runs().values()) >= 20)
    failovers_led_by(run, leader, failovers=1, processes=3)
    sent = run.producers[0].sent
    runs = run.runs()
    assert not [s for s in sent if runs[s] == 0], "a message never ran"
    assert not set(runs) - set(sent)
    twice = {s for s, n in runs.items() if n > 1}
    reported = set(re.findall(r"may run twice: \[([^\]]*)\]", run.log_text()))
    reported_ids = {x.strip(" '") for group in reported for x in group.split(",")}
    rids = run_ids(run)
    silent = {s: rids[s] for s in twice if not rids[s] & reported_ids}
    assert not silent, f"run twice without a warning: {silent}"
    print(f"two worker processes: {len(twice)} message(s) ran twice, all reported: {sorted(twice)}")
    run.check_redis_clean()
    check_switches(run, 1, caplog.records, worker_processes=2)


def run_ids(run: Run) -> dict[str, set[str]]:
    """Each message's Redis ids, from the app's records."""
    ids: dict[str, set[str]] = defaultdict(set)
    for path in run.records.glob("runs-*.jsonl"):
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                ids[record["seq"]].add(str(record.get("rid")))
    return ids
