"""The Count HTTP contract against real gunicorn (2 workers): every endpoint and every error path."""

from __future__ import annotations

import gzip
import urllib.parse

import pytest
import requests

T0 = 1_640_995_200_000  # 2022-01-01T00:00:00Z


def insert(server, series, ts, value, **kwargs):
    return server.post("/insert", json={"series": series, "timestamp": ts, "value": value}, **kwargs)


def test_insert_answers_201_and_the_point_is_queryable(server):
    assert insert(server, "cpu.usage.total", T0, 75.5).status_code == 201
    response = server.get("/query/range/cpu.usage.total", params={"start": T0, "end": T0})
    assert response.status_code == 200
    assert response.json() == [{"timestamp": T0, "value": 75.5}]


def test_range_is_inclusive_and_in_time_order(server):
    for offset in (30, 10, 20, 0, 40):
        assert insert(server, "range.order", T0 + offset, float(offset)).status_code == 201
    got = server.get("/query/range/range.order", params={"start": T0 + 10, "end": T0 + 30}).json()
    assert got == [{"timestamp": T0 + o, "value": float(o)} for o in (10, 20, 30)]


def test_unknown_series_is_an_empty_list(server):
    response = server.get("/query/range/never.written", params={"start": 0, "end": T0})
    assert response.status_code == 200 and response.json() == []


@pytest.mark.parametrize("aggregation, expected", [
    ("sum", 6.0), ("mean", 2.0), ("avg", 2.0), ("min", 1.0), ("max", 3.0), ("count", 3),
])
def test_aggregations(server, aggregation, expected):
    series = "agg.series"
    for i, value in enumerate((1.0, 2.0, 3.0)):
        insert(server, series, T0 + i, value)
    response = server.get(f"/query/aggregated/{series}",
                          params={"start": T0, "end": T0 + 2, "aggregation": aggregation})
    assert response.status_code == 200
    assert response.json() == expected


@pytest.mark.parametrize("aggregation, expected", [("count", 0), ("sum", None), ("mean", None), ("max", None)])
def test_aggregations_over_no_points(server, aggregation, expected):
    response = server.get("/query/aggregated/agg.empty", params={"start": 0, "end": 10, "aggregation": aggregation})
    assert response.status_code == 200 and response.json() == expected


@pytest.mark.parametrize("name", ["server-1.disk.usage./var/log", 'cpu{host="a",dc="eu"}', "a:b=c,d", "ünïcode/ä"])
def test_series_names_with_special_characters_round_trip_through_the_path(server, name):
    assert insert(server, name, T0, 1.25).status_code == 201
    path = "/query/range/" + urllib.parse.quote(name, safe="")
    assert server.get(path, params={"start": T0, "end": T0}).json() == [{"timestamp": T0, "value": 1.25}]


def test_health_reports_the_contract_fields(server):
    response = server.get("/health")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "healthy" and body["node_id"] == 1 and body["cluster_size"] == 1
    assert server.get("/ready").status_code == 200


def test_last_write_wins_for_the_same_series_and_timestamp(server):
    for value in (1.0, 2.0, 3.0):
        assert insert(server, "lww", T0, value).status_code == 201
    assert server.get("/query/range/lww", params={"start": T0, "end": T0}).json() == [{"timestamp": T0, "value": 3.0}]


def test_json_array_ndjson_and_csv_batches(server):
    batch = [{"series": "batch.json", "timestamp": T0 + i, "value": i} for i in range(5)]
    assert server.post("/insert", json=batch).status_code == 201
    ndjson = "\n".join(f'{{"series":"batch.nd","timestamp":{T0 + i},"value":{i}}}' for i in range(4))
    assert server.post("/insert", data=ndjson, headers={"Content-Type": "application/x-ndjson"}).status_code == 201
    csv_body = "series,timestamp,value\n" + "".join(f"batch.csv,{T0 + i},{i}\n" for i in range(3))
    assert server.post("/insert", data=csv_body, headers={"Content-Type": "text/csv"}).status_code == 201
    for series, count in (("batch.json", 5), ("batch.nd", 4), ("batch.csv", 3)):
        got = server.get(f"/query/aggregated/{series}", params={"start": T0, "end": T0 + 10, "aggregation": "count"})
        assert got.json() == count


