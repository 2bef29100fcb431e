"""nginx/nginx.conf and nginx/haproxy.cfg: the real files pass `nginx -t` and `haproxy -c`, and real nginx and
real HAProxy, started on loopback in front of a real Count server, enforce the policy over TLS: writes and
queries go through, internal endpoints get 403, plain HTTP is redirected, oversized bodies get 413 at the proxy.

Each file is run with only the substitutions an operator makes (documented at the top of each file): the
upstream servers, the certificate paths and the listen ports; nginx also gets temp paths under the test's
directory so that it needs no system directory.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import socket
import ssl
import subprocess
import threading
import urllib.parse
from dataclasses import dataclass

import pytest
import requests
from bench.proxies import Tls, render_haproxy_cfg, render_nginx_conf
from support.proxies import Proxy, free_port, https, make_tls, nginx_command, start_proxy
from support.tools import require_tool

MAX_BODY_BYTES = 16 * 1024 * 1024  # Count's MAX_BODY_BYTES default, = client_max_body_size 16m
PROXY_BODY_LIMIT_ERROR = {"error": "request body larger than 16 MiB"}  # the proxies' own 413, not Count's
T0 = 1_640_995_200_000  # 2022-01-01T00:00:00Z


@pytest.fixture(scope="session")
def tls(tmp_path_factory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("tls"))


def test_nginx_accepts_the_real_config(tmp_path, tls):
    conf = render_nginx_conf(tmp_path, ["127.0.0.1:9"], tls, free_port(), free_port())
    result = subprocess.run(nginx_command(conf, tmp_path, "-t"), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_haproxy_accepts_the_real_config(tmp_path, tls):
    cfg = render_haproxy_cfg(tmp_path, ["127.0.0.1:9"], tls, free_port(), free_port())
    result = subprocess.run([require_tool("haproxy"), "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module", params=["nginx", "haproxy"])
def proxy(request, server, tls, tmp_path_factory):
    """Real nginx or real HAProxy on free loopback ports in front of the shared real Count server."""
    name = request.param
    folder = tmp_path_factory.mktemp(name)
    backend = urllib.parse.urlsplit(server.url).netloc
    http_port, https_port = free_port(), free_port()
    if name == "nginx":
        conf = render_nginx_conf(folder, [backend], tls, http_port, https_port)
        command, log_path = nginx_command(conf, folder), folder / "error.log"
    else:
        cfg = render_haproxy_cfg(folder, [backend], tls, http_port, https_port)
        command, log_path = [require_tool("haproxy"), "-db", "-f", str(cfg)], folder / "stdout.log"
    running = start_proxy(name, command, folder, http_port, https_port, log_path, tls.cert)
    yield running
    running.stop()


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict
    body: bytes


def raw_https(proxy: Proxy, method: str, path: str, headers: dict | None = None) -> RawResponse:
    """One request with the path sent exactly as given (requests/urllib3 would normalise //, .. and %XX)."""
    context = ssl.create_default_context(cafile=str(proxy.cert))
    with socket.create_connection(("127.0.0.1", proxy.https_port), timeout=10) as plain, \
            context.wrap_socket(plain, server_hostname="localhost") as tls_socket:
        lines = [f"{method} {path} HTTP/1.1", "Host: localhost", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        tls_socket.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return read_response(tls_socket)


def read_response(sock) -> RawResponse:
    """Reads one response: status line, headers, and a body of Content-Length bytes (or up to close)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", -1))
    while length < 0 or len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return RawResponse(int(status_line.split()[1]), headers, body)


def test_insert_through_tls_is_stored_and_queryable(proxy):
    series = f"proxy.{proxy.name}.insert"
    response = https(proxy, "POST", "/insert", json={"series": series, "timestamp": T0, "value": 42.5})
    assert response.status_code == 201, response.text
    response = https(proxy, "GET", f"/query/range/{series}", params={"start": T0, "end": T0})
    assert response.status_code == 200, response.text
    assert response.json() == [{"timestamp": T0, "value": 42.5}]


def test_prometheus_query_api_passes_through(proxy):
    series = f"proxy_{proxy.name}_promql"
    response = https(proxy, "POST", "/insert", json={"series": series, "timestamp": T0, "value": 7.0})
    assert response.status_code == 201, response.text
    response = https(proxy, "GET", "/api/v1/query", params={"query": series, "time": T0 / 1000})
    assert response.status_code == 200, response.text
    assert [entry["value"][1] for entry in response.json()["data"]["result"]] == ["7"]
    response = https(proxy, "GET", "/api/v1/label/__name__/values", params={"match[]": series})
    assert response.json()["data"] == [series]


def test_health_and_readiness_pass_through(proxy):
    health = https(proxy, "GET", "/health")
    assert health.status_code == 200 and health.json()["status"] == "healthy"
    assert https(proxy, "GET", "/ready").status_code == 200


def test_the_web_console_and_what_it_reads_pass_through(proxy):
    page = https(proxy, "GET", "/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert https(proxy, "GET", "/console/console.js").status_code == 200
    for path in ("/series", "/tags", "/tags/host/values", "/storage", "/status"):
        assert https(proxy, "GET", path).status_code == 200, path


@pytest.mark.parametrize("path", ["/cluster/x", "/cluster", "/replicate", "/replicate/", "/CLUSTER/x",
                                  "//cluster/x", "/./cluster/x", "/%63luster/x", "/%2Fcluster/x", "/replicat%65"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_internal_endpoints_are_denied_with_403(proxy, method, path):
    response = raw_https(proxy, method, path, {"Content-Length": "0"})
    assert response.status == 403, (response.status, response.body)


def test_dot_segments_cannot_reach_internal_endpoints(proxy):
    # nginx normalises the path and denies it (403); HAProxy refuses dot-dot segments outright (400).
    response = raw_https(proxy, "GET", "/query/../cluster/x")
    assert response.status in (400, 403), (response.status, response.body)


def test_metrics_are_not_exposed_through_the_proxy(proxy):
    assert raw_https(proxy, "GET", "/metrics").status == 403


def test_paths_outside_the_public_api_get_404_from_the_proxy(proxy):
    response = raw_https(proxy, "GET", "/admin")
    assert response.status == 404
    assert response.body.strip() == b'{"error":"not found"}'


def test_plain_http_is_redirected_to_https(proxy):
    response = requests.get(f"http://127.0.0.1:{proxy.http_port}/query/range/x?start=0&end=1",
                            allow_redirects=False, timeout=10)
    assert response.status_code == 301
    assert response.headers["Location"].startswith("https://")
    assert response.headers["Location"].endswith("/query/range/x?start=0&end=1")


def test_body_over_16_mib_gets_413_from_the_proxy(proxy):
    """Content-Length over the limit: the proxy answers before any body byte is sent (Expect: 100-continue),
    with its own error, so the body never reaches a node."""
    response = raw_https(proxy, "POST", "/insert", {"Content-Type": "application/json",
                                                    "Content-Length": str(MAX_BODY_BYTES + 1),
                                                    "Expect": "100-continue"})
    assert response.status == 413
    assert json.loads(response.body) == PROXY_BODY_LIMIT_ERROR


def test_body_of_exactly_16_mib_reaches_count(proxy):
    # Not valid JSON: Count itself answers 400, which proves the proxy let the whole body through.
    response = https(proxy, "POST", "/insert", data=b" " * (MAX_BODY_BYTES - 1) + b"x",
                     headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert "error" in response.json()


def test_request_id_is_passed_through_or_generated(proxy):
    given = https(proxy, "GET", "/health", headers={"X-Request-ID": "trace-42.a_b"})
    assert given.headers["X-Request-ID"] == "trace-42.a_b"
    generated = https(proxy, "GET", "/health")
    assert re.fullmatch(r"[0-9A-Za-z-]{16,}", generated.headers["X-Request-ID"])
    # A malformed id (a log-injection attempt) is replaced, not echoed.
    forged = https(proxy, "GET", "/health", headers={"X-Request-ID": "x" * 200})
    assert forged.headers["X-Request-ID"] != "x" * 200


def test_responses_carry_hsts(proxy):
    assert "max-age=" in https(proxy, "GET", "/health").headers["Strict-Transport-Security"]


def test_a_burst_of_writes_is_rate_limited_with_429(proxy):
    """Far over 100 writes/s from one client: some get 429, in Count's JSON error shape."""
    sessions = threading.local()

    def send(_):
        if not hasattr(sessions, "session"):
            sessions.session = requests.Session()  # keep-alive: the burst is as fast as the proxy allows
        # Empty and cheap: Count answers 400; only the proxy's limit can answer 429.
        return sessions.session.post(proxy.url + "/insert", data=b"", verify=str(proxy.cert), timeout=30)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(send, range(600)))
    limited = [r for r in responses if r.status_code == 429]
    assert len(limited) >= 100, sorted({r.status_code for r in responses})
    assert limited[0].json()["error"].startswith("rate limit exceeded")
