"""Failover through nginx/nginx.conf and nginx/haproxy.cfg: real nginx and real HAProxy in front of three real
Count servers (independent nodes on fixed loopback ports; the proxies' behaviour does not depend on clustering)
while writers post continuously. A backend stopped with SIGTERM or kill -9 fails no write; a backend refusing
writes with 503 (as a node in a minority does, /ready still 200) has each refused write resent to another node;
and a refused write larger than HAProxy's buffer shows the one limit of its retries. The policy tests (TLS,
internal paths, limits) are in test_proxies.py; the helpers in support/proxies.py."""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.parse

import pytest
import requests

from support.cluster import WRITTEN_SERIES, WRITTEN_START_MS, Writers
from bench.proxies import Tls, render_haproxy_cfg, render_nginx_conf
from support.proxies import Proxy, free_port, https, make_tls, nginx_command, start_proxy
from support.tools import require_tool

T0 = 1_640_995_200_000  # 2022-01-01T00:00:00Z


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("tls"))


FAILOVER_WRITERS = 2
FAILOVER_PAUSE_SECONDS = 0.04  # ~25 writes/s per writer: well inside both proxies' 100 writes/s per client


def continuous_writes(proxy: Proxy, series_prefix: str) -> Writers:
    """Writer threads posting batches of new points through the proxy until the block ends; every answer is
    recorded, so a single failed write fails the test."""
    return Writers([proxy.url] * FAILOVER_WRITERS, verify=str(proxy.cert), pause_seconds=FAILOVER_PAUSE_SECONDS,
                   series_prefix=series_prefix)


def stored_points(nodes, writes: Writers) -> list[set[tuple[str, int]]]:
    """The (series, timestamp) points each node holds of the writers' series."""
    held = []
    for node in nodes:
        points = set()
        for series in writes.series:
            response = requests.get(node.url + f"/query/range/{series}",
                                    params={"start": WRITTEN_START_MS, "end": WRITTEN_START_MS + 10**6}, timeout=30)
            if response.status_code == 200:
                points |= {(series, point["timestamp"]) for point in response.json()}
        held.append(points)
    return held


@pytest.fixture(scope="module")
def backends(count_server, tmp_path_factory):
    """Three independent real Count servers on fixed loopback ports (so a restarted one is the same backend)."""
    folder = tmp_path_factory.mktemp("backends")
    return [count_server(folder / f"node{n}", BIND_ADDRESS=f"127.0.0.1:{free_port()}") for n in (1, 2, 3)]


def start_named_proxy(name: str, addresses: list[str], tls: Tls, folder) -> Proxy:
    http_port, https_port = free_port(), free_port()
    if name == "nginx":
        conf = render_nginx_conf(folder, addresses, tls, http_port, https_port)
        return start_proxy(name, nginx_command(conf, folder), folder, http_port, https_port, folder / "error.log",
                           tls.cert)
    cfg = render_haproxy_cfg(folder, addresses, tls, http_port, https_port)
    return start_proxy(name, [require_tool("haproxy"), "-db", "-f", str(cfg)], folder, http_port, https_port,
                       folder / "stdout.log", tls.cert)


def address_of(node) -> str:
    return urllib.parse.urlsplit(node.url).netloc


@pytest.mark.parametrize("how", ["sigterm", "kill-9"])
@pytest.mark.parametrize("name", ["nginx", "haproxy"])
def test_a_backend_stopped_under_writes_fails_no_write_through_the_proxy(name, how, backends, tls, tmp_path):
    for node in backends:
        if node.proc.poll() is not None:
            node.start()
    proxy = start_named_proxy(name, [address_of(node) for node in backends], tls, tmp_path)
    victim = backends[0]
    try:
        with continuous_writes(proxy, f"failover.{name}.{how}.") as writes:
            time.sleep(1.5)
            before = stored_points([victim], writes)[0]
            if how == "sigterm":
                assert victim.stop() == 0
            else:
                victim.kill_all()
            stopped_at = len(writes.acknowledged)
            time.sleep(2)
            written_while_down = len(writes.acknowledged) - stopped_at
            victim.start()
            time.sleep(1)
        assert not writes.failures, (f"{len(writes.failures)} of {len(writes.acknowledged) + len(writes.failures)} "
                                     f"writes failed, e.g. {writes.failures[:3]}\n{name}:\n{proxy.log_text()}")
    finally:
        proxy.stop()
    assert before, "the proxy sent no write to the backend that was then stopped: the test proves nothing"
    assert written_while_down >= 20 * WRITTEN_SERIES  # at least 20 requests' points
    held = set().union(*stored_points(backends, writes))
    missing = set(writes.acknowledged) - held
    assert not missing, f"{len(missing)} acknowledged points are on no backend, e.g. {sorted(missing)[:3]}"


