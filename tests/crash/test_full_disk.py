"""A node whose data directory is a small tmpfs that fills up (needs root for mount): writes get 503 with
Retry-After and a message saying the disk is full, acknowledged points stay readable, queries and /health keep
answering (and /health says why), compaction and backup fail without deleting anything, and once space is
freed writes resume by themselves with nothing acknowledged missing; `countdb verify` passes afterwards."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import TEST_ENV, CountServer
from support.checks import assert_exactly_once

T0 = 1_700_000_000_000
DISK_MB = 48
BATCH = 100
WRITERS = 2


def can_mount() -> bool:
    return os.geteuid() == 0 and Path("/proc/filesystems").read_text().find("tmpfs") >= 0


pytestmark = pytest.mark.skipif(not can_mount(), reason="mounting a tmpfs needs root")


@pytest.fixture
def small_disk(tmp_path):
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(mountpoint)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def fill(folder: Path) -> Path:
    """Take every free byte of the filesystem holding `folder` with one file (grown again if it exists:
    failed flushes and compactions give back the little they had taken); returns it."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    chunk = b"\0" * (1 << 20)
    try:
        while len(chunk) >= 512:
            try:
                os.write(fd, chunk)
            except OSError as error:
                assert error.errno == errno.ENOSPC
                chunk = chunk[: len(chunk) // 2]
    finally:
        os.close(fd)
    return filler


def countdb(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "countdb", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


class Ingest:
    """Steady writers recording what was acknowledged, every refusal (status, headers, body) and every
    connection error (a worker that died)."""

    def __init__(self, url: str):
        self.url = url
        self.acked = {f"full.{n}": [] for n in range(WRITERS)}
        self.refused: list[tuple[int, requests.structures.CaseInsensitiveDict, str]] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(series, n)) for n, series in enumerate(self.acked)]

    def _run(self, series: str, n: int) -> None:
        session, ts = requests.Session(), T0 + n * 10**9
        while not self.stop.is_set():
            points = [{"series": series, "timestamp": ts + i, "value": float(ts + i)} for i in range(BATCH)]
            try:
                response = session.post(self.url + "/insert", json=points, timeout=30)
                if response.status_code == 201:
                    self.acked[series].extend(p["timestamp"] for p in points)
                else:
                    self.refused.append((response.status_code, response.headers, response.text))
                    time.sleep(0.05)
            except requests.RequestException as error:
                self.errors.append(repr(error))
                session = requests.Session()
            ts += BATCH
            time.sleep(0.005)

    def acked_count(self) -> int:
        return sum(map(len, self.acked.values()))

    def __enter__(self) -> "Ingest":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def wait_until(condition, seconds: float, what: str, log) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{log()}"
        time.sleep(0.1)


def block_files(data_dir: Path) -> set[str]:
    return {str(p.relative_to(data_dir)) for p in (data_dir / "time_blocks").rglob("*.parquet")}


def probe(node, path: str) -> requests.Response:
    return requests.get(node.url + path, timeout=30)


def assert_queries_answer(node, series: str) -> None:
    aggregated = node.get(f"/query/aggregated/{series}", params={"start": 0, "end": T0 * 2, "aggregation": "count"})
    assert aggregated.status_code == 200 and aggregated.json(), aggregated.text
    sql = node.post("/query/sql", json={"sql": "SELECT count(*) AS n FROM points"})
    assert sql.status_code == 200 and sql.json(), sql.text


