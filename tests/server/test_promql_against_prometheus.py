"""Issue 15 §3, correctness: the same samples remote-written to a real Prometheus (Debian's binary, with its
remote-write receiver) and to Count; dashboard-style PromQL evaluated by both through /api/v1/query_range and
/api/v1/query over the same range and step answers the same series with values equal within 1e-9 relative."""

from __future__ import annotations

import math
import random
import time

import pytest
import requests

from support.prometheus import running_prometheus
from support.remote_write import compress, request

STEP_S = 60
SCRAPE_MS = 15_000
NOW_MS = int(time.time() * 1000)
END_MS = (NOW_MS - 120_000) // 60_000 * 60_000
BEGIN_MS = END_MS - 3_000_000  # 50 minutes of samples, inside a fresh Prometheus head block
BUCKETS = ("0.1", "0.5", "1", "5", "+Inf")
EXPRESSIONS = [
    "cpu_usage_total",
    'cpu_usage_total{host=~"h[01]",cpu!="1"}',
    "rate(cpu_usage_total[5m])",
    "sum by (host) (rate(cpu_usage_total[5m]))",
    "sum without (cpu) (irate(cpu_usage_total[2m]))",
    "increase(cpu_usage_total[10m])",
    "delta(temperature[5m])",
    "deriv(temperature[10m])",
    "avg_over_time(temperature[5m])",
    "min_over_time(temperature[5m])",
    "max_over_time(temperature[7m])",
    "sum_over_time(temperature[3m])",
    "count_over_time(temperature[5m])",
    "stddev_over_time(temperature[10m])",
    "last_over_time(temperature[5m])",
    "quantile_over_time(0.9, temperature[10m])",
    "histogram_quantile(0.9, sum by (le) (rate(request_seconds_bucket[5m])))",
    "histogram_quantile(0.5, rate(request_seconds_bucket[5m]))",
    "avg by (host) (temperature)",
    "max(temperature)",
    "min by (cpu) (temperature)",
    "count without (cpu) (temperature)",
    "stddev by (host) (temperature)",
    "quantile by (host) (0.75, temperature)",
    "topk(2, temperature)",
    "bottomk by (host) (1, temperature)",
    "temperature * 2 + 1",
    "2 ^ 3 - temperature / 4",
    "-temperature",
    "temperature > 55",
    "temperature > bool 55",
    "60 >= temperature",
    "temperature / on(host) group_left sum by (host) (temperature)",
    "temperature - ignoring(cpu) group_left avg without (cpu) (temperature)",
    "rate(cpu_usage_total[5m]) * on(host, cpu) temperature",
    "abs(temperature - 55)",
    "round(temperature, 0.5)",
    "round(temperature)",
    "clamp(temperature, 45, 60)",
    "clamp_min(temperature, 50)",
    "clamp_max(temperature, 50)",
    'label_replace(temperature, "machine", "m-$1", "host", "h(.*)")',
    "temperature offset 5m",
    "rate(cpu_usage_total[5m] offset 10m)",
    "time() - 1000",
    "vector(3)",
    "scalar(sum(temperature)) * temperature",
    "sum(rate(cpu_usage_total[5m])) / count(temperature)",
    "resets(cpu_usage_total[30m])",
    "changes(temperature[5m])",
    "idelta(temperature[2m])",
    "stdvar_over_time(temperature[5m])",
    "present_over_time(temperature[5m])",
    "ceil(temperature) - floor(temperature)",
    "sqrt(temperature) + ln(temperature) + log2(temperature) + log10(temperature) + exp(temperature / 100)",
    "sum by (host) (temperature) / on(host) group_right temperature",
    "temperature % 7",
    "stdvar by (cpu) (temperature)",
]


def dataset() -> list:
    rng = random.Random(15)
    series = []
    for host in range(3):
        for cpu in range(3):
            counter, ts = 0.0, []
            samples, temps = [], []
            t = BEGIN_MS + rng.randrange(1000, 14_000) + 123
            while t < END_MS:
                ts.append(t)
                t += SCRAPE_MS + rng.randrange(-2000, 2000)
            for i, t in enumerate(ts):
                counter = 0.0 if (host == 1 and i == 100) else counter + rng.uniform(0, 30)  # one counter reset
                samples.append((counter, t))
                temps.append((40 + 10 * host + rng.uniform(0, 20) + 0.1 * i, t))
            labels = [("host", f"h{host}"), ("cpu", str(cpu))]
            series.append(([("__name__", "cpu_usage_total"), *labels], samples))
            series.append(([("__name__", "temperature"), *labels], temps))
    for host in range(2):
        totals, ts = [0.0] * len(BUCKETS), BEGIN_MS + 5123
        points = {le: [] for le in BUCKETS}
        while ts < END_MS:
            observations = [rng.expovariate(1.5) for _ in range(rng.randrange(0, 20))]
            for index, le in enumerate(BUCKETS):
                totals[index] += sum(1 for o in observations if o <= float(le))
                points[le].append((totals[index], ts))
            ts += SCRAPE_MS
        for le in BUCKETS:
            series.append(([("__name__", "request_seconds_bucket"), ("host", f"h{host}"), ("le", le)], points[le]))
    return series