class RefusingBackend:
    """A backend that refuses every write with 503 and Retry-After while its /ready and /health say 200, as a Count
    node in a minority does (so health checks keep it in rotation); records the bodies it was sent. A plain HTTP
    server: the network edge."""

    def __init__(self):
        bodies = self.bodies = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                self._answer(503, b'{"error":"this node is in a minority"}', {"Retry-After": "1"})

            def do_GET(self):
                self._answer(200, b'{"ready":true}', {})

            def _answer(self, status, body, headers):
                self.send_response(status)
                for header, value in headers.items():
                    self.send_header(header, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("name", ["nginx", "haproxy"])
def test_a_write_a_backend_refuses_with_503_is_retried_on_another(name, backends, tls, tmp_path):
    for node in backends:
        if node.proc.poll() is not None:
            node.start()
    refusing = RefusingBackend()
    proxy = start_named_proxy(name, [refusing.address, *map(address_of, backends[1:])], tls, tmp_path)
    try:
        with continuous_writes(proxy, f"refused.{name}.") as writes:
            time.sleep(1.5)
        assert not writes.failures, f"e.g. {writes.failures[:3]}\n{name}:\n{proxy.log_text()}"
    finally:
        proxy.stop()
        refusing.close()
    assert refusing.bodies, "the refusing backend was never tried: the test proves nothing"
    refused = {(point["series"], point["timestamp"]) for batch in map(json.loads, refusing.bodies) for point in batch}
    held = set().union(*stored_points(backends[1:], writes))
    assert refused <= set(writes.acknowledged) <= held  # each refused write was resent whole and stored


HAPROXY_BUFFER_BYTES = 16384  # tune.bufsize's default: the largest request HAProxy can hold whole to resend


@pytest.mark.parametrize("name", ["nginx", "haproxy"])
def test_a_write_larger_than_haproxys_buffer_is_resent_by_nginx_and_answered_503_by_haproxy(name, backends, tls,
                                                                                           tmp_path):
    """nginx keeps the whole body (in memory, then a temp file) and resends any write. HAProxy resends only what
    fits its buffer; a larger refused write comes back to the client as the node's own 503 with Retry-After, which
    a client retries: never a success for a write no node took."""
    node = backends[1]
    if node.proc.poll() is not None:
        node.start()
    refusing = RefusingBackend()
    proxy = start_named_proxy(name, [refusing.address, address_of(node)], tls, tmp_path)
    series = f"large.{name}"
    try:
        answers = []
        for attempt in range(6):
            points = [{"series": series, "timestamp": T0 + attempt * 10_000 + i, "value": 1.0} for i in range(2000)]
            body = json.dumps(points).encode()
            assert len(body) > 4 * HAPROXY_BUFFER_BYTES
            answers.append(https(proxy, "POST", "/insert", data=body, headers={"Content-Type": "application/json"}))
    finally:
        proxy.stop()
        refusing.close()
    assert refusing.bodies and all(len(body) > 4 * HAPROXY_BUFFER_BYTES for body in refusing.bodies)
    statuses = [answer.status_code for answer in answers]
    if name == "nginx":
        assert statuses == [201] * 6
    else:
        assert 503 in statuses and set(statuses) == {201, 503}, statuses
        refused = [answer for answer in answers if answer.status_code == 503]
        assert all(answer.headers["Retry-After"] == "1" and "minority" in answer.json()["error"] for answer in refused)
    stored = node.get(f"/query/range/{series}", params={"start": T0, "end": T0 + 10**6}).json()
    assert len(stored) == 2000 * statuses.count(201)
