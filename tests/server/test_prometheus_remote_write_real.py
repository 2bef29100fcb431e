"""Issue 3's real-client proof: a real Prometheus server (Debian's `prometheus`, on loopback, scraping itself
every second) remote-writes to Count for a while; for a time range both hold fully, the samples Count returns
for a few of Prometheus's own series equal, exactly, the raw samples Prometheus's HTTP API returns."""

from __future__ import annotations

import time
import urllib.parse

import requests

from countdb.model import series_key
from support.prometheus import running_prometheus

SCRAPES = 10  # ~10 s of samples at a 1 s scrape interval
DEADLINE_SECONDS = 40
COMPARED = ['up{job="prometheus"}', 'scrape_duration_seconds{job="prometheus"}',
            'prometheus_http_requests_total{job="prometheus",handler="/metrics"}']


def raw_samples(prometheus, selector: str, at_ms: int) -> dict[str, list[tuple[int, float]]]:
    """Every raw sample of `selector` in the minute up to `at_ms`, per series, as Count would key them."""
    result = prometheus.api("query", query=f"{selector}[1m]", time=f"{at_ms / 1000:.3f}")["result"]
    series = {}
    for entry in result:
        labels = dict(entry["metric"])
        name = labels.pop("__name__")
        series[series_key(name, labels)] = [(round(float(ts) * 1000), float(v)) for ts, v in entry["values"]]
    return series


def count_samples(node, key: str, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
    response = requests.get(f"{node.url}/query/range/{urllib.parse.quote(key, safe='')}",
                            params={"start": start_ms, "end": end_ms}, timeout=10)
    assert response.status_code == 200, response.text
    return [(point["timestamp"], point["value"]) for point in response.json()]


def until(what: str, check, deadline: float, log):
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what} before the deadline:\n{log()}"
        time.sleep(0.5)


def test_samples_remote_written_by_prometheus_match_its_own_api(count_server, tmp_path):
    started = time.monotonic()
    node = count_server(WORKERS=2)

    def config_for(port: int) -> dict:
        return {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
            "remote_write": [{"url": node.url + "/api/v1/write", "queue_config": {
                "batch_send_deadline": "500ms", "min_backoff": "100ms", "max_backoff": "1s"}}],
        }
    with running_prometheus(tmp_path / "prometheus", config_for) as prometheus:
        deadline = started + DEADLINE_SECONDS
        up = until(f"{SCRAPES} scrapes of itself", lambda: [
            samples for samples in raw_samples(prometheus, 'up{job="prometheus"}', int(time.time() * 1000)).values()
            if len(samples) >= SCRAPES], deadline, prometheus.log_text)[0]
        start_ms, end_ms = up[0][0], up[-1][0]  # a range Prometheus holds fully: scrapes are done up to end_ms

        expected = {}
        for selector in COMPARED:
            expected.update(raw_samples(prometheus, selector, end_ms))
        expected = {key: [s for s in samples if start_ms <= s[0] <= end_ms] for key, samples in expected.items()}
        assert len(expected) >= len(COMPARED) and all(len(samples) >= SCRAPES - 1 for samples in expected.values())

        def held_by_count():
            return {key: count_samples(node, key, start_ms, end_ms) for key in expected}
        while held_by_count() != expected and time.monotonic() < deadline:
            time.sleep(0.5)  # remote write runs behind the scrapes by up to a batch deadline
        assert held_by_count() == expected
        # Count accepted every batch: NaN quantiles are dropped, not a reason to fail Prometheus's batches
        failed = prometheus.api("query", query="sum(prometheus_remote_storage_samples_failed_total)")["result"]
        assert failed and float(failed[0]["value"][1]) == 0, failed
