"""GET /series, /tags and /tags/{key}/values against real gunicorn: flushed series from the catalog plus
series whose points are not flushed yet, filtered by match= and by time extent."""

from __future__ import annotations

import csv
import io

import pyarrow as pa
import pytest

T0 = 1_640_995_200_000


def insert(node, points):
    body = [{"series": name, "tags": tags, "timestamp": t, "value": 1.0} for name, tags, t in points]
    assert node.post("/insert", json=body).status_code == 201


@pytest.fixture(scope="module")
def node(count_server):
    """disk{host=a,dev=sda} flushed at T0..T0+10; then, unflushed: disk{host=a,dev=sda} at T0+100 (extends its
    extent), net{host=b,if=eth0} at T0+50 and plain 'up' at T0+5."""
    first = count_server(MEMORY_BUFFER_SIZE=100_000, WORKERS=1)
    insert(first, [("disk", {"host": "a", "dev": "sda"}, T0), ("disk", {"host": "a", "dev": "sda"}, T0 + 10)])
    assert first.stop() == 0
    server = count_server(data_dir=first.data_dir, MEMORY_BUFFER_SIZE=100_000, WORKERS=2)
    insert(server, [("disk", {"host": "a", "dev": "sda"}, T0 + 100), ("net", {"host": "b", "if": "eth0"}, T0 + 50),
                    ("up", {}, T0 + 5)])
    yield server
    server.stop()


def listed(node, **params):
    response = node.get("/series", params=params)
    assert response.status_code == 200, response.text
    return response.json()["series"]


def test_series_lists_flushed_and_unflushed_series_with_their_extents(node):
    assert [s for s in listed(node) if s["name"] != "fresh"] == [
        {"key": 'disk{dev="sda",host="a"}', "name": "disk", "tags": {"dev": "sda", "host": "a"},
         "first_timestamp": T0, "last_timestamp": T0 + 100},
        {"key": 'net{host="b",if="eth0"}', "name": "net", "tags": {"host": "b", "if": "eth0"},
         "first_timestamp": T0 + 50, "last_timestamp": T0 + 50},
        {"key": "up", "name": "up", "tags": {}, "first_timestamp": T0 + 5, "last_timestamp": T0 + 5},
    ]


def test_a_just_written_series_is_discoverable_at_once(node):
    insert(node, [("fresh", {"zone": "z1"}, T0 + 7)])
    assert [s["key"] for s in listed(node, match='{zone="z1"}')] == ['fresh{zone="z1"}']
    response = node.get("/tags/zone/values")
    assert response.json() == {"values": ["z1"]}


@pytest.mark.parametrize("params, keys", [
    ({"match": '{host="a"}'}, ['disk{dev="sda",host="a"}']),
    ({"match": '{host=~"a|b"}'}, ['disk{dev="sda",host="a"}', 'net{host="b",if="eth0"}']),
    ({"match": "up"}, ["up"]),
    ({"start": T0 + 60, "end": T0 + 200}, ['disk{dev="sda",host="a"}']),
    ({"start": T0 + 20, "end": T0 + 50}, ['disk{dev="sda",host="a"}', 'net{host="b",if="eth0"}']),
    ({"end": T0 + 4}, ['disk{dev="sda",host="a"}']),
])
def test_series_are_filtered_by_selector_and_time_extent(node, params, keys):
    assert [s["key"] for s in listed(node, **params) if s["name"] != "fresh"] == keys


def test_tag_keys(node):
    assert node.get("/tags", params={"match": '{__name__=~"disk|net|up"}'}).json() == {"tags": ["dev", "host", "if"]}
    assert node.get("/tags", params={"match": "net"}).json() == {"tags": ["host", "if"]}
    assert node.get("/tags", params={"match": "up"}).json() == {"tags": []}


def test_tag_values_and_series_names(node):
    assert node.get("/tags/host/values", params={"match": '{host!=""}'}).json() == {"values": ["a", "b"]}
    assert node.get("/tags/dev/values").json() == {"values": ["sda"]}
    assert node.get("/tags/nope/values").json() == {"values": []}
    names = node.get("/tags/__name__/values", params={"match": '{__name__!="fresh"}'}).json()
    assert names == {"values": ["disk", "net", "up"]}


@pytest.mark.parametrize("path, params, problem", [
    ("/series", {"match": "disk{"}, "match: bad selector"),
    ("/tags", {"match": '{a=~"("}'}, "match: bad regex"),
    ("/tags/bad key/values", {}, "key: 'bad key'"),
    ("/series", {"start": "soon"}, "start:"),
])
def test_bad_discovery_requests_get_400_naming_the_problem(node, path, params, problem):
    response = node.get(path, params=params)
    assert response.status_code == 400 and response.json()["error"].startswith(problem), response.text


def test_series_listing_in_tabular_formats(node):
    params = {"match": "net"}
    table = pa.ipc.open_stream(node.get("/series", params={**params, "format": "arrow"}).content).read_all()
    assert table.schema.names == ["series", "name", "tags", "first_timestamp", "last_timestamp"]
    assert table.to_pylist(maps_as_pydicts="strict")[0]["tags"] == {"host": "b", "if": "eth0"}
    rows = list(csv.DictReader(io.StringIO(node.get("/series", params={**params, "format": "csv"}).text)))
    assert rows == [{"series": 'net{host="b",if="eth0"}', "name": "net", "tags": '{"host":"b","if":"eth0"}',
                     "first_timestamp": str(T0 + 50), "last_timestamp": str(T0 + 50)}]
