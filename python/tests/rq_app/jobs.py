"""The RQ job of the tests: each run appends `{"seq", "pid", "t"}` to a file of its process
in the directory named by `DS_RQ_RECORDS`."""

from __future__ import annotations

import json
import os
import time


def record(seq: str) -> str:
    line = json.dumps({"seq": seq, "pid": os.getpid(), "t": time.time()}) + "\n"
    path = os.path.join(os.environ["DS_RQ_RECORDS"], f"runs-{os.getpid()}.jsonl")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return seq
