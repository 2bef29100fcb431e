"""`python -m bench.promql`: issue 15's PromQL speed target, `sum by (host) (rate(cpu_usage_total[5m]))` over
1,000 series x 1 day at a 1 m step (target <= 1 s), on a real count-server and, when the `prometheus` binary
is installed, on a real Prometheus holding the same samples (remote-written to its receiver).

Prints one JSON document: median and best of --repeat timed /api/v1/query_range calls for each server.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import cramjam
import requests
import yaml

from bench.server import CountServer, free_port
from countdb.ingest import prompb_pb2

QUERY = "sum by (host) (rate(cpu_usage_total[5m]))"
DAY_MS = 86_400_000
TARGET_SECONDS = 1.0


def bodies(hosts: int, cpus: int, interval_ms: int, end_ms: int, slice_ms: int = 600_000):
    """Snappy remote-write bodies, in time order (slice by slice, every series in each): counters per series."""
    rng = random.Random(15)
    counters = [0.0] * (hosts * cpus)
    for slice_start in range(end_ms - DAY_MS, end_ms, slice_ms):
        message = prompb_pb2.WriteRequest()
        times = range(slice_start, min(slice_start + slice_ms, end_ms), interval_ms)
        for index in range(hosts * cpus):
            series = message.timeseries.add()
            series.labels.add(name="__name__", value="cpu_usage_total")
            series.labels.add(name="cpu", value=str(index % cpus))
            series.labels.add(name="host", value=f"host_{index // cpus}")
            for t in times:
                counters[index] += rng.uniform(0, 60)
                series.samples.add(value=counters[index], timestamp=t)
        yield bytes(cramjam.snappy.compress_raw(message.SerializeToString()))


def write(url: str, payloads: list[bytes]) -> float:
    started = time.perf_counter()
    for body in payloads:
        answer = requests.post(url + "/api/v1/write", data=body, timeout=120,
                               headers={"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"})
        if answer.status_code not in (200, 204):
            raise RuntimeError(f"{url}: remote write answered {answer.status_code}: {answer.text[:300]}")
    return time.perf_counter() - started


def time_query(url: str, end_ms: int, repeat: int) -> dict:
    params = {"query": QUERY, "start": (end_ms - DAY_MS) / 1000, "end": end_ms / 1000, "step": 60}
    seconds, series = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        answer = requests.post(url + "/api/v1/query_range", data=params, timeout=300)
        seconds.append(time.perf_counter() - started)
        body = answer.json()
        if body.get("status") != "success":
            raise RuntimeError(f"{url}: {body}")
        series = len(body["data"]["result"])
    return {"median_seconds": round(statistics.median(seconds), 3), "best_seconds": round(min(seconds), 3),
            "runs": [round(s, 3) for s in seconds], "result_series": series}


def start_prometheus(folder: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    (folder / "prometheus.yml").write_text(yaml.safe_dump({"global": {}}))
    proc = subprocess.Popen([shutil.which("prometheus"), f"--config.file={folder / 'prometheus.yml'}",
                             f"--storage.tsdb.path={folder / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
                             "--web.enable-remote-write-receiver"], stdout=open(folder / "prometheus.log", "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/-/ready", timeout=2).status_code == 200:
                return proc, url
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("prometheus did not become ready")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--cpus", type=int, default=10)
    parser.add_argument("--interval-seconds", type=int, default=60, help="sample interval of every series")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    end_ms = int(time.time() * 1000) // 60_000 * 60_000
    payloads = list(bodies(args.hosts, args.cpus, args.interval_seconds * 1000, end_ms))
    points = args.hosts * args.cpus * DAY_MS // (args.interval_seconds * 1000)
    result = {"query": QUERY, "series": args.hosts * args.cpus, "points": points, "step_seconds": 60,
              "target_seconds": TARGET_SECONDS}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        with CountServer(work / "count", work / "count.log", {"FLUSH_INTERVAL_SECONDS": "1"}) as count:
            result["count_write_seconds"] = round(write(count.url, payloads), 1)
            time.sleep(3)  # let the buffer flush, as a day-old series would be
            result["count"] = time_query(count.url, end_ms, args.repeat)
        if shutil.which("prometheus"):
            (work / "prometheus").mkdir()
            proc, url = start_prometheus(work / "prometheus")
            try:
                write(url, payloads)
                result["prometheus"] = time_query(url, end_ms, args.repeat)
            finally:
                proc.terminate()
                proc.wait(60)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
