"""InfluxDB line protocol (1.x, 2.x, 3.x endpoints), Prometheus remote write and Arrow through real gunicorn."""

from __future__ import annotations

import gzip

import pyarrow as pa
import pytest

from support.remote_write import compress, request

T0_NS = 1_640_995_200_000_000_000
T0 = T0_NS // 1_000_000


def count(server, series, start=T0, end=T0 + 10_000):
    return server.get(f"/query/aggregated/{series}", params={"start": start, "end": end, "aggregation": "count"}).json()


def test_influx_v1_write_turns_each_field_into_a_series(server):
    body = f'weather,city=Paris temp=21.5,humidity=60i,raining=t,note="mild" {T0_NS}\n'
    response = server.post("/write?db=telegraf&precision=ns", data=body)
    assert response.status_code == 204
    assert response.headers["X-Count-String-Fields-Skipped"] == "1"
    for field, value in (("temp", 21.5), ("humidity", 60.0), ("raining", 1.0)):
        got = server.get(f'/query/range/weather.{field}{{city="Paris"}}', params={"start": T0, "end": T0}).json()
        assert got == [{"timestamp": T0, "value": value}]


def test_influx_v2_write_with_gzip_and_second_precision(server):
    body = gzip.compress(f"cpu2,host=a value=3 {T0 // 1000}\n".encode())
    response = server.post("/api/v2/write?org=o&bucket=b&precision=s", data=body, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 204
    assert count(server, 'cpu2{host="a"}') == 1


def test_a_chunked_body_without_content_length_is_read_whole(server):
    # Streamed bodies (Go's net/http with an unknown length, `curl -T -`) come chunked, with no Content-Length.
    lines = [f"chunked,host=a value={i} {T0_NS + i * 1_000_000}\n".encode() for i in range(100)]
    response = server.post("/api/v2/write?org=o&bucket=b&precision=ns", data=iter(lines))
    assert response.status_code == 204, response.text
    assert count(server, 'chunked{host="a"}') == 100
    points = [f'{{"series": "chunked.json", "timestamp": {T0 + i}, "value": {i}}}\n'.encode() for i in range(10)]
    response = server.post("/insert", data=iter(points), headers={"Content-Type": "application/x-ndjson"})
    assert response.status_code == 201, response.text
    assert count(server, "chunked.json") == 10


def test_bad_lines_are_reported_and_the_good_ones_written(server):
    body = f"ok1 value=1 {T0_NS}\nbroken line here\nok2 value=2 {T0_NS}\n"
    response = server.post("/api/v3/write_lp?db=x&precision=nanosecond", data=body)
    assert response.status_code == 400
    document = response.json()
    assert document["error"] == "partial write of line protocol occurred"
    assert document["data"][0]["line_number"] == 2 and document["data"][0]["original_line"] == "broken line here"
    assert count(server, "ok1") == 1 and count(server, "ok2") == 1


def test_accept_partial_false_writes_nothing_when_a_line_is_bad(server):
    body = f"nopartial value=1 {T0_NS}\nbad\n"
    response = server.post("/api/v3/write_lp?db=x&accept_partial=false", data=body)
    assert response.status_code == 400 and response.json()["data"][0]["line_number"] == 2
    assert count(server, "nopartial") == 0


@pytest.mark.parametrize("path", ["/write", "/api/v2/write?org=o", "/write?db=x&precision=fortnight"])
def test_missing_database_or_bad_precision_is_400(server, path):
    response = server.post(path, data=f"m value=1 {T0_NS}")
    assert response.status_code == 400 and "error" in response.json()


def test_the_official_influxdb_client_writes_with_gzip(server):
    import influxdb_client
    from influxdb_client.client.write_api import SYNCHRONOUS

    with influxdb_client.InfluxDBClient(url=server.url, token="t", org="o", enable_gzip=True) as client:
        point = influxdb_client.Point("official").tag("host", "h9").field("load", 0.75).time(T0_NS)
        client.write_api(write_options=SYNCHRONOUS).write(bucket="b", record=point)
    assert server.get('/query/range/official.load{host="h9"}', params={"start": T0, "end": T0}).json() == \
        [{"timestamp": T0, "value": 0.75}]


REMOTE_HEADERS = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
                  "X-Prometheus-Remote-Write-Version": "0.1.0"}


def test_prometheus_remote_write_stores_samples_with_labels_as_tags(server):
    body = compress(request(([("__name__", "up"), ("job", "node")], [(1.0, T0), (0.0, T0 + 15000)])).SerializeToString())
    assert server.post("/api/v1/write", data=body, headers=REMOTE_HEADERS).status_code == 204
    got = server.get('/query/range/up{job="node"}', params={"start": T0, "end": T0 + 15000}).json()
    assert got == [{"timestamp": T0, "value": 1.0}, {"timestamp": T0 + 15000, "value": 0.0}]


def test_remote_write_rejects_garbage_with_400(server):
    assert server.post("/api/v1/write", data=b"not snappy", headers=REMOTE_HEADERS).status_code == 400


def test_arrow_ipc_stream_insert(server):
    table = pa.table({"series": pa.array(["arrow.a", "arrow.b"]).dictionary_encode(),
                      "timestamp": pa.array([T0, T0 + 1], pa.timestamp("ms")),
                      "value": pa.array([1.5, 2.5])})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    response = server.post("/insert", data=sink.getvalue().to_pybytes(),
                           headers={"Content-Type": "application/vnd.apache.arrow.stream"})
    assert response.status_code == 201
    assert count(server, "arrow.a") == 1 and count(server, "arrow.b") == 1


def arrow_body(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize("bad_key, reason", [("", "non-empty"), ("bad\nkey", "control characters"),
                                             ("k" * 5000, "longer than")])
@pytest.mark.parametrize("dictionary", [True, False])
def test_arrow_series_keys_are_checked_like_json_ones(server, bad_key, reason, dictionary):
    series = pa.array(["arrow.ok", bad_key])
    table = pa.table({"series": series.dictionary_encode() if dictionary else series,
                      "timestamp": pa.array([T0, T0 + 1], pa.int64()), "value": pa.array([1.0, 2.0])})
    response = server.post("/insert", data=arrow_body(table),
                           headers={"Content-Type": "application/vnd.apache.arrow.stream"})
    assert response.status_code in (400, 413) and reason in response.json()["error"]


def test_an_unused_dictionary_entry_is_not_checked(server):
    series = pa.DictionaryArray.from_arrays(pa.array([0, 0], pa.int32()), pa.array(["arrow.used", ""]))
    table = pa.table({"series": series, "timestamp": pa.array([T0, T0 + 1], pa.int64()),
                      "value": pa.array([1.0, 2.0])})
    response = server.post("/insert", data=arrow_body(table),
                           headers={"Content-Type": "application/vnd.apache.arrow.stream"})
    assert response.status_code == 201 and count(server, "arrow.used") == 2
