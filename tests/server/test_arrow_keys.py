"""Arrow results (Flight do_get, POST /query/sql as an Arrow stream) carry the `series` column as
dictionary<int32, string> with exactly the values the JSON answer has: stored keys, unflushed keys, keys the
statement computed, nulls; other formats and columns keep their types."""

from __future__ import annotations

import socket

import pyarrow as pa
import pyarrow.flight as flight
import pytest
import requests

T0 = 1_700_000_000_000
ARROW = "application/vnd.apache.arrow.stream"
KEYS = pa.dictionary(pa.int32(), pa.string())


@pytest.fixture(scope="module")
def node(count_server):
    """Three stored series (a restart flushed them) and one only in the WAL; Flight on."""
    first = count_server(WORKERS=1, MEMORY_BUFFER_SIZE=100000)
    stored = [{"series": f"arrowkeys.s{n}", "tags": {"host": f"h{n}"}, "timestamp": T0 + i, "value": float(i)}
              for n in range(3) for i in range(5)]
    assert first.post("/insert", json=stored).status_code == 201
    assert first.stop() == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = count_server(data_dir=first.data_dir, WORKERS=1, MEMORY_BUFFER_SIZE=100000, FLIGHT_PORT=port)
    assert server.post("/insert", json={"series": "arrowkeys.wal", "timestamp": T0, "value": 9.0}).status_code == 201
    assert list(first.data_dir.glob("time_blocks/*/*.parquet"))
    return server, flight.connect(f"grpc://127.0.0.1:{port}")


def over_http(server, sql: str) -> pa.Table:
    answer = server.post("/query/sql", data=sql.encode(), headers={"Content-Type": "text/plain", "Accept": ARROW})
    assert answer.status_code == 200, answer.text
    return pa.ipc.open_stream(answer.content).read_all()


def over_flight(client, sql: str) -> pa.Table:
    return client.do_get(flight.Ticket(sql.encode())).read_all()


def as_json(server, sql: str) -> list:
    answer = server.post("/query/sql", data=sql.encode(), headers={"Content-Type": "text/plain"})
    assert answer.status_code == 200, answer.text
    return answer.json()["rows"]


READERS = {"http": lambda served, sql: over_http(served[0], sql),
           "flight": lambda served, sql: over_flight(served[1], sql)}


@pytest.mark.parametrize("route", READERS)
@pytest.mark.parametrize("sql", [
    "SELECT series, epoch_ms(ts) AS ts, value FROM points ORDER BY series, ts",
    "SELECT series, count(*) AS n FROM points GROUP BY series ORDER BY series;",
    # keys the statement made up, and nulls, beside real ones
    "SELECT CASE WHEN value = 1 THEN series || '!' WHEN value = 2 THEN NULL ELSE series END AS series, value "
    "FROM points ORDER BY series, value -- a comment",
])
def test_series_comes_dictionary_encoded_with_the_json_values(node, route, sql):
    table = READERS[route](node, sql)
    assert table.schema.field("series").type == KEYS
    assert [list(row.values()) for row in table.to_pylist()] == as_json(node[0], sql)


@pytest.mark.parametrize("route", READERS)
def test_unflushed_keys_and_stored_keys_are_all_there(node, route):
    table = READERS[route](node, "SELECT DISTINCT series FROM points ORDER BY 1")
    assert table["series"].to_pylist() == [f'arrowkeys.s{n}{{host="h{n}"}}' for n in range(3)] + ["arrowkeys.wal"]


def test_a_batch_carries_only_the_keys_it_uses(node):
    table = over_http(node[0], "SELECT series FROM points WHERE series = 'arrowkeys.wal'")
    assert [chunk.dictionary.to_pylist() for chunk in table["series"].chunks] == [["arrowkeys.wal"]]


@pytest.mark.parametrize("sql, kind", [
    ("SELECT series AS key, value FROM points LIMIT 1", pa.string()),  # only a column named series changes
    ("SELECT 1 AS series", pa.int32()),
])
def test_other_columns_keep_their_types(node, sql, kind):
    assert over_http(node[0], sql).schema.field(0).type == kind


def test_json_and_flight_info_agree_with_the_stream(node):
    server, client = node
    answer = server.post("/query/sql", data=b"SELECT series FROM points LIMIT 1",
                         headers={"Content-Type": "text/plain"})
    assert answer.json()["columns"] == [{"name": "series", "type": "string"}]
    info = client.get_flight_info(flight.FlightDescriptor.for_command(b"SELECT series, value FROM points"))
    assert info.schema.field("series").type == KEYS


@pytest.fixture(scope="module")
def limited(count_server):
    return count_server(QUERY_MAX_ROWS=150_000, WORKERS=1)


def test_an_arrow_stream_past_the_row_limit_is_cut_short_and_the_client_can_tell(limited):
    """The limit is passed after the first STREAM_ROWS rows were sent with a 200: the stream ends without its
    end-of-stream marker, so reading it fails rather than yielding fewer rows than the statement has."""
    answer = limited.post("/query/sql", data=b"SELECT 'k' AS series, i FROM range(150001) t(i)",
                          headers={"Content-Type": "text/plain", "Accept": ARROW}, stream=True)
    assert answer.status_code == 200
    with pytest.raises(Exception):  # noqa: B017 - urllib3's or pyarrow's, depending on where the cut falls
        pa.ipc.open_stream(answer.raw).read_all()
    assert over_http(limited, "SELECT 'k' AS series, i FROM range(150000) t(i)").num_rows == 150_000
    assert "streamed answer cut short" in limited.log_text()


def test_a_stream_cut_short_is_a_broken_http_transfer_and_one_log_line_not_a_traceback(limited):
    answer = limited.post("/query/sql", data=b"SELECT i FROM range(150001) t(i)",
                          headers={"Content-Type": "text/plain", "Accept": ARROW}, stream=True)
    assert answer.status_code == 200
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        answer.content
    log = limited.log_text()
    assert "streamed answer cut short: the result has more than 150000 rows" in log
    assert "Traceback" not in log and "Error handling request" not in log


@pytest.mark.parametrize("result_format", ["json", "csv"])
def test_every_format_of_sql_streams_so_a_limit_past_the_first_rows_cuts_the_transfer(limited, result_format):
    """Not only Arrow: JSON and CSV answers are streamed as DuckDB makes them, never built whole first, so the
    row limit is met after the 200 went out."""
    answer = limited.post("/query/sql", data=b"SELECT i FROM range(150001) t(i)", params={"format": result_format},
                          headers={"Content-Type": "text/plain"}, stream=True)
    assert answer.status_code == 200
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        answer.content