def test_gzip_bodies_are_accepted(server):
    body = gzip.compress(b'{"series": "gz", "timestamp": 1640995200000, "value": 2.5}')
    response = server.post("/insert", data=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert response.status_code == 201
    assert server.get("/query/range/gz", params={"start": T0, "end": T0}).json() == [{"timestamp": T0, "value": 2.5}]


BAD_POINTS = [
    ({"series": "", "timestamp": T0, "value": 1}, "series"),
    ({"timestamp": T0, "value": 1}, "series"),
    ({"series": "s", "value": 1}, "timestamp"),
    ({"series": "s", "timestamp": T0}, "value"),
    ({"series": "s", "timestamp": -1, "value": 1}, "timestamp"),
    ({"series": "s", "timestamp": 1.5, "value": 1}, "timestamp"),
    ({"series": "s", "timestamp": "1640995200000", "value": 1}, "timestamp"),
    ({"series": "s", "timestamp": T0, "value": "1"}, "value"),
    ({"series": "s", "timestamp": T0, "value": True}, "value"),
    ({"series": "s", "timestamp": T0, "value": None}, "value"),
    ({"series": 5, "timestamp": T0, "value": 1}, "series"),
]


@pytest.mark.parametrize("point, field", BAD_POINTS)
def test_bad_points_get_400_naming_the_field(server, point, field):
    response = server.post("/insert", json=point)
    assert response.status_code == 400
    assert field in response.json()["error"]


@pytest.mark.parametrize("raw", [b'{"series":"s","timestamp":1640995200000,"value":NaN}',
                                 b'{"series":"s","timestamp":1640995200000,"value":Infinity}',
                                 b'{"series":"s","timestamp":1640995200000,"value":1e999}',
                                 b"not json", b"[]", b"42"])
def test_non_finite_values_and_malformed_bodies_get_400(server, raw):
    response = server.post("/insert", data=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "error" in response.json()


def test_a_batch_with_one_bad_point_stores_nothing(server):
    batch = [{"series": "atomic", "timestamp": T0 + i, "value": i} for i in range(3)]
    batch.append({"series": "atomic", "timestamp": T0 + 9, "value": "x"})
    response = server.post("/insert", json=batch)
    assert response.status_code == 400 and "points[3].value" in response.json()["error"]
    assert server.get("/query/range/atomic", params={"start": 0, "end": T0 * 2}).json() == []


@pytest.mark.parametrize("params, field", [
    ({"end": 10}, "start"), ({"start": 0}, "end"), ({"start": "x", "end": 10}, "start"),
    ({"start": 0, "end": "1.5"}, "end"), ({"start": 10, "end": 0}, "start"),
])
def test_bad_range_parameters_get_400(server, params, field):
    response = server.get("/query/range/cpu", params=params)
    assert response.status_code == 400 and field in response.json()["error"]


def test_unknown_aggregation_gets_400(server):
    response = server.get("/query/aggregated/cpu", params={"start": 0, "end": 1, "aggregation": "median-ish"})
    assert response.status_code == 400 and "aggregation" in response.json()["error"]


def test_body_over_the_limit_gets_413(count_server):
    small = count_server(MAX_BODY_BYTES=1000)
    big = [{"series": "big", "timestamp": T0 + i, "value": i} for i in range(100)]
    assert small.post("/insert", json=big).status_code == 413
    bomb = gzip.compress(b"[" + b" " * 100_000 + b"]")
    response = small.post("/insert", data=bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert response.status_code == 413 and "MAX_BODY_BYTES" in response.json()["error"]
    small.stop()


def test_unsupported_content_type_gets_415(server):
    response = server.post("/insert", data=b"x", headers={"Content-Type": "application/xml"})
    assert response.status_code == 415 and "error" in response.json()


@pytest.mark.parametrize("method, path, status", [("GET", "/nowhere", 404), ("DELETE", "/insert", 405),
                                                   ("POST", "/health", 405)])
def test_unknown_routes_and_methods_answer_json(server, method, path, status):
    response = requests.request(method, server.url + path, timeout=10)
    assert response.status_code == status
    assert "error" in response.json()


def test_reads_see_writes_acknowledged_by_any_worker(count_server):
    node = count_server(WORKERS=2, MEMORY_BUFFER_SIZE=100000)
    pids = set()
    for i in range(60):
        # A fresh connection each time, so both workers take turns at writing and reading.
        assert requests.post(node.url + "/insert", json={"series": "ryw", "timestamp": T0 + i, "value": i},
                             timeout=10).status_code == 201
        got = requests.get(node.url + "/query/aggregated/ryw",
                           params={"start": T0, "end": T0 + i, "aggregation": "count"}, timeout=10)
        assert got.json() == i + 1
    pids.update(p.name.split("-")[0] for p in (node.data_dir / "wal").iterdir())
    assert len(pids) == 2, "both workers should have written"
    node.stop()


def test_tags_with_non_string_values_get_400_not_500(server):
    batch = [{"series": "tagged", "tags": {"host": "a"}, "timestamp": T0, "value": 1},
             {"series": "tagged", "tags": {"host": ["a"]}, "timestamp": T0, "value": 1}]
    response = server.post("/insert", json=batch)
    assert response.status_code == 400 and "points[1].tags" in response.json()["error"]


def test_a_batch_repeating_tagged_series_stores_each_point_under_its_key(server):
    batch = [{"series": "rep", "tags": {"host": f"h{i % 2}"}, "timestamp": T0 + i, "value": i} for i in range(6)]
    assert server.post("/insert", json=batch).status_code == 201
    for host, expected in (("h0", [0, 2, 4]), ("h1", [1, 3, 5])):
        got = server.get(f'/query/range/rep{{host="{host}"}}', params={"start": T0, "end": T0 + 10}).json()
        assert [p["value"] for p in got] == expected
