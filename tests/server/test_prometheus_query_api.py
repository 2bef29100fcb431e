"""Issue 15 §3, the Prometheus HTTP API's edges on a real server: GET and POST forms, Prometheus' error shape
and types (bad_data naming what is unsupported), metadata and buildinfo, and promtool as a real client."""

from __future__ import annotations

import json
import subprocess

import pytest
import requests

from support.remote_write import compress, request
from support.tools import require_tool

T0_MS = 1_700_000_000_000


@pytest.fixture(scope="module")
def node(count_server):
    server = count_server()
    body = request(([("__name__", "api_up"), ("job", "a")], [(1.0, T0_MS + i * 15_000) for i in range(40)]),
                   ([("__name__", "api_up"), ("job", "b")], [(float(i), T0_MS + i * 15_000) for i in range(40)]))
    response = requests.post(server.url + "/api/v1/write", data=compress(body.SerializeToString()), timeout=10)
    assert response.status_code == 204, response.text
    return server


def test_get_and_post_forms_answer_the_same(node):
    params = {"query": 'sum(api_up{job=~"a|b"})', "start": T0_MS / 1000 + 60, "end": T0_MS / 1000 + 300,
              "step": "1m"}
    by_get = requests.get(node.url + "/api/v1/query_range", params=params, timeout=10).json()
    by_post = requests.post(node.url + "/api/v1/query_range", data=params, timeout=10).json()
    assert by_get == by_post
    assert by_get["data"]["resultType"] == "matrix"
    assert by_get["data"]["result"] == [{"metric": {}, "values": [
        [T0_MS / 1000 + 60 * k, str(1 + 4 * k)] for k in range(1, 6)]}]


def test_instant_query_shapes(node):
    at = T0_MS / 1000 + 150
    vector = requests.get(node.url + "/api/v1/query", params={"query": "api_up", "time": at}, timeout=10).json()
    assert vector["data"] == {"resultType": "vector", "result": [
        {"metric": {"__name__": "api_up", "job": "a"}, "value": [at, "1"]},
        {"metric": {"__name__": "api_up", "job": "b"}, "value": [at, "10"]}]}
    scalar = requests.get(node.url + "/api/v1/query", params={"query": "1.5 * 2", "time": at}, timeout=10).json()
    assert scalar["data"] == {"resultType": "scalar", "result": [at, "3"]}


@pytest.mark.parametrize("query, named", [
    ("api_up and api_up", "'and' operator"), ("rate(api_up[5m:1m])", "subquery"),
    ("api_up @ 100", "@ modifier"), ("predict_linear(api_up[5m], 60)", "predict_linear()"),
    ("sum(api_up", "expected ')'"), ("api_up{job=}", "parse error"), ("rate(api_up)", "range vector"),
])
def test_bad_or_unsupported_promql_is_bad_data_naming_it(node, query, named):
    response = requests.get(node.url + "/api/v1/query", params={"query": query, "time": T0_MS / 1000}, timeout=10)
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error" and body["errorType"] == "bad_data" and named in body["error"], body


@pytest.mark.parametrize("params, named", [
    ({"query": "api_up", "start": "x", "end": "1", "step": "1"}, "start"),
    ({"query": "api_up", "start": "10", "end": "1", "step": "1"}, "end timestamp"),
    ({"query": "api_up", "start": "0", "end": "100000", "step": "1"}, "maximum resolution"),
    ({"start": "0", "end": "1", "step": "1"}, "query"),
])
def test_bad_range_parameters_are_bad_data(node, params, named):
    response = requests.post(node.url + "/api/v1/query_range", data=params, timeout=10)
    assert response.status_code == 400
    body = response.json()
    assert body["errorType"] == "bad_data" and named in body["error"], body


def test_metadata_buildinfo_and_series_need_match(node):
    assert requests.get(node.url + "/api/v1/metadata", timeout=10).json() == {"status": "success", "data": {}}
    info = requests.get(node.url + "/api/v1/status/buildinfo", timeout=10).json()
    assert info["status"] == "success" and info["data"]["version"]
    missing = requests.get(node.url + "/api/v1/series", timeout=10)
    assert missing.status_code == 400 and missing.json()["errorType"] == "bad_data"
    values = requests.get(node.url + "/api/v1/label/job/values", params={"match[]": "api_up"}, timeout=10).json()
    assert values == {"status": "success", "data": ["a", "b"]}


def test_promtool_queries_count(node):
    promtool = require_tool("promtool")
    out = subprocess.run([promtool, "query", "instant", "-o", "json", node.url, 'api_up{job="b"}',
                          f"--time={T0_MS / 1000 + 100}"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert [(entry["metric"]["job"], entry["value"][1]) for entry in json.loads(out.stdout)] == [("b", "6")]
    out = subprocess.run([promtool, "query", "range", "-o", "json", f"--start={T0_MS / 1000 + 60}",
                          f"--end={T0_MS / 1000 + 180}", "--step=1m", node.url, "max(api_up)"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert [point[1] for point in json.loads(out.stdout)[0]["values"]] == ["4", "8", "12"]
