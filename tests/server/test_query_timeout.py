"""QUERY_TIMEOUT_SECONDS on the point queries (not only SQL) against real gunicorn: a query that runs past it is
stopped and answered 504 naming the limit, and the worker goes on answering."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

T0 = 1_700_000_000_000
POINTS = 1_000_000


def arrow_body(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


@pytest.fixture(scope="module")
def node(count_server):
    node = count_server(QUERY_TIMEOUT_SECONDS="0.12", WORKERS=1, MEMORY_BUFFER_SIZE=10_000_000)
    keys = pa.array([f"slow.q{{n=\"{n}\"}}" for n in range(1000)]).take(pa.array(np.arange(POINTS) % 1000))
    table = pa.table({"series": keys.dictionary_encode(), "timestamp": pa.array(T0 + np.arange(POINTS), pa.int64()),
                      "value": pa.array(np.random.default_rng(7).random(POINTS))})
    for offset in range(0, POINTS, 250_000):  # MAX_BODY_BYTES
        answer = node.post("/insert", data=arrow_body(table.slice(offset, 250_000)),
                           headers={"Content-Type": "application/vnd.apache.arrow.stream"})
        assert answer.status_code == 201, answer.text
    return node


def test_a_query_past_the_time_limit_is_a_504_naming_it(node):
    answer = node.get("/query/aggregated", params={"match": "slow.q", "group_by": "n", "aggregation": "p99",
                                                   "start": T0, "end": T0 + POINTS, "step": "1s"})
    assert answer.status_code == 504, answer.text[:200]
    assert "0.12 s limit (QUERY_TIMEOUT_SECONDS)" in answer.json()["error"]
    assert "Traceback" not in node.log_text()


def test_quick_queries_still_answer_after_one_timed_out(node):
    answer = node.get("/query/range/slow.q{n=\"7\"}", params={"start": T0, "end": T0 + 2000})
    assert answer.status_code == 200 and [p["timestamp"] for p in answer.json()] == [T0 + 7, T0 + 1007]
