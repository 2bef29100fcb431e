"""Real-server harness: `count_server(**env)` starts real gunicorn (`python -m countdb serve`) on a free
loopback port with its own DATA_DIR, waits for readiness against a deadline, and stops it at the end.
A failing test gets the server logs printed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from countdb.obs.metrics import process_role

STARTUP_DEADLINE_SECONDS = 60
STOP_DEADLINE_SECONDS = 30


@dataclass
class CountServer:
    data_dir: Path
    env: dict
    log_path: Path
    argv_prefix: list = field(default_factory=list)  # e.g. `ip netns exec <ns>`: run inside a test host
    proc: subprocess.Popen | None = None
    url: str = ""
    session: requests.Session = field(default_factory=requests.Session)

    def start(self) -> "CountServer":
        return self.spawn().wait_ready()

    def spawn(self) -> "CountServer":
        """Start the process without waiting for it (wait_ready): nodes of a cluster start side by side."""
        self.ready_file.unlink(missing_ok=True)
        env = {**os.environ, **self.env, "DATA_DIR": str(self.data_dir), "COUNT_READY_FILE": str(self.ready_file)}
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([*self.argv_prefix, sys.executable, "-m", "countdb", "serve"], env=env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_ready(self) -> "CountServer":
        deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
        while not self.ready_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"count-server did not start (exit {self.proc.poll()}):\n{self.log_tail()}")
            time.sleep(0.05)
        self.url = "http://" + self.ready_file.read_text().strip()
        while True:
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except (requests.ConnectionError, requests.Timeout):  # a worker still booting on a busy machine
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"count-server never became healthy:\n{self.log_tail()}")
            time.sleep(0.05)

    @property
    def ready_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.ready"

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the master and wait; SIGKILL the whole group and fail if it hung."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        # NOTE: a stopping worker keeps a kept-alive connection open for 2 s (gunicorn's STOP_KEEPALIVE_LINGER,
        # so a request sent on it meanwhile is answered, not dropped): this client lets go of its own first.
        self.session.close()
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(STOP_DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill_all()
            raise AssertionError(f"count-server did not stop within {STOP_DEADLINE_SECONDS}s:\n{self.log_tail()}")

    def kill_all(self) -> None:
        """kill -9 the master, its workers and its helper processes at once: a node crash."""
        pids = [self.proc.pid, *self.child_pids()]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(STOP_DEADLINE_SECONDS)
        _wait_gone(pids)

    def worker_pids(self) -> list[int]:
        """The gunicorn workers (the master's children but its helper processes)."""
        return [pid for pid in self.child_pids() if process_role(pid) == "worker"]

    def helper_pid(self, role: str) -> int | None:
        """The helper process with `role` (countdb.obs.metrics.HELPER_ROLES), None if there is none (now)."""
        return next((pid for pid in self.child_pids() if process_role(pid) == role), None)

    def child_pids(self) -> list[int]:
        """The master's children: workers and helper processes (Flight, the compactor, the cluster agent), which a
        master thread may have restarted."""
        pids = []
        for children in Path(f"/proc/{self.proc.pid}/task").glob("*/children"):
            try:
                pids += [int(pid) for pid in children.read_text().split()]
            except FileNotFoundError:
                pass
        return pids

    def log_text(self) -> str:
        """The whole log: what a test asserts on (a line a test looks for may be far from the end)."""
        return self.log_path.read_text(errors="replace")

    def log_tail(self) -> str:
        """The log's last 20,000 characters: what a failure report shows."""
        return self.log_text()[-20000:]

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.session.post(self.url + path, timeout=30, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(self.url + path, timeout=30, **kwargs)


def _wait_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + STOP_DEADLINE_SECONDS
    for pid in pids:
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            try:
                if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                    break
            except FileNotFoundError:
                break
            time.sleep(0.02)


TEST_ENV = {"BIND_ADDRESS": "127.0.0.1:0", "WORKERS": "2", "THREADS": "4", "LOG_LEVEL": "info",
            "WAL_FSYNC_INTERVAL_MS": "100", "SHUTDOWN_GRACE_SECONDS": "15", "FLIGHT_PORT": "0"}


@pytest.fixture(scope="session")
def count_server(tmp_path_factory):
    """Factory: count_server(data_dir=None, argv_prefix=None, wait=True, **env) -> a started CountServer (with
    wait=False, spawned: call its wait_ready()); all are stopped at the end."""
    def start(data_dir: Path | None = None, argv_prefix: list | None = None, wait: bool = True, **env) -> CountServer:
        data_dir = data_dir or tmp_path_factory.mktemp("count") / "data"
        server = CountServer(data_dir, {**TEST_ENV, **{k: str(v) for k, v in env.items()}},
                             data_dir.parent / f"{data_dir.name}-{len(_LIVE)}.log", argv_prefix or [])
        _LIVE.append(server)
        return server.start() if wait else server.spawn()

    yield start
    _kill_running(_LIVE)


@pytest.fixture(scope="session")
def server(count_server):
    """One shared server with default-ish settings for API tests that don't restart it."""
    shared = count_server(MEMORY_BUFFER_SIZE=1000, FLUSH_INTERVAL_SECONDS=300)
    _SHARED.add(id(shared))
    return shared


@pytest.fixture(scope="module", autouse=True)
def servers_end_with_their_module():
    """kill -9 the servers a test module started and left running, but the shared `server`, when it ends.
    NOTE: an idle node still costs ~0.7 % of a core (its workers' loops, the compactor's rounds), and the suite
    used to keep some twenty of them until the end; a test of shutdown stops its own nodes and checks how."""
    first = len(_LIVE)
    yield
    _kill_running([server for server in _LIVE[first:] if id(server) not in _SHARED])


def _kill_running(servers: list[CountServer]) -> None:
    for server in servers:
        if server.proc is not None and server.proc.poll() is None:
            server.kill_all()


_LIVE: list[CountServer] = []
_SHARED: set[int] = set()  # id() of the session's shared servers


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for server in _LIVE:
            report.sections.append((f"count-server log {server.log_path.name}", server.log_tail()))
