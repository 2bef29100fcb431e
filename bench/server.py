"""A real `count-server` (gunicorn) on a fresh loopback port with its own DATA_DIR, and its workers' peak RSS.

Invariant: a started server is ready (GET /health answered 200 before a deadline) or start() raises with the log
tail; stop() always ends the process group (SIGTERM, then SIGKILL after the grace period) and says whether it hung.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from countdb.obs.metrics import process_role


class ServerError(RuntimeError):
    """The server did not become ready, or exited on its own."""


class CountServer:
    """One server process; `url` is its base URL once start() returned."""

    def __init__(self, data_dir: Path, log_path: Path, extra_env: dict | None = None):
        self.data_dir, self.log_path, self.extra_env = data_dir, log_path, dict(extra_env or {})
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self, ready_timeout_seconds: float = 60.0, port: int | None = None) -> "CountServer":
        """Start on `port`, else on a free port (retrying if another process grabbed it), and wait for /health;
        raises ServerError. A cluster node needs its port fixed: CLUSTER_NODES names it."""
        error = None
        for _ in range(1 if port else 3):
            port = port or free_port()
            self._spawn(port)
            try:
                self._wait_ready(ready_timeout_seconds)
                return self
            except ServerError as failure:
                error = failure
                self.stop()
        raise error

    def _spawn(self, port: int) -> None:
        executable = Path(sys.executable).with_name("count-server")  # the venv the benchmark runs in
        if not executable.exists():
            executable = Path(shutil.which("count-server") or executable)
        # FLIGHT_PORT=0: the benchmark measures HTTP only, and a fixed Flight port may be taken on this machine
        env = {**os.environ, "BIND_ADDRESS": f"127.0.0.1:{port}", "DATA_DIR": str(self.data_dir), "FLIGHT_PORT": "0",
               **self.extra_env}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([str(executable)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.url = f"http://127.0.0.1:{port}"

    def _wait_ready(self, timeout_seconds: float) -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"count-server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise ServerError(f"/health not 200 within {timeout_seconds:.0f} s:\n{self.log_tail()}")

    def stop(self, grace_seconds: float = 120.0) -> dict:
        """SIGTERM (the server flushes everything to Parquet), wait, SIGKILL if it hung. Returns what happened."""
        if self.process is None or self.process.poll() is not None:
            return {"exit_code": None if self.process is None else self.process.returncode, "hung": False}
        started = time.monotonic()
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=grace_seconds)
            hung = False
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            hung = True
        return {"exit_code": self.process.returncode, "hung": hung, "seconds": round(time.monotonic() - started, 3)}

    def child_pids(self) -> list[int]:
        """The master's children: its gunicorn workers and its helper processes (the compactor, Flight…)."""
        return _children(self.process.pid) if self.process and self.process.poll() is None else []

    def worker_pids(self) -> list[int]:
        return [pid for pid in self.child_pids() if process_role(pid) == "worker"]

    def cpu_seconds(self) -> float:
        """User + system CPU seconds used so far by the master and its children (workers, helper processes)."""
        if self.process is None or self.process.poll() is not None:
            return 0.0
        return sum(cpu_seconds(pid) for pid in [self.process.pid, *self.child_pids()])

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> "CountServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class RssSampler:
    """Samples the server's workers every `interval`: `peak_mb` is each worker's lifetime peak RSS (VmHWM),
    `resident_max_mb` the largest RSS seen while sampling (VmRSS; a peak of just this stretch), both in MB.

    Workers resident in more than `limit_mb` together get the server SIGKILLed (and `exceeded` set to that
    total): a benchmark must not push the machine into the OOM killer, which could take anything with it.
    """

    def __init__(self, server: CountServer, interval_seconds: float = 0.2, limit_mb: float | None = None):
        self.server, self.interval_seconds, self.limit_mb = server, interval_seconds, limit_mb
        self.peak_mb: dict[int, float] = {}
        self.resident_max_mb: dict[int, float] = {}
        self.exceeded: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            self._sample()

    def _sample(self) -> None:
        resident_mb = 0.0
        for pid in self.server.worker_pids():
            peak, now = status_kb(pid, "VmHWM"), status_kb(pid, "VmRSS")
            if peak is not None:
                self.peak_mb[pid] = max(self.peak_mb.get(pid, 0.0), peak / 1024)
            if now is not None:
                self.resident_max_mb[pid] = max(self.resident_max_mb.get(pid, 0.0), now / 1024)
                resident_mb += now / 1024
        if self.limit_mb and resident_mb > self.limit_mb and self.exceeded is None:
            self.exceeded = resident_mb
            os.killpg(self.server.process.pid, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


def status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
