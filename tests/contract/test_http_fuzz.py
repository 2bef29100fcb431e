"""Whatever a client sends to a real node's write and query endpoints: a documented status with the
`{"error": …}` shape, never a 500, and a refused all-or-nothing batch changes nothing (issue 14)."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REQUESTS = settings(max_examples=40, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
POINTS = [{"series": "fz.cpu", "tags": {"host": "a"}, "timestamp": 1_700_000_000_000 + i, "value": i * 1.5}
          for i in range(3)]


def _arrow_body() -> bytes:
    sink = io.BytesIO()
    table = pa.table({"series": ["fz.a", "fz.b"], "timestamp": pa.array([1, 2], pa.int64()), "value": [1.0, 2.0]})
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


# (path, Content-Type, a valid body): each is all-or-nothing, so a refused body must change nothing.
BATCHES = {
    "json": ("/insert", "application/json", orjson.dumps(POINTS)),
    "ndjson": ("/insert", "application/x-ndjson", b"\n".join(orjson.dumps(p) for p in POINTS)),
    "csv": ("/insert", "text/csv", b"series,timestamp,value\nfz.c,1,1.5\n\"fz,d\",2,-3e2\n"),
    "arrow": ("/insert", "application/vnd.apache.arrow.stream", _arrow_body()),
    "line_protocol": ("/api/v3/write_lp?db=x&accept_partial=false", "text/plain",
                      b"fz.m,host=a f=1.5,g=2i 1700000000000000000\nfz.n v=3 1700000000000000001\n"),
}
REGRESSIONS = Path(__file__).parent / "regressions"
ACCEPTED = {201, 204}
REFUSED = {400, 413, 415}


SPECIAL_BYTES = st.lists(st.sampled_from([b"\r", b"\n", b'"', b",", b"\x00", b"\xff", b"\\", b"{", b"9" * 40,
                                           b"\xe9", b"-", b"e"]), max_size=3).map(b"".join)


def mutated(valid: bytes) -> st.SearchStrategy[bytes]:
    edit = st.tuples(st.integers(0, len(valid)), st.integers(0, 4), st.one_of(st.binary(max_size=4), SPECIAL_BYTES))

    def apply(edits):
        body = valid
        for position, deleted, inserted in edits:
            body = body[:position] + inserted + body[position + deleted:]
        return body
    return st.lists(edit, min_size=1, max_size=6).map(apply)


@pytest.fixture(scope="module")
def node(count_server):
    return count_server(MEMORY_BUFFER_SIZE=1000, FLUSH_INTERVAL_SECONDS=300)


def all_series(node) -> set[str]:
    response = node.get("/series")
    assert response.status_code == 200
    return {entry["key"] for entry in response.json()["series"]}


def assert_error_shape(response) -> None:
    assert response.headers["Content-Type"].startswith("application/json")
    assert isinstance(response.json()["error"], str)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", list(BATCHES))
def test_any_body_is_written_whole_or_refused_without_a_trace(node, kind):
    path, content_type, valid = BATCHES[kind]
    assert node.post(path, data=valid, headers={"Content-Type": content_type}).status_code in ACCEPTED

    @REQUESTS
    @given(body=st.one_of(mutated(valid), st.binary(max_size=300)))
    def check(body):
        before = all_series(node)
        response = node.post(path, data=body, headers={"Content-Type": content_type})
        assert response.status_code in ACCEPTED | REFUSED, (response.status_code, response.text)
        if response.status_code in REFUSED:
            assert_error_shape(response)
            assert all_series(node) == before  # nothing of a refused batch was applied
    check()


@pytest.mark.parametrize("path", [p for p in sorted(REGRESSIONS.iterdir()) if p.stem.split("-")[0] in BATCHES],
                         ids=lambda path: path.stem)
def test_a_body_that_once_was_a_500_is_refused(node, path):
    """Inputs the fuzzer found (tests/contract/test_fuzz.py), sent as a client would."""
    _, content_type, _ = BATCHES[path.stem.split("-")[0]]
    response = node.post("/insert", data=path.read_bytes(), headers={"Content-Type": content_type})
    assert response.status_code == 400, response.text
    assert_error_shape(response)


def test_a_step_of_thousands_of_digits_is_refused(node):
    response = node.get("/query/range/fz.cpu", params={"start": 0, "end": 1, "step": "9" * 5000 + "ms"})
    assert response.status_code == 400 and "step" in response.json()["error"]


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
QUERY_PARAMS = st.fixed_dictionaries({}, optional={
    "match": st.one_of(TEXT, st.sampled_from(['fz.cpu{host=~"a|b"}', '{__name__=~"fz.*"}', 'fz.cpu{host!~"("}'])),
    "start": st.one_of(TEXT, st.integers(-(2**64), 2**64).map(str)),
    "end": st.one_of(TEXT, st.integers(-(2**64), 2**64).map(str)),
    "step": st.one_of(TEXT, st.sampled_from(["1m", "0s", "1h30m", "9" * 5000 + "ms", "1ms"])),
    "aggregation": st.one_of(TEXT, st.sampled_from(["rate", "p99.9", "quantile", "p0", "count"])),
    "quantile": TEXT, "fill": st.one_of(TEXT, st.sampled_from(["linear", "previous", "1e308", "-0"])),
    "group_by": TEXT, "format": st.one_of(TEXT, st.sampled_from(["csv", "arrow", "parquet", "ndjson"])),
})


@pytest.mark.timeout(240)
@pytest.mark.parametrize("path", ["/query/range", "/query/aggregated", "/query/range/fz.cpu%7Bhost%3D%22a%22%7D",
                                  "/query/aggregated/fz.cpu", "/series", "/tags", "/tags/host/values"])
def test_any_query_string_gets_an_answer_or_a_documented_error(node, path):
    node.post("/insert", data=orjson.dumps(POINTS), headers={"Content-Type": "application/json"})

    @REQUESTS
    @given(params=QUERY_PARAMS)
    def check(params):
        response = node.get(path, params=params)
        assert response.status_code in {200, 400, 406, 422}, (params, response.status_code, response.text)
        if response.status_code != 200:
            assert_error_shape(response)
    check()


@pytest.mark.parametrize("aggregation", ["sum", "rate"])
def test_group_by_keys_spelled_like_sql_names_group_by_the_tags(node, aggregation):
    """group_by=g,series,ts,n,g0 named the query's own table and columns: a 500 (found by schemathesis)."""
    tags = [{"g": "a", "series": "s1", "ts": "t", "n": "x", "g0": "y"},
            {"g": "b", "series": "s1", "ts": "t", "n": "x", "g0": "y"}]
    points = [{"series": "fz.sqlnames", "tags": tag, "timestamp": 1_000 + i * 1_000, "value": float(i)}
              for tag in tags for i in range(3)]
    assert node.post("/insert", data=orjson.dumps(points), headers={"Content-Type": "application/json"}) \
        .status_code == 201
    response = node.get("/query/aggregated", params={"match": "fz.sqlnames", "start": 0, "end": 10_000,
                                                     "aggregation": aggregation, "group_by": "g,series,ts,n,g0"})
    assert response.status_code == 200, response.text
    groups = response.json()["groups"]
    assert [group["tags"] for group in groups] == tags
    for group in groups:  # each group is one series: its value is that series' own aggregate
        alone = node.get("/query/aggregated", params={"match": f'fz.sqlnames{{g="{group["tags"]["g"]}"}}',
                                                      "start": 0, "end": 10_000, "aggregation": aggregation})
        assert group["value"] == alone.json()["groups"][0]["value"] is not None