def post(url: str, body: bytes) -> None:
    response = requests.post(url, data=body, timeout=20, headers={
        "Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
        "X-Prometheus-Remote-Write-Version": "0.1.0"})
    assert response.status_code in (200, 204), response.text


def answer(url: str, path: str, method: str = "POST", **params) -> dict:
    """The `data` of a successful answer to a POST form (or a GET query string)."""
    if method == "POST":
        response = requests.post(f"{url}/api/v1/{path}", data=params, timeout=30)
    else:
        response = requests.get(f"{url}/api/v1/{path}", params=params, timeout=30)
    body = response.json()
    assert body["status"] == "success", (url, params, body)
    return body["data"]


def as_series(data: dict) -> dict:
    out = {}
    for entry in data["result"]:
        key = tuple(sorted(entry["metric"].items()))
        points = entry["values"] if "values" in entry else [entry["value"]]
        out[key] = [(float(t), float(v)) for t, v in points]
    return out


def close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b))


def differences(expected: dict, got: dict) -> list[str]:
    problems = []
    if set(expected) != set(got):
        problems.append(f"series differ: only in Prometheus {sorted(set(expected) - set(got))[:3]}, "
                        f"only in Count {sorted(set(got) - set(expected))[:3]}")
    for key in set(expected) & set(got):
        a, b = expected[key], got[key]
        if [t for t, _ in a] != [t for t, _ in b]:
            problems.append(f"{key}: timestamps differ ({len(a)} vs {len(b)} points)")
        elif not all(close(x, y) for (_, x), (_, y) in zip(a, b)):
            bad = next((t, x, y) for (t, x), (_, y) in zip(a, b) if not close(x, y))
            problems.append(f"{key}: at {bad[0]} Prometheus {bad[1]!r}, Count {bad[2]!r}")
    return problems


@pytest.fixture(scope="module")
def both(count_server, tmp_path_factory):
    node = count_server()
    body = compress(request(*dataset()).SerializeToString())
    with running_prometheus(tmp_path_factory.mktemp("prometheus"), lambda port: {"global": {}},
                            flags=("--web.enable-remote-write-receiver",)) as prometheus:
        post(prometheus.url + "/api/v1/write", body)
        post(node.url + "/api/v1/write", body)
        yield prometheus.url, node.url


def test_range_queries_equal_prometheus(both):
    prometheus, count = both
    window = {"start": (BEGIN_MS + 600_000) / 1000, "end": END_MS / 1000 + 240, "step": STEP_S}
    problems = {}
    for expression in EXPRESSIONS:
        expected = as_series(answer(prometheus, "query_range", query=expression, **window))
        got = as_series(answer(count, "query_range", query=expression, **window))
        assert expected, f"Prometheus answered nothing for {expression}"
        found = differences(expected, got)
        if found:
            problems[expression] = found
    assert not problems, problems


def test_instant_queries_and_metadata_equal_prometheus(both):
    prometheus, count = both
    at = END_MS / 1000 - 30.5
    for expression in ["sum by (host) (rate(cpu_usage_total[5m]))", "temperature", "scalar(max(temperature))",
                       "cpu_usage_total[2m]", "vector(1) + 1"]:
        expected, got = answer(prometheus, "query", query=expression, time=at), answer(count, "query",
                                                                                      query=expression, time=at)
        assert expected["resultType"] == got["resultType"], expression
        if expected["resultType"] == "scalar":
            assert expected["result"][0] == got["result"][0] and close(float(expected["result"][1]),
                                                                      float(got["result"][1]))
        else:
            assert not differences(as_series(expected), as_series(got)), expression
    window = {"start": BEGIN_MS / 1000, "end": END_MS / 1000}
    for path, params in [("labels", {}), ("label/host/values", {}), ("label/__name__/values", {}),
                         ("series", {"match[]": 'cpu_usage_total{host!="h2"}'}),
                         ("labels", {"match[]": "temperature"})]:
        expected = answer(prometheus, path, "GET", **window, **params)
        assert expected and answer(count, path, "GET", **window, **params) == expected, path
