"""Result formats of the query endpoints against real gunicorn: JSON (default), NDJSON, CSV, Arrow IPC stream
and Parquet, chosen by format= or Accept; big results are streamed (chunked) and still complete."""

from __future__ import annotations

import csv
import io

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

T0 = 1_640_995_200_000
BIG = 70_000  # over the 64k-row streaming threshold
TYPES = {"json": "application/json", "ndjson": "application/x-ndjson", "csv": "text/csv",
         "arrow": "application/vnd.apache.arrow.stream", "parquet": "application/vnd.apache.parquet"}


@pytest.fixture(scope="module")
def node(count_server):
    server = count_server(MEMORY_BUFFER_SIZE=1_000_000, WORKERS=2)
    points = [{"series": "fmt.small", "timestamp": T0 + i, "value": i + 0.5} for i in range(3)]
    points += [{"series": "fmt.tagged", "tags": {"host": h}, "timestamp": T0, "value": 1.0} for h in ("a", "b")]
    assert server.post("/insert", json=points).status_code == 201
    big = [{"series": "fmt.big", "timestamp": T0 + i, "value": float(i)} for i in range(BIG)]
    assert server.post("/insert", json=big).status_code == 201
    yield server
    server.stop()


def rows_of(response) -> list[dict]:
    """The flat rows of any format, as dicts of Python values."""
    kind = response.headers["Content-Type"].split(";")[0]
    if kind == TYPES["ndjson"]:
        return [orjson.loads(line) for line in response.content.splitlines()]
    if kind == TYPES["csv"]:
        return list(csv.DictReader(io.StringIO(response.text)))
    if kind == TYPES["arrow"]:
        return pa.ipc.open_stream(response.content).read_all().to_pylist()
    if kind == TYPES["parquet"]:
        return pq.read_table(io.BytesIO(response.content)).to_pylist()
    return response.json()


SMALL = [{"timestamp": T0 + i, "value": i + 0.5} for i in range(3)]


@pytest.mark.parametrize("name", list(TYPES))
def test_every_format_answers_the_same_rows_chosen_by_format_param_or_accept(node, name):
    params = {"start": T0, "end": T0 + 10}
    for response in (node.get("/query/range/fmt.small", params={**params, "format": name}),
                     node.get("/query/range/fmt.small", params=params, headers={"Accept": TYPES[name]})):
        assert response.status_code == 200 and response.headers["Content-Type"] == TYPES[name]
        got = rows_of(response)
        if name == "csv":
            got = [{"timestamp": int(r["timestamp"]), "value": float(r["value"])} for r in got]
        assert got == SMALL


def test_json_is_the_default_and_accept_is_negotiated_with_quality(node):
    params = {"start": T0, "end": T0 + 10}
    assert node.get("/query/range/fmt.small", params=params).json() == SMALL
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    assert node.get("/query/range/fmt.small", params=params, headers={"Accept": browser}).json() == SMALL
    prefers_csv = node.get("/query/range/fmt.small", params=params,
                           headers={"Accept": "application/json;q=0.5, text/csv"})
    assert prefers_csv.headers["Content-Type"] == "text/csv"


def test_format_param_wins_over_accept(node):
    response = node.get("/query/range/fmt.small", params={"start": T0, "end": T0, "format": "ndjson"},
                        headers={"Accept": "text/csv"})
    assert response.headers["Content-Type"] == TYPES["ndjson"]


@pytest.mark.parametrize("path", ["/query/range/fmt.small", "/query/aggregated/fmt.small", "/query/range",
                                  "/series", "/tags"])
def test_an_unacceptable_accept_gets_a_406_json_error(node, path):
    response = node.get(path, params={"start": T0, "end": T0, "aggregation": "sum", "match": "fmt.small"},
                        headers={"Accept": "text/html"})
    assert response.status_code == 406
    assert response.headers["Content-Type"] == "application/json" and "Accept" in response.json()["error"]


def test_an_unknown_format_param_gets_400_naming_it(node):
    response = node.get("/query/range/fmt.small", params={"start": T0, "end": T0, "format": "xml"})
    assert response.status_code == 400 and response.json()["error"].startswith("format: 'xml'")


@pytest.mark.parametrize("name", list(TYPES))
def test_big_results_are_streamed_and_complete(node, name):
    response = node.get("/query/range/fmt.big", params={"start": T0, "end": T0 + BIG, "format": name})
    assert response.status_code == 200
    assert response.headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in response.headers
    got = rows_of(response)
    assert len(got) == BIG
    assert float(got[-1]["value"]) == BIG - 1 and int(got[-1]["timestamp"]) == T0 + BIG - 1


def test_small_results_have_a_content_length(node):
    response = node.get("/query/range/fmt.small", params={"start": T0, "end": T0 + 10})
    assert int(response.headers["Content-Length"]) == len(response.content)


def test_matched_points_are_flat_rows_with_the_series_key_in_tabular_formats(node):
    params = {"match": "fmt.tagged", "start": T0, "end": T0}
    expected = [{"series": f'fmt.tagged{{host="{h}"}}', "timestamp": T0, "value": 1.0} for h in ("a", "b")]
    assert rows_of(node.get("/query/range", params={**params, "format": "arrow"})) == expected
    assert rows_of(node.get("/query/range", params={**params, "format": "ndjson"})) == expected
    assert [r["series"] for r in rows_of(node.get("/query/range", params={**params, "format": "csv"}))] == \
        [r["series"] for r in expected]


def test_aggregates_in_tabular_formats(node):
    params = {"start": T0, "end": T0 + 10, "aggregation": "sum"}
    assert node.get("/query/aggregated/fmt.small", params={**params, "format": "csv"}).text == '"value"\n4.5\n'
    assert rows_of(node.get("/query/aggregated/fmt.small", params={**params, "format": "ndjson"})) == [{"value": 4.5}]
    grouped = node.get("/query/aggregated", params={**params, "match": "fmt.tagged", "group_by": "host",
                                                    "format": "parquet"})
    assert rows_of(grouped) == [{"host": "a", "value": 1.0}, {"host": "b", "value": 1.0}]


def test_an_empty_result_still_has_the_columns(node):
    params = {"start": 0, "end": 1}
    assert node.get("/query/range/fmt.none", params={**params, "format": "csv"}).text == '"timestamp","value"\n'
    table = pa.ipc.open_stream(node.get("/query/range/fmt.none", params={**params, "format": "arrow"}).content)
    assert table.schema.names == ["timestamp", "value"] and table.read_all().num_rows == 0
    assert node.get("/query/range/fmt.none", params=params).json() == []
