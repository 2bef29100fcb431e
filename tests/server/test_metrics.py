"""GET /metrics from real gunicorn with 2 workers: every worker's samples added up, promtool's checks passed,
node-wide storage, WAL and process metrics, and a real Prometheus server scraping it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from support.logs import access_lines
from support.prometheus import running_prometheus
from support.remote_write import compress, request
from support.tools import require_tool

T0 = 1_640_995_200_000  # 2022-01-01T00:00:00Z
DEADLINE_SECONDS = 20
DEPLOY_PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus.yml"


def scrape(node) -> str:
    """/metrics on a fresh connection, so successive scrapes may reach either worker."""
    response = requests.get(node.url + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return response.text


def value(text: str, name: str, **labels) -> float:
    """The sum of the samples called `name` whose labels include `labels` (0 if none)."""
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and labels.items() <= sample.labels.items())


def samples(text: str, name: str) -> list:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name == name]


def insert_until_both_workers_answered(node, series: str) -> int:
    """Single-point inserts on fresh connections until the access log shows both workers took some."""
    for sent in range(1, 201):
        response = requests.post(node.url + "/insert", json={"series": series, "timestamp": T0 + sent, "value": sent},
                                 timeout=10)
        assert response.status_code == 201
        if sent >= 10 and len({line["pid"] for line in access_lines(node) if line["route"] == "/insert"}) == 2:
            return sent
    raise AssertionError("200 inserts on fresh connections all reached the same worker")


def wait_for(node, condition, what: str) -> str:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        text = scrape(node)
        if condition(text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {DEADLINE_SECONDS}s; last scrape:\n{text}")
        time.sleep(0.2)


def test_metrics_add_up_every_worker_and_pass_promtool(count_server):
    node = count_server(WORKERS=2, MEMORY_BUFFER_SIZE=50, FLUSH_INTERVAL_SECONDS=300)
    singles = insert_until_both_workers_answered(node, "m.single")
    lines = "lp,host=a value=1 {t}\nlp,host=b value=2 {t}\nnot a line\nlp,host=c value=3 {t}\n"
    assert node.post("/api/v2/write?bucket=b&precision=ms", data=lines.format(t=T0)).status_code == 400
    body = request(([("__name__", "rw"), ("job", "j")], [(1.0, T0), (2.0, T0 + 1), (float("nan"), T0 + 2)]),
                   ([("__name__", "rw"), ("1bad", "x")], [(1.0, T0)])).SerializeToString()
    assert node.post("/api/v1/write", data=compress(body), headers={"Content-Encoding": "snappy"}).status_code == 400
    for _ in range(2):
        assert node.get("/query/range/m.single", params={"start": T0, "end": T0 + 1000}).status_code == 200
    assert node.get("/query/aggregated/lp", params={"start": T0, "end": T0, "aggregation": "x"}).status_code == 400
    batch = [{"series": "m.batch", "timestamp": T0 + i, "value": i} for i in range(100)]
    assert node.post("/insert", json=batch).status_code == 201  # over MEMORY_BUFFER_SIZE: that worker flushes
    written = singles + 3 + 2 + len(batch)

    text = wait_for(node, lambda text: value(text, "count_flushes_total", outcome="ok") >= 1
                    and value(text, "count_buffered_points") + value(text, "count_flushed_points_total") == written,
                    "a flush and buffered + flushed == written")
    promtool = subprocess.run([require_tool("promtool"), "check", "metrics"], input=text, capture_output=True,
                              text=True, timeout=60)
    assert promtool.returncode == 0 and not (promtool.stdout + promtool.stderr).strip(), promtool

    assert value(text, "count_points_ingested_total", protocol="json") == singles + len(batch)
    assert value(text, "count_points_ingested_total", protocol="line_protocol") == 3
    assert value(text, "count_points_ingested_total", protocol="remote_write") == 2
    assert value(text, "count_points_rejected_total", reason="invalid") == 1 + 1
    assert value(text, "count_points_rejected_total", reason="non_finite") == 1
    assert value(text, "count_http_requests_total", route="/insert", method="POST", status="201") == singles + 1
    range_route = "/query/range/{series:path}"
    assert value(text, "count_http_requests_total", route=range_route, status="200") == 2
    assert value(text, "count_http_request_duration_seconds_count", route=range_route) == 2
    assert value(text, "count_http_requests_total", route="/query/aggregated/{series:path}", status="400") == 1
    assert value(text, "count_query_duration_seconds_count", kind="range") == 2
    assert value(text, "count_flush_duration_seconds_count") == value(text, "count_flushes_total", outcome="ok")

    # Another scrape, likely from the other worker, reports the same totals.
    for _ in range(4):
        assert value(scrape(node), "count_points_ingested_total") == written


def test_storage_wal_and_process_metrics_describe_the_whole_node(count_server):
    node = count_server(WORKERS=2, MEMORY_BUFFER_SIZE=50, FLUSH_INTERVAL_SECONDS=300)
    march = 1_646_092_800_000  # 2022-03-01
    for month_start in (T0, march):
        batch = [{"series": "s", "timestamp": month_start + i, "value": i} for i in range(60)]
        assert node.post("/insert", json=batch).status_code == 201
    assert node.post("/insert", json={"series": "s", "timestamp": T0 + 1000, "value": 0}).status_code == 201
    text = wait_for(node, lambda text: value(text, "count_flushed_points_total") >= 120
                    and value(text, "count_flushed_points_total") + value(text, "count_buffered_points") == 121,
                    "both batches flushed")

    on_disk = defaultdict(int)
    for block in (node.data_dir / "time_blocks").glob("*/points-*.parquet"):
        on_disk[block.parent.name] += block.stat().st_size
    assert set(on_disk) == {"2022-01", "2022-03"}
    for month, size in on_disk.items():
        assert value(text, "count_storage_bytes", month=month, kind="points") == size
        assert value(text, "count_storage_blocks", month=month, kind="points") >= 1

    def wal_matches_the_disk(text: str) -> bool:  # segments come and go with flushes: compare once they settle
        segments = list((node.data_dir / "wal").glob("*/*.wal"))
        return (value(text, "count_wal_segments"), value(text, "count_wal_bytes")) == \
            (len(segments), sum(path.stat().st_size for path in segments))
    text = wait_for(node, wal_matches_the_disk, "WAL metrics matching the segment files")
    assert value(text, "count_wal_bytes") > 0

    rss = samples(text, "process_resident_memory_bytes")
    assert {(s.labels["role"], int(s.labels["pid"])) for s in rss} == \
        {("master", node.proc.pid), *(("worker", pid) for pid in node.worker_pids()),
         ("compactor", node.helper_pid("compactor"))}
    assert all(s.value > 0 for s in rss)


def test_a_dead_worker_keeps_its_counts_and_drops_its_live_gauges(count_server):
    node = count_server(WORKERS=2, MEMORY_BUFFER_SIZE=100000)
    singles = insert_until_both_workers_answered(node, "m.dead")
    before = scrape(node)
    assert value(before, "count_points_ingested_total") == singles
    victim = access_lines(node)[-1]["pid"]
    os.kill(victim, signal.SIGKILL)
    metrics_dir = node.data_dir / "node_state" / "metrics"
    deadline = time.monotonic() + DEADLINE_SECONDS
    while victim in node.worker_pids() or len(node.worker_pids()) < 2 \
            or (metrics_dir / f"gauge_livesum_{victim}.db").exists():
        assert time.monotonic() < deadline, f"worker {victim} was not replaced, or its live gauges stayed"
        time.sleep(0.1)
    after = wait_for(node, lambda text: victim not in {int(s.labels["pid"])
                                                       for s in samples(text, "process_open_fds")}, "no dead pid")
    assert value(after, "count_points_ingested_total") == singles
    assert (metrics_dir / f"counter_{victim}.db").exists()


def test_prometheus_scrapes_count_with_the_deployed_job(count_server, tmp_path):
    node = count_server(WORKERS=2)
    assert node.post("/insert", json={"series": "scraped", "timestamp": T0, "value": 1}).status_code == 201
    (job,) = yaml.safe_load(DEPLOY_PROMETHEUS.read_text())["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    job.update(scrape_interval="1s", scrape_timeout="1s",
               static_configs=[{"targets": [node.url.removeprefix("http://")], "labels": {"cluster": "test"}}])
    config = {"global": {"scrape_interval": "1s"}, "scrape_configs": [job]}
    with running_prometheus(tmp_path / "prometheus", lambda port: config) as prometheus:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            targets = prometheus.api("targets")["activeTargets"]  # empty until discovery has run
            ingested = prometheus.api("query", query='count_points_ingested_total{job="count",protocol="json"}')
            if [target["health"] for target in targets] == ["up"] and ingested["result"]:
                break
            assert time.monotonic() < deadline, f"targets {targets}, query {ingested}:\n{prometheus.log_text()}"
            time.sleep(0.2)
        assert targets[0]["lastError"] == "" and targets[0]["scrapeUrl"] == node.url + "/metrics"
        assert [float(r["value"][1]) for r in ingested["result"]] == [1.0]
        assert ingested["result"][0]["metric"]["cluster"] == "test"
