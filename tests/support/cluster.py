"""A cluster of real count-server processes on loopback: each node its own gunicorn, DATA_DIR and fixed port
(CLUSTER_NODES must name them before they start), seconds-scale heartbeats, and a signed client for the
internal routes."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

import requests

from countdb.cluster.auth import sign

SECRET = "test-cluster-secret-0123456789abcdef"
FAST_CLUSTER_ENV = {"HEARTBEAT_INTERVAL": "0.5", "FAILURE_TIMEOUT": "3", "FORWARD_TIMEOUT_SECONDS": "2",
                    "ANTI_ENTROPY_INTERVAL_SECONDS": "2", "CLUSTER_SECRET": SECRET, "WORKERS": "2",
                    "THREADS": "4"}


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Cluster:
    nodes: list  # CountServer, in CLUSTER_NODES order
    addresses: list[str]
    flight_ports: list[int]

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.stop()

    def url(self, index: int) -> str:
        return f"http://{self.addresses[index]}"

    def signed(self, index: int, method: str, path: str, body: bytes = b"", signer: int = 0,
               secret: str = SECRET) -> requests.Response:
        headers = sign(secret, method, path, body, signer)
        return requests.request(method, self.url(index) + path, data=body, headers=headers, timeout=30)

    def wait_until(self, predicate, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        last = None
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except (requests.RequestException, ValueError, KeyError) as error:
                last = error
            time.sleep(0.2)
        raise AssertionError(f"not within {seconds} s: {what} (last error: {last})")

    def members_up(self, index: int) -> int:
        return requests.get(self.url(index) + "/health", timeout=5).json()["cluster_size"]

    def wait_formed(self, seconds: float = 60, up: list[int] | None = None) -> None:
        up = list(range(len(self.nodes))) if up is None else up
        self.wait_until(lambda: all(self.members_up(i) == len(up) for i in up), seconds,
                        f"nodes {[i + 1 for i in up]} see each other")
