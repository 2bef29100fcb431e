"""Writes through any node are read through every node: 3 real nodes, RF=2, every write protocol."""

from __future__ import annotations

import os
import subprocess
import sys

import cramjam
import orjson
import pyarrow as pa
import pyarrow.flight as flight
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from countdb.cluster.ring import Ring
from countdb.ingest import prompb_pb2
from support.cluster import every_worker_reloads_its_view, members_seen_by
from support.remote_write import compress, request

HOUR_MS = 3_600_000
REMOTE_WRITE_HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                        "X-Prometheus-Remote-Write-Version": "0.1.0"}
START_MS = 1_700_000_000_000


def _points(prefix: str, series_count: int, per_series: int) -> list[dict]:
    return [{"series": f"{prefix}{s}", "timestamp": START_MS + i * 1000, "value": float(s * 1000 + i)}
            for s in range(series_count) for i in range(per_series)]


def test_points_written_through_each_node_are_answered_by_every_node(shared_cluster):
    cluster = shared_cluster
    for index in range(3):
        response = requests.post(cluster.url(index) + "/insert", json=_points(f"via{index}_", 10, 5), timeout=30)
        assert response.status_code == 201, response.text
    for reader in range(3):
        url = cluster.url(reader)
        for writer in range(3):
            for s in range(10):
                rows = requests.get(f"{url}/query/range/via{writer}_{s}",
                                    params={"start": START_MS, "end": START_MS + HOUR_MS}, timeout=30).json()
                assert [row["value"] for row in rows] == [float(s * 1000 + i) for i in range(5)], (reader, writer, s)
        total = requests.post(f"{url}/query/sql", data="SELECT count(*), count(DISTINCT series) FROM points WHERE name LIKE 'via%'",
                              headers={"Content-Type": "text/plain"}, timeout=30)
        assert total.json()["rows"] == [[150, 30]], total.text  # SQL reads each point once, cluster-wide
        matched = requests.get(f"{url}/query/aggregated", params={"match": '{__name__=~"via.*"}', "start": START_MS,
                                                               "end": START_MS + HOUR_MS, "aggregation": "count"},
                               timeout=30)
        assert matched.json() == {"groups": [{"tags": {}, "value": 150}]}, matched.text
        listed = requests.get(f"{url}/series", params={"match": '{__name__=~"via.*"}'}, timeout=30).json()
        assert len(listed["series"]) == 30, listed


def _answers_relayed_by(url: str) -> float:
    """One-series queries this node answered for a node that does not own the series (/cluster/answer/{kind})."""
    text = requests.get(url + "/metrics", timeout=30).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "count_http_requests_total" and sample.labels["route"] == "/cluster/answer/{kind}"
               and sample.labels["status"] == "200")


def test_a_node_that_does_not_own_a_series_relays_an_owners_answer_in_every_format(shared_cluster):
    """Issue 12: through a node that is not an owner, a one-series query is answered whole by one caught-up owner
    (one copy is a read quorum with the default quorum writes) and its answer relayed as it is."""
    cluster = shared_cluster
    ring = Ring.build(tuple(cluster.addresses))
    series = next(f"relay{i}" for i in range(1000) if 0 not in ring.owners(f"relay{i}", 2))
    owner = ring.owners(series, 2)[0]
    points = [{"series": series, "timestamp": START_MS + i * 1000, "value": float(i % 7)} for i in range(120)]
    assert requests.post(cluster.url(0) + "/insert", json=points, timeout=30).status_code == 201
    cluster.wait_until(lambda: members_seen_by(cluster, 0)[owner]["caught_up"], 30, "node 1 sees the owner caught up")
    every_worker_reloads_its_view()  # else a worker still without that view relays to the other owner
    before = _answers_relayed_by(cluster.url(owner))
    queries = [("range", {}), ("aggregated", {"aggregation": "max"}),
               ("aggregated", {"aggregation": "avg", "step": "30s"})]
    for kind, extra in queries:
        for result_format in ("json", "ndjson", "csv", "arrow", "parquet"):
            params = {"start": START_MS, "end": START_MS + HOUR_MS, "format": result_format, **extra}
            relayed = requests.get(f"{cluster.url(0)}/query/{kind}/{series}", params=params, timeout=30)
            direct = requests.get(f"{cluster.url(owner)}/query/{kind}/{series}", params=params, timeout=30)
            assert relayed.status_code == direct.status_code == 200, relayed.text
            assert relayed.headers["Content-Type"] == direct.headers["Content-Type"]
            assert relayed.content == direct.content, (kind, extra, result_format)
    accepted = requests.get(f"{cluster.url(0)}/query/range/{series}", timeout=30, headers={"Accept": "text/csv"},
                            params={"start": START_MS, "end": START_MS + 1000})
    assert accepted.headers["Content-Type"] == "text/csv" and accepted.text.splitlines()[1:] == [
        f"{START_MS},0", f"{START_MS + 1000},1"], accepted.text  # negotiated on the node asked, then relayed
    assert _answers_relayed_by(cluster.url(owner)) - before == len(queries) * 5 + 1
    unsigned = requests.get(f"{cluster.url(owner)}/cluster/answer/range", timeout=10,
                            params={"series": series, "start": START_MS, "end": START_MS + HOUR_MS})
    assert unsigned.status_code == 401  # an owner's copy alone is an internal answer


