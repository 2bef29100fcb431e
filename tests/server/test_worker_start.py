"""What each gunicorn worker does once its app is loaded (countdb/api/gunicorn_conf.py post_worker_init)."""

from __future__ import annotations

import re
import time

FROZEN = re.compile(r"worker (\d+): (\d+) start-up objects frozen")


def test_every_worker_freezes_its_start_up_objects(server):
    """Out of the garbage collector's full collections, which held a worker's GIL for tens of ms (issue 17)."""
    deadline = time.monotonic() + 30  # the node answers once one worker is up; the other may still be loading
    while True:
        frozen = {int(pid): int(count) for pid, count in FROZEN.findall(server.log_text())}
        if set(server.worker_pids()) <= frozen.keys() or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert set(server.worker_pids()) <= frozen.keys(), server.log_tail()
    assert min(frozen.values()) > 50_000  # the imports (pyarrow, DuckDB, falcon) and the app: ~90,000
