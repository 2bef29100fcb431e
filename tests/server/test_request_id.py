"""Request ids and the access log through real gunicorn: X-Request-ID taken or generated, echoed, and on the
one access-log line of each request, also under concurrent requests on the workers' threads."""

from __future__ import annotations

import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from support.logs import access_lines

T0 = 1_640_995_200_000
DEADLINE_SECONDS = 10


def access_lines_for(server, request_ids: set[str]) -> list[dict]:
    """The access-log lines of these requests, once all of them are written (the log is written after the answer)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        found = [line for line in access_lines(server) if line.get("request_id") in request_ids]
        if {line["request_id"] for line in found} == request_ids or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_a_client_request_id_is_echoed_and_logged_once(server):
    request_id = f"client-{uuid.uuid4()}"
    response = server.post("/insert", json={"series": "rid", "timestamp": T0, "value": 1},
                           headers={"X-Request-ID": request_id})
    assert response.status_code == 201 and response.headers["X-Request-ID"] == request_id
    (line,) = access_lines_for(server, {request_id})
    assert (line["level"], line["method"], line["path"], line["route"], line["status"]) == \
        ("info", "POST", "/insert", "/insert", 201)
    assert line["duration_ms"] >= 0 and line["remote_addr"] == "127.0.0.1"


def test_without_a_usable_header_an_id_is_generated(server):
    for header in (None, "has spaces in it", "x" * 129, "", 'quote"d', "new\\nline"):
        headers = {} if header is None else {"X-Request-ID": header}
        response = server.get("/health", headers=headers)
        generated = response.headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", generated), generated
        (line,) = access_lines_for(server, {generated})
        assert line["route"] == "/health" and line["status"] == 200


def test_error_answers_carry_the_id_too(server):
    cases = [("GET", "/nowhere", 404, "unmatched"), ("DELETE", "/insert", 405, "/insert"),
             ("GET", "/query/range/x?start=5&end=1", 400, "/query/range/{series:path}")]
    for method, path, status, route in cases:
        request_id = f"err-{uuid.uuid4()}"
        response = requests.request(method, server.url + path, headers={"X-Request-ID": request_id}, timeout=10)
        assert response.status_code == status and response.headers["X-Request-ID"] == request_id
        assert "error" in response.json()
        (line,) = access_lines_for(server, {request_id})
        assert (line["status"], line["route"]) == (status, route)


def test_concurrent_requests_keep_their_own_ids(server):
    """Each worker thread handles many requests: the id on a line is the one of the request it describes."""
    def query(i: int) -> str:
        request_id = f"conc-{i}-{uuid.uuid4().hex[:8]}"
        response = requests.get(f"{server.url}/query/range/conc.{i}", params={"start": T0, "end": T0 + 1},
                                headers={"X-Request-ID": request_id}, timeout=30)
        assert response.status_code == 200 and response.headers["X-Request-ID"] == request_id
        return request_id

    with ThreadPoolExecutor(max_workers=16) as pool:
        sent = set(pool.map(query, range(64)))
    lines = access_lines_for(server, sent)
    assert len(lines) == len(sent)
    for line in lines:
        assert line["path"] == f"/query/range/conc.{line['request_id'].split('-')[1]}"