def _sql_plans(url: str) -> dict[str, float]:
    plans = {}
    for line in requests.get(url + "/metrics", timeout=30).text.splitlines():
        if line.startswith("count_cluster_sql_statements_total{"):
            plans[line.split('plan="')[1].split('"')[0]] = float(line.split()[-1])
    return plans


def test_sql_grouped_by_series_runs_on_each_node_and_answers_as_reading_every_point_here(shared_cluster):
    """Issue 12: a statement grouped by series is answered by each node over the series it answers for; only the
    answers travel. Through every node it matches the same statement answered from every point read here."""
    cluster = shared_cluster
    assert requests.post(cluster.url(1) + "/insert", json=_points("split", 24, 7), timeout=30).status_code == 201
    grouped = ("SELECT series, count(*) AS n, sum(value) AS total, max(ts) AS last FROM points "
               "WHERE series LIKE 'split%' GROUP BY series")
    expected = sorted([f"split{s}", 7, float(sum(s * 1000 + i for i in range(7)))] for s in range(24))
    for index in range(3):
        url = cluster.url(index)
        before = _sql_plans(url)
        split = requests.post(url + "/query/sql", data=grouped, headers={"Content-Type": "text/plain"}, timeout=30)
        assert split.status_code == 200, split.text
        assert sorted(row[:3] for row in split.json()["rows"]) == expected
        arrow = requests.post(url + "/query/sql", data=grouped, timeout=30, headers={
            "Content-Type": "text/plain", "Accept": "application/vnd.apache.arrow.stream"})
        table = pa.ipc.open_stream(arrow.content).read_all()
        assert sorted(table.select(["series", "n", "total"]).to_pylist(), key=lambda row: row["series"]) == \
            sorted(({"series": k, "n": n, "total": t} for k, n, t in expected), key=lambda row: row["series"])
        ordered = requests.post(url + "/query/sql", data=grouped + " ORDER BY series", timeout=30,
                                headers={"Content-Type": "text/plain"})  # not split: every point read here
        assert [row[:3] for row in ordered.json()["rows"]] == sorted(expected)
        after = _sql_plans(url)
        assert after.get("split", 0) - before.get("split", 0) >= 2, (before, after)
        assert after.get("points", 0) - before.get("points", 0) >= 1, (before, after)


def test_every_write_protocol_works_through_every_node(shared_cluster):
    cluster = shared_cluster
    for index in range(3):
        url = cluster.url(index)
        lines = "\n".join(f"lp{index},host=h{h} value={h}.5 {(START_MS + h) * 1_000_000}" for h in range(4))
        assert requests.post(f"{url}/api/v2/write", params={"bucket": "b"}, data=lines, timeout=30).status_code == 204
        assert requests.post(f"{url}/write", params={"db": "d"}, data=f"v1_{index} value=1 {START_MS}000000",
                             timeout=30).status_code == 204
        body = compress(request(([("__name__", f"rw{index}"), ("job", "j")], [(7.0, START_MS)])).SerializeToString())
        assert requests.post(f"{url}/api/v1/write", data=body, headers=REMOTE_WRITE_HEADERS,
                             timeout=30).status_code == 204
        ndjson = "\n".join(f'{{"series": "nd{index}", "timestamp": {START_MS + i}, "value": {i}}}' for i in range(3))
        assert requests.post(f"{url}/insert", data=ndjson, headers={"Content-Type": "application/x-ndjson"},
                             timeout=30).status_code == 201
        client = flight.connect(f"grpc://127.0.0.1:{cluster.flight_ports[index]}")
        table = pa.table({"series": [f"fl{index}"] * 5, "timestamp": pa.array(range(START_MS, START_MS + 5), pa.int64()),
                          "value": pa.array([1.0] * 5)})
        writer, acks = client.do_put(flight.FlightDescriptor.for_path("points"), table.schema)
        writer.write_table(table)
        writer.done_writing()
        assert orjson.loads(acks.read().to_pybytes()) == {"points": 5}
        writer.close()
    for index in range(3):
        got = requests.post(cluster.url(index) + "/query/sql", headers={"Content-Type": "text/plain"}, timeout=30,
                            data="SELECT name, count(*) FROM points WHERE regexp_matches(name, '^(lp|v1_|rw|nd|fl)[0-9]$') "
                                 "GROUP BY name ORDER BY name").json()["rows"]
        assert got == sorted([[f"lp{i}", 4] for i in range(3)] + [[f"v1_{i}", 1] for i in range(3)]
                             + [[f"rw{i}", 1] for i in range(3)] + [[f"nd{i}", 3] for i in range(3)]
                             + [[f"fl{i}", 5] for i in range(3)])
        reader = flight.connect(f"grpc://127.0.0.1:{cluster.flight_ports[index]}").do_get(flight.Ticket(
            b"SELECT count(*) AS n FROM points WHERE name LIKE 'fl_'"))
        assert reader.read_all().to_pylist() == [{"n": 15}]  # Flight do_get reads the whole cluster too


