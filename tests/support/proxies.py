"""Real nginx and HAProxy for tests: the repository's files as bench/proxies.py renders them, with the tools found
or the test skipped (support/tools.py), started on loopback against a deadline."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from bench import proxies
from bench.proxies import Tls
from support.tools import require_tool

START_DEADLINE_SECONDS = 15


def make_tls(folder: Path) -> Tls:
    return proxies.make_tls(folder, openssl=require_tool("openssl"))


def nginx_command(conf: Path, folder: Path, *extra: str) -> list[str]:
    return proxies.nginx_command(conf, folder, *extra, nginx=require_tool("nginx"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Proxy:
    name: str
    process: subprocess.Popen
    http_port: int
    https_port: int
    log_path: Path
    cert: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")[-10000:] if self.log_path.exists() else "(no log)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
                raise AssertionError(f"{self.name} ignored SIGTERM:\n{self.log_text()}")


def https(proxy: Proxy, method: str, path: str, **kwargs) -> requests.Response:
    """A request through the proxy's TLS port, trusting the test certificate."""
    return requests.request(method, proxy.url + path, verify=str(proxy.cert), timeout=30, **kwargs)


def start_proxy(name: str, command: list[str], folder: Path, http_port: int, https_port: int,
                log_path: Path, cert: Path) -> Proxy:
    """Start the proxy and wait for its TLS port against a deadline; fail with its log if it does not come up."""
    with open(folder / "stdout.log", "ab") as stdout:
        process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True)
    proxy = Proxy(name, process, http_port, https_port, log_path, cert)
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while True:
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode} at start:\n{proxy.log_text()}\n"
                        f"{(folder / 'stdout.log').read_text(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", https_port), timeout=0.5).close()
            return proxy
        except OSError:
            if time.monotonic() > deadline:
                proxy.stop()
                pytest.fail(f"{name} did not listen on {https_port} within {START_DEADLINE_SECONDS}s:\n"
                            f"{proxy.log_text()}")
            time.sleep(0.05)