def test_a_full_disk_refuses_writes_clearly_and_recovers_by_itself(small_disk, tmp_path):
    data_dir = small_disk / "data"
    # MIN_FREE_DISK_MB=0: no reserve, so the disk really runs out under the WAL, a flush and the catalog.
    node = CountServer(data_dir, {**TEST_ENV, "WORKERS": "2", "MEMORY_BUFFER_SIZE": "500",
                                  "FLUSH_INTERVAL_SECONDS": "1", "COMPACTION_INTERVAL_SECONDS": "1",
                                  "MIN_FREE_DISK_MB": "0"}, tmp_path / "node.log")
    node.start()
    try:
        with Ingest(node.url) as ingest:
            # NOTE: and every writer has had points acknowledged: in CI one writer's first answer once came after
            # the other writer's fourth flush, and the disk was then filled before anything of it was stored
            wait_until(lambda: len(block_files(data_dir)) >= 4 and all(ingest.acked.values()),
                       30, "some flushes and points of every writer", node.log_text)
            filler = fill(small_disk)
            wait_until(lambda: len(ingest.refused) >= 10, 30, "writes refused", node.log_text)
            time.sleep(2)  # flushes and compactions meet the full disk meanwhile
            status, headers, body = ingest.refused[-1]
            assert status == 503 and int(headers["Retry-After"]) >= 1 and "disk" in body and "full" in body, \
                (status, headers, body)

            fill(small_disk)
            # NOTE: a new connection per probe, as kubelet and load balancers make them: the test's keep-alive
            # connection may have idled past gunicorn's keepalive by now, and reusing it raced its close once.
            health = probe(node, "/health")
            assert health.status_code == 200, health.text  # a liveness probe must not restart a full node
            assert health.json()["status"] == "degraded" and health.json()["disk"]["writes_refused"]
            assert any("full" in problem for problem in health.json()["problems"]), health.text
            assert probe(node, "/ready").status_code == 200  # still serving queries

            acked_while_full = {series: list(ts) for series, ts in ingest.acked.items()}
            assert_exactly_once(node, acked_while_full, end_ms=T0 * 2, label="while full: ")
            assert_queries_answer(node, "full.0")

            blocks_before, beside = block_files(data_dir), set(small_disk.iterdir())
            backup = countdb("backup", str(small_disk / "backup"), "--data-dir", str(data_dir))
            assert backup.returncode == 1 and "full" in backup.stderr, backup.stderr
            assert set(small_disk.iterdir()) == beside  # no partial backup left behind
            compact = countdb("compact", DATA_DIR=str(data_dir))
            assert compact.returncode == 1 and "No space left" in compact.stderr, compact.stderr
            assert blocks_before <= block_files(data_dir)  # compaction deleted none of its inputs
            # NOTE: the node's own compactor (every second) writes there too, and removes what it wrote when it fails
            wait_until(lambda: not list((data_dir / "node_state" / "compaction").rglob("*.parquet")), 10,
                       "no staged compaction file left", node.log_text)
            checked = countdb("verify", "--data-dir", str(data_dir))
            assert checked.returncode == 0, checked.stdout + checked.stderr

            # A worker killed now is replaced by one that starts on the full disk; its WAL waits to be adopted.
            victim = node.worker_pids()[0]
            errors_before_kill = len(ingest.errors)
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: victim not in node.worker_pids() and len(node.worker_pids()) == 2, 30,
                       "a new worker", node.log_text)
            # NOTE: each writer's keep-alive connection to the killed worker is cut off once: the kill, not the disk
            time.sleep(1)
            killed = slice(errors_before_kill, len(ingest.errors))
            fill(small_disk)
            for _ in range(6):  # either worker answers: each says why
                assert probe(node, "/health").json()["status"] == "degraded"
            assert_exactly_once(node, {series: list(ts) for series, ts in ingest.acked.items()}, end_ms=T0 * 2,
                                label="after a worker died while full: ")

            filler.unlink()
            resumed_from = ingest.acked_count()
            wait_until(lambda: ingest.acked_count() > resumed_from + 20 * BATCH, 30, "writes to resume",
                       node.log_text)
            wait_until(lambda: probe(node, "/health").json()["status"] == "healthy", 30, "healthy", node.log_text)
        unexplained = ingest.errors[:killed.start] + ingest.errors[killed.stop:]
        assert len(ingest.errors[killed]) <= WRITERS and not unexplained, ingest.errors[:5]  # no other worker died
        assert_exactly_once(node, ingest.acked, end_ms=T0 * 2)
        assert node.stop() == 0
    finally:
        if node.proc.poll() is None:
            node.kill_all()
    assert "was sent SIGBUS" not in node.log_text() and "Exception in worker" not in node.log_text()
    verify = countdb("verify", "--data-dir", str(data_dir))
    assert verify.returncode == 0, verify.stdout + verify.stderr
