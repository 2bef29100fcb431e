"""Real Prometheus against a node with AUTH_REQUIRED=true: remote write with its `authorization` (Bearer) block
stores samples, a remote write with a read-only token is refused (403, counted as failed by Prometheus), and
Prometheus scrapes /metrics with a read token."""

from __future__ import annotations

import time

import requests

from support.prometheus import running_prometheus
from support.tokens import create_token

DEADLINE_SECONDS = 40


def test_prometheus_remote_writes_and_scrapes_with_tokens(count_server, tmp_path):
    node = count_server(AUTH_REQUIRED="true", WORKERS=2)
    write, read = create_token(node.data_dir, "prometheus", "write"), create_token(node.data_dir, "grafana", "read")
    queue = {"batch_send_deadline": "500ms", "min_backoff": "100ms", "max_backoff": "1s"}
    count_target = node.url.removeprefix("http://")

    def config_for(port: int) -> dict:
        return {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]},
                {"job_name": "count", "authorization": {"type": "Bearer", "credentials": read},
                 "static_configs": [{"targets": [count_target]}]}],
            "remote_write": [
                {"name": "allowed", "url": node.url + "/api/v1/write", "queue_config": queue,
                 "authorization": {"type": "Bearer", "credentials": write}},
                {"name": "read_only", "url": node.url + "/api/v1/write", "queue_config": queue,
                 "authorization": {"type": "Bearer", "credentials": read}}],
        }

    def count_has(series: str) -> list:
        answer = requests.get(f"{node.url}/query/range/{series}", params={"start": 0, "end": 2**62},
                              headers={"Authorization": f"Bearer {read}"}, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    with running_prometheus(tmp_path / "prometheus", config_for) as prometheus:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            scraped = prometheus.api("query", query='up{job="count"}')["result"]
            failed = prometheus.api("query", query='prometheus_remote_storage_samples_failed_total'
                                                   '{remote_name="read_only"}')["result"]
            stored = count_has('up{instance="%s",job="count"}' % count_target)
            if scraped and failed and float(failed[0]["value"][1]) > 0 and stored:
                break
            assert time.monotonic() < deadline, f"scrape={scraped} failed={failed} stored={stored}\n" \
                                                f"{prometheus.log_text()}"
            time.sleep(0.5)
        assert scraped[0]["value"][1] == "1"  # Count's /metrics answered Prometheus's read token
        assert {p["value"] for p in stored} == {1.0}
        allowed = prometheus.api("query", query='prometheus_remote_storage_samples_failed_total'
                                                '{remote_name="allowed"}')["result"]
        assert allowed and float(allowed[0]["value"][1]) == 0
        assert "403" in prometheus.log_text()
