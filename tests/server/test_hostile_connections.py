"""Idle, slow and stalled clients against real gunicorn (CountWorker, issue 14 §4): while hundreds of them are
connected a steady writer's inserts, /health and queries keep answering fast; the slow ones are closed after
CLIENT_TIMEOUT_SECONDS; a kill -9 of the whole node in the middle of it loses no acknowledged point; 16
clients sending 10 MB batches at once get 201 or 503 + Retry-After, nothing else. Also the HTTP details request
buffering must keep: Expect: 100-continue, chunked bodies, pipelining, 413 from Content-Length alone.

The long version, with the 3x p99 verdict and 50 x 10 MB batches, is `python -m bench.hostile`.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest
import requests

from support.checks import assert_exactly_once
from support.waiting import wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `bench` is a folder of the repo
from bench.hostile import AttackProcess, SteadyLoad, overload  # noqa: E402

CLIENT_TIMEOUT = 2
T0 = 1_700_000_000_000
ATTACK = {"idle_fresh": 400, "idle_keepalive": 400, "slowloris": 60, "slow_body": 60, "non_reader": 12}


@pytest.fixture(scope="module")
def node(count_server):
    # Two threads per worker: the fewer the threads, the easier they are to exhaust.
    return count_server(WORKERS=2, THREADS=2, CLIENT_TIMEOUT_SECONDS=CLIENT_TIMEOUT, MEMORY_BUFFER_SIZE=2000,
                        FLUSH_INTERVAL_SECONDS=1)


def raw_request(node, request: bytes, timeout: float = 10) -> bytes:
    """Send bytes on a new connection; everything the server sends until it closes or goes quiet."""
    host, port = node.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                if answer.count(b"HTTP/1.1 ") >= request.count(b"HTTP/1.1\r\n") and answer.endswith(b"}"):
                    break
        except TimeoutError:
            pass
        return answer


def test_writes_probes_and_queries_go_on_beside_hostile_clients_and_a_node_crash_loses_nothing(node, count_server):
    with SteadyLoad(node.url, series="steady.base") as baseline:
        time.sleep(3)
    attackers = [AttackProcess(kind, node.url, connections, 30) for kind, connections in ATTACK.items()]
    try:
        time.sleep(2)  # every attacker connected
        with SteadyLoad(node.url, series="steady.attacked") as attacked:
            time.sleep(5)
        with SteadyLoad(node.url, series="steady.crashed") as crashed:
            time.sleep(1)
            node.kill_all()  # kill -9 of master and workers, writes in flight, attackers still connected
    finally:
        for attacker in attackers:
            attacker.stop()
    quiet, loud = baseline.writes.summary(), attacked.writes.summary()
    assert quiet["failures"] == 0 and quiet["count"] > 50
    # Every insert, probe and query was answered, inserts within 3x the quiet p99 (or 0.5 s on a busy machine:
    # thread exhaustion, the failure this guards against, costs CLIENT_TIMEOUT seconds and more).
    assert loud["failures"] == 0 and loud["statuses"] == {"201": loud["count"]} and loud["count"] > 50, loud
    assert loud["p99_ms"] <= max(3 * quiet["p99_ms"], 500), (quiet, loud)
    for probe in (attacked.health, attacked.queries):
        assert probe.failures == 0 and max(probe.seconds) < CLIENT_TIMEOUT, probe.summary()
    restarted = count_server(data_dir=node.data_dir, WORKERS=1)
    acked = {"steady.base": baseline.acked, "steady.attacked": attacked.acked, "steady.crashed": crashed.acked}
    assert_exactly_once(restarted, acked, end_ms=T0 * 2)
    restarted.stop()


@pytest.fixture(scope="module")
def fresh(count_server):
    return count_server(WORKERS=1, THREADS=2, CLIENT_TIMEOUT_SECONDS=CLIENT_TIMEOUT, MEMORY_BUFFER_SIZE=5000,
                        FLUSH_INTERVAL_SECONDS=1)


def test_a_head_that_never_ends_gets_408_and_the_connection_closed(fresh):
    started = time.monotonic()
    answer = raw_request(fresh, b"POST /insert HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n", timeout=CLIENT_TIMEOUT + 5)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert CLIENT_TIMEOUT - 0.5 <= time.monotonic() - started <= CLIENT_TIMEOUT + 3


def test_a_client_that_stops_reading_its_answer_is_cut_off(fresh):
    host, port = fresh.url.removeprefix("http://").rsplit(":", 1)
    body = b'{"sql": "SELECT range AS n, \'x\' || range AS s FROM range(20000000)"}'
    with socket.create_connection((host, int(port))) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"POST /query/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: "
                     b"application/x-ndjson\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        started = time.monotonic()
        assert wait_for(lambda: "the client read nothing" in fresh.log_text(), CLIENT_TIMEOUT + 10)
        assert time.monotonic() - started >= CLIENT_TIMEOUT - 0.5  # it waited for the client first
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")  # what it had sent is there; the rest never comes


def test_request_buffering_keeps_http_semantics(fresh):
    point = b'{"series": "proto.a", "timestamp": 1, "value": 1}'
    # Expect: 100-continue (curl's way with bodies over 1 KB): 100, then the answer.
    answer = raw_request(fresh, b"POST /insert HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(point) + point)
    assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\n") and b"HTTP/1.1 201 " in answer
    # Two pipelined requests on one connection: two answers, in order.
    one = b"POST /insert HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(point) + point
    two = b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = raw_request(fresh, one + two)
    assert answer.startswith(b"HTTP/1.1 201 ") and b"HTTP/1.1 200 " in answer.split(b"HTTP/1.1 201 ")[1]
    # A chunked body (a generator, as requests sends it) is read by the thread.
    chunked = requests.post(fresh.url + "/insert", data=iter([b'[{"series": "proto.b", ', b'"timestamp": 2, ',
                                                              b'"value": 2}]']), timeout=10)
    assert chunked.status_code == 201, chunked.text
    # Over MAX_BODY_BYTES by its Content-Length: 413 at once, the body never sent.
    answer = raw_request(fresh, b"POST /insert HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413 ")


def test_big_batches_at_once_get_201_or_503_with_retry_after(fresh):
    # 160 MB at once against one worker, more than the 64 MB of bodies it admits: the rest wait their turn.
    result = overload(fresh.url, clients=16, body_mb=10)
    assert sum(result["statuses"].values()) == 16
    assert set(result["statuses"]) <= {"201", "503+Retry-After"}, result
    assert result["statuses"].get("201", 0) >= 1
