"""A real Prometheus server for tests (Debian's `prometheus` binary): started on a free loopback port with a
generated config and its own storage folder, polled until ready against a deadline, stopped at the end."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator

import requests
import yaml

from support.tools import require_tool

STARTUP_DEADLINE_SECONDS = 30
PORT_ATTEMPTS = 3


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Prometheus:
    def __init__(self, url: str, log_path: Path):
        self.url = url
        self.log_path = log_path

    def api(self, path: str, **params) -> dict | list:
        """GET /api/v1/<path>; the `data` of a successful answer."""
        answer = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10).json()
        assert answer["status"] == "success", answer
        return answer["data"]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")[-10000:]


@contextlib.contextmanager
def running_prometheus(folder: Path, config_for: Callable[[int], dict],
                       flags: tuple[str, ...] = ()) -> Iterator[Prometheus]:
    """Prometheus on a free 127.0.0.1 port with the config `config_for(port)` returns (a prometheus.yml as a
    dict) and extra command-line `flags`. A port taken between choosing and binding it (other tests run beside
    this one) means another try."""
    binary = require_tool("prometheus")
    folder.mkdir(parents=True, exist_ok=True)
    for attempt in range(PORT_ATTEMPTS):
        port = free_loopback_port()
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config_for(port)))
        log_path = folder / f"prometheus-{attempt}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([binary, f"--config.file={folder / 'prometheus.yml'}",
                                     f"--storage.tsdb.path={folder / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}", *flags],
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        server = Prometheus(f"http://127.0.0.1:{port}", log_path)
        try:
            if _ready(proc, server):
                yield server
                return
        finally:
            _stop(proc)
    raise RuntimeError(f"prometheus found no free port in {PORT_ATTEMPTS} tries:\n{server.log_text()}")


def _ready(proc: subprocess.Popen, server: Prometheus) -> bool:
    """True once /-/ready answers; False if it exited because its port was taken; raises otherwise."""
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    while True:
        if proc.poll() is not None:
            if "address already in use" in server.log_text():
                return False
            raise RuntimeError(f"prometheus exited with {proc.returncode}:\n{server.log_text()}")
        try:
            if requests.get(server.url + "/-/ready", timeout=2).status_code == 200:
                return True
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"prometheus was not ready within {STARTUP_DEADLINE_SECONDS}s:\n{server.log_text()}")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