def test_a_delete_through_any_node_hides_the_points_on_every_node(shared_cluster):
    cluster = shared_cluster
    points = [{"series": "gone", "timestamp": START_MS + i, "value": 1.0} for i in range(10)]
    assert requests.post(cluster.url(0) + "/insert", json=points, timeout=30).status_code == 201
    deleted = requests.delete(cluster.url(1) + "/series/gone", params={"end": START_MS + 4}, timeout=30)
    assert deleted.status_code == 200, deleted.text
    for index in range(3):
        rows = requests.get(cluster.url(index) + "/query/range/gone", params={"start": START_MS,
                                                                           "end": START_MS + 100}, timeout=30).json()
        assert [row["timestamp"] for row in rows] == [START_MS + i for i in range(5, 10)]


def test_cluster_status_shows_every_member_up_with_its_ring_share(shared_cluster):
    status = shared_cluster.signed(0, "GET", "/cluster/status").json()
    assert [(m["node"], m["state"], m["self"]) for m in status["members"]] == [(1, "up", True), (2, "up", False),
                                                                              (3, "up", False)]
    assert sum(m["ring_share"] for m in status["members"]) == pytest.approx(1.0, abs=0.01)
    node = shared_cluster.nodes[0]
    shown = subprocess.run([sys.executable, "-m", "countdb", "cluster", "status"], capture_output=True, text=True,
                           env={**os.environ, **node.env, "DATA_DIR": str(node.data_dir)}, timeout=60)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["node", "address", "state", "last", "contact", "ring", "share", "hints", "pending"]
    assert [line.split()[0] for line in lines[1:4]] == ["1", "2", "3"] and "(this)" in lines[1]
    assert all(" up " in line for line in lines[1:4])
    assert "writes accepted" in shown.stdout


def test_the_prometheus_query_api_and_remote_read_answer_for_the_whole_cluster(shared_cluster):
    cluster, hosts = shared_cluster, [f"h{h}" for h in range(30)]
    body = [{"series": "prom_cluster", "tags": {"host": host}, "timestamp": START_MS + i * 1000, "value": float(h + i)}
            for h, host in enumerate(hosts) for i in range(10)]
    assert requests.post(cluster.url(0) + "/insert", json=body, timeout=30).status_code == 201
    at = (START_MS + 9_000) / 1000
    read = prompb_pb2.ReadRequest(queries=[prompb_pb2.Query(
        start_timestamp_ms=START_MS, end_timestamp_ms=START_MS + 9_000,
        matchers=[prompb_pb2.LabelMatcher(type=prompb_pb2.LabelMatcher.EQ, name="__name__", value="prom_cluster")])])
    for index in range(3):  # each node owns about two thirds of the series: every answer needs the others
        url = cluster.url(index) + "/api/v1"
        instant = requests.get(url + "/query", params={"query": "count(prom_cluster)", "time": at}, timeout=30).json()
        assert instant["data"]["result"][0]["value"][1] == "30", (index, instant)
        ranged = requests.get(url + "/query_range", timeout=30, params={
            "query": "sum(prom_cluster)", "start": START_MS / 1000, "end": at, "step": "1s"}).json()
        assert [float(v) for _, v in ranged["data"]["result"][0]["values"]] == [
            sum(h + i for h in range(30)) for i in range(10)], (index, ranged)
        series = requests.get(url + "/series", params={"match[]": "prom_cluster", "start": START_MS / 1000,
                                                       "end": at}, timeout=30).json()["data"]
        assert sorted(labels["host"] for labels in series) == sorted(hosts), index
        values = requests.get(url + "/label/host/values", timeout=30).json()["data"]
        assert set(hosts) <= set(values), index
        answer = requests.post(url + "/read", data=compress(read.SerializeToString()),
                               headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                                        "X-Prometheus-Remote-Read-Version": "0.1.0"}, timeout=30)
        assert answer.status_code == 200, answer.text
        response = prompb_pb2.ReadResponse.FromString(bytes(cramjam.snappy.decompress_raw(answer.content)))
        assert len(response.results[0].timeseries) == 30, index
        assert sum(len(t.samples) for t in response.results[0].timeseries) == 300, index
