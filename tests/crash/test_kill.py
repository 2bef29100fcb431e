"""kill -9 of workers and of the whole node during concurrent ingest: after restart every acknowledged
point is returned exactly once."""

from __future__ import annotations

import os
import signal
import threading
import time

import requests

from support.checks import assert_exactly_once

T0 = 1_700_000_000_000
WRITERS = 4


def _ingest(url: str, series: str, acked: list[int], stop: threading.Event) -> None:
    session = requests.Session()
    ts = T0
    while not stop.is_set():
        batch = 1 if ts % 3 else 10  # single points and small batches, both record types
        points = [{"series": series, "timestamp": ts + i, "value": float(ts + i)} for i in range(batch)]
        try:
            response = session.post(url + "/insert", json=points if batch > 1 else points[0], timeout=5)
            if response.status_code == 201:
                acked.extend(p["timestamp"] for p in points)
        except requests.RequestException:
            session = requests.Session()
            time.sleep(0.02)
        ts += batch


def _run_writers(url: str, seconds_before: list[float], actions: list) -> dict[str, list[int]]:
    acked = {f"crash.{n}": [] for n in range(WRITERS)}
    stop = threading.Event()
    threads = [threading.Thread(target=_ingest, args=(url, s, acked[s], stop)) for s in acked]
    for thread in threads:
        thread.start()
    try:
        for delay, action in zip(seconds_before, actions):
            time.sleep(delay)
            action()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return acked


def test_kill9_of_a_worker_then_of_the_whole_node_loses_nothing(count_server):
    node = count_server(MEMORY_BUFFER_SIZE=40, FLUSH_INTERVAL_SECONDS=1, WORKERS=2)

    def kill_one_worker():
        os.kill(node.worker_pids()[0], signal.SIGKILL)

    acked = _run_writers(node.url, [1.5, 1.5], [kill_one_worker, node.kill_all])
    assert sum(map(len, acked.values())) > 200
    restarted = count_server(data_dir=node.data_dir, MEMORY_BUFFER_SIZE=40, WORKERS=2)
    assert_exactly_once(restarted, acked, end_ms=T0 * 2)
    # Reading again after the restarted node flushed everything must give the same answer.
    assert restarted.stop() == 0
    assert list((node.data_dir / "wal").rglob("*.wal")) == [], "dead writers' WAL was replayed and retired"
    again = count_server(data_dir=node.data_dir, WORKERS=1)
    assert_exactly_once(again, acked, end_ms=T0 * 2)
    again.stop()


def test_kill9_of_the_master_alone_loses_nothing(count_server):
    node = count_server(MEMORY_BUFFER_SIZE=25, FLUSH_INTERVAL_SECONDS=1, WORKERS=2)
    workers = node.worker_pids()

    def kill_master():
        os.kill(node.proc.pid, signal.SIGKILL)
        node.proc.wait(10)

    acked = _run_writers(node.url, [2.0], [kill_master])
    deadline = time.monotonic() + 30
    while any(os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split()[2] != "Z"
              for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)  # orphaned workers notice their master is gone and exit
    restarted = count_server(data_dir=node.data_dir, WORKERS=2)
    assert_exactly_once(restarted, acked, end_ms=T0 * 2)
    restarted.stop()


def test_sigterm_during_ingest_puts_every_acknowledged_point_in_parquet(count_server):
    import duckdb

    node = count_server(MEMORY_BUFFER_SIZE=100000, FLUSH_INTERVAL_SECONDS=300, WORKERS=2)
    stopped = {}

    def terminate():
        started = time.monotonic()
        stopped["code"] = node.stop(signal.SIGTERM)
        stopped["seconds"] = time.monotonic() - started

    acked = _run_writers(node.url, [1.5], [terminate])
    assert stopped["code"] == 0 and stopped["seconds"] < 15
    files = str(node.data_dir / "time_blocks" / "*" / "*.parquet")
    rows = duckdb.sql(f"SELECT series, ts FROM read_parquet('{files}')").fetchall()
    stored = {(series, ts) for series, ts in rows}
    assert len(rows) == len(stored)
    for series, timestamps in acked.items():
        assert {(series, ts) for ts in timestamps} <= stored
    leftover = [p for p in (node.data_dir / "wal").rglob("*.wal")]
    assert leftover == [], "a graceful stop leaves no WAL behind"
