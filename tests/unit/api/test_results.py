"""Result rendering of api/results.py on Arrow data of every kind a query (or later /query/sql) may answer."""

from __future__ import annotations

import csv
import gc
import io
import threading
import time
from decimal import Decimal

import falcon
import falcon.testing
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from countdb.api import results
from countdb.errors import InvalidInput, NotAcceptable

TABLE = pa.table({
    "n": pa.array([1, None], pa.int64()),
    "d": pa.array([Decimal("1.50"), Decimal("-2.25")], pa.decimal128(5, 2)),
    "tags": pa.array([[("a", "x")], []], pa.map_(pa.string(), pa.string())),
    "l": pa.array([[1, 2], None], pa.list_(pa.int64())),
    "b": pa.array([b"\x01\xff", b""], pa.binary()),
})


def rendered(result_format: str, rows=TABLE, shape=None) -> falcon.Response:
    resp = falcon.Response()
    results.send_result(resp, result_format, rows, shape)
    return resp


def test_json_rows_write_decimals_as_numbers_maps_as_objects_and_bytes_as_hex():
    assert orjson.loads(rendered("json").data) == [
        {"n": 1, "d": 1.5, "tags": {"a": "x"}, "l": [1, 2], "b": "01ff"},
        {"n": None, "d": -2.25, "tags": {}, "l": None, "b": ""},
    ]


def test_ndjson_is_one_object_per_line():
    lines = rendered("ndjson").data.splitlines()
    assert [orjson.loads(line)["n"] for line in lines] == [1, None]


def test_csv_writes_nested_values_as_json_text_and_nulls_as_empty_fields():
    rows = list(csv.DictReader(io.StringIO(rendered("csv").data.decode())))
    assert rows[0]["tags"] == '{"a":"x"}' and rows[0]["l"] == "[1,2]" and rows[0]["d"] == "1.50"
    assert rows[1]["n"] == "" and rows[1]["l"] == ""


@pytest.mark.parametrize("result_format, read", [
    ("arrow", lambda data: pa.ipc.open_stream(data).read_all()),
    ("parquet", lambda data: pq.read_table(io.BytesIO(data))),
])
def test_arrow_and_parquet_keep_the_types(result_format, read):
    assert read(rendered(result_format).data).equals(TABLE)


def test_a_scalar_answer_is_the_first_value_or_null():
    assert rendered("json", TABLE, results.json_scalar).data == b"1"
    assert rendered("json", TABLE.slice(0, 0), results.json_scalar).data == b"null"


def test_results_over_the_threshold_are_streamed_batch_by_batch(monkeypatch):
    monkeypatch.setattr(results, "STREAM_ROWS", 3)
    big = pa.table({"x": list(range(10))})
    reader = pa.RecordBatchReader.from_batches(big.schema, big.to_batches(max_chunksize=2))
    resp = rendered("json", reader)
    assert resp.data is None and orjson.loads(b"".join(resp.stream)) == [{"x": i} for i in range(10)]


@pytest.mark.parametrize("result_format", ["json", "ndjson", "csv"])
def test_rendering_a_large_batch_lets_other_threads_run_all_along(result_format):
    """A write or /health in its own lane needs the GIL while a query's answer is written; pyarrow's to_pylist
    held it for a whole batch (90-100 ms for 256 Ki rows), so no other thread ran meanwhile. CSV goes through
    Python objects for its nested columns (the list here) only."""
    big = pa.table({"n": pa.array(range(512 * 1024), pa.int64()), "s": pa.array(["x"] * 512 * 1024),
                    "l": pa.array([[1, 2]] * 512 * 1024, pa.list_(pa.int64()))})
    assert big.to_batches()[0].num_rows == big.num_rows
    gaps, rendering = [], threading.Event()

    def tick() -> None:
        last = time.perf_counter()
        while rendering.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    rendering.set()
    ticker = threading.Thread(target=tick)
    ticker.start()
    gc.disable()  # a full collection of the test process's objects also holds the GIL (~100 ms): not what this checks
    try:
        resp = rendered(result_format, big)
        answer = b"".join(resp.stream) if resp.data is None else resp.data
    finally:
        gc.enable()
        rendering.clear()
        ticker.join()
    rows = answer.count(b"\n") - 1 if result_format == "csv" else answer.count(b'"n":')
    assert rows == big.num_rows
    assert len(gaps) > 10 and max(gaps) < 0.05, f"another thread waited {max(gaps) * 1000:.0f} ms for the GIL"


def request(query_string: str = "", accept: str | None = None) -> falcon.Request:
    headers = {"Accept": accept} if accept else {}
    return falcon.Request(falcon.testing.create_environ(query_string=query_string, headers=headers))


@pytest.mark.parametrize("query_string, accept, expected", [
    ("", None, "json"), ("", "*/*", "json"), ("", "text/csv", "csv"), ("", "text/*", "csv"),
    ("", "application/json;q=0.1, application/vnd.apache.parquet", "parquet"),
    ("format=NDJSON", "text/csv", "ndjson"), ("format=arrow", "text/html", "arrow"),
])
def test_format_negotiation(query_string, accept, expected):
    assert results.choose_format(request(query_string, accept)) == expected


def test_an_unacceptable_accept_and_an_unknown_format_are_refused():
    with pytest.raises(NotAcceptable, match="text/html"):
        results.choose_format(request("", "text/html"))
    with pytest.raises(InvalidInput, match="format: 'xml'"):
        results.choose_format(request("format=xml"))
