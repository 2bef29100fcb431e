"""Keep-alive connections opened at once against a node started a moment before are served by every worker
(issue 17: each worker listens on its own SO_REUSEPORT socket)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import requests

from bench.spread import worker_requests

CONNECTIONS = 16
REQUESTS_PER_CONNECTION = 5


def test_connections_opened_at_once_reach_every_worker(count_server):
    server = count_server(WORKERS=2)
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    assert int(port) != 0

    def client(n: int) -> None:
        with requests.Session() as session:
            for i in range(REQUESTS_PER_CONNECTION):
                point = {"series": "spread.test", "timestamp": 1_700_000_000_000 + n * 1000 + i, "value": n}
                assert session.post(server.url + "/insert", json=point, timeout=30).status_code == 201

    with ThreadPoolExecutor(CONNECTIONS) as pool:
        list(pool.map(client, range(CONNECTIONS)))
    deadline = time.monotonic() + 10
    # NOTE: access lines reach the log file a moment after the answers; one still being written is skipped
    while len(worker_requests(server.log_path, "/insert")) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(worker_requests(server.log_path, "/insert")) == 2, server.log_tail()
