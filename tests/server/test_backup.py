"""`countdb backup` of a real server while it ingests and flushes, then `countdb restore` into new
directories: a server started on each answers every point acknowledged before the backup began, once."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import requests

from support.checks import assert_exactly_once

T0 = 1_700_000_000_000
WRITERS = 2
BATCH = 20


def countdb(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "countdb", *args], capture_output=True, text=True, timeout=120)


def ingest(url: str, series: str, acked: list[int], stop: threading.Event) -> None:
    session, ts = requests.Session(), T0
    while not stop.is_set():
        points = [{"series": series, "timestamp": ts + i, "value": float(ts + i)} for i in range(BATCH)]
        try:
            if session.post(url + "/insert", json=points, timeout=10).status_code == 201:
                acked.extend(p["timestamp"] for p in points)
        except requests.RequestException:
            session = requests.Session()
        ts += BATCH
        time.sleep(0.01)  # steady ingest, not a CPU hog on a 2-core machine


def wait_until(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_backups_taken_during_ingest_restore_every_point_acknowledged_before_they_started(count_server, tmp_path):
    source = count_server(WORKERS=2, MEMORY_BUFFER_SIZE=300, FLUSH_INTERVAL_SECONDS=1)
    acked = {f"backup.live.{n}": [] for n in range(WRITERS)}
    stop = threading.Event()
    threads = [threading.Thread(target=ingest, args=(source.url, s, acked[s], stop)) for s in acked]
    for thread in threads:
        thread.start()
    backups = {}
    try:
        # flushes are running and every writer has had points acknowledged (one writer's first answer came after
        # the first flush once, on a loaded machine, and the check below then had nothing of it to look for)
        wait_until(lambda: any((source.data_dir / "time_blocks").glob("*/*.parquet"))
                   and all(len(timestamps) >= BATCH for timestamps in acked.values()))
        for name in ("folder", "archive.tar.gz"):
            before = {series: list(timestamps) for series, timestamps in acked.items()}
            result = countdb("backup", str(tmp_path / name), "--data-dir", str(source.data_dir))
            assert result.returncode == 0, result.stderr
            assert result.stdout.startswith(f"backed up {source.data_dir} to {tmp_path / name}: ")
            backups[name] = before
            wait_until(lambda: sum(map(len, acked.values())) > sum(map(len, before.values())) + 10 * BATCH)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert source.get("/health").status_code == 200

    for name, before in backups.items():
        restored_dir = tmp_path / f"restored-{name}"
        result = countdb("restore", str(tmp_path / name), "--data-dir", str(restored_dir))
        assert result.returncode == 0, result.stderr
        checked = countdb("verify", "--data-dir", str(restored_dir))
        assert checked.returncode == 0, checked.stdout
        node = count_server(data_dir=restored_dir, WORKERS=2)
        for series, timestamps in before.items():
            assert len(timestamps) >= BATCH, f"{series}: nothing was acknowledged before the backup"
        assert_exactly_once(node, before, end_ms=T0 * 2, label=f"{name} ")
        node.stop()
