"""The cluster phase: a single node and a 3-node cluster (RF=2) measured in the same run, on the same data.

`python -m bench.cluster --scale medium` reports, each beside the single-node figure:
line-protocol ingest through one node, a one-series one-hour range through a node that does not own the series
(and through an owner), right after the ingest and once no node has compaction pending (the figure the ratio uses),
`SELECT series, avg(value) … GROUP BY series`, convergence after a node was down for a while under load, and the
time a node restarted with an empty data directory takes to hold its share again. Writes bench/results/
<date>-<host>-<scale>-cluster.json.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import socket
import statistics
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson
import requests

from bench import wire
from bench.dataset import SCALES, CpuDataset
from bench.ingest import send_all
from bench.queries import HOUR_MS, range_path
from bench.results_file import write_results
from bench.server import CountServer
from countdb.cluster.auth import sign
from countdb.cluster.ring import Ring

SECRET = "bench-cluster-secret"
LP_URL = "/api/v2/write?bucket=bench&precision=ns"
GROUP_BY_SQL = "SELECT series, avg(value) FROM points GROUP BY series"
CLUSTER_ENV = {"CLUSTER_ENABLED": "true", "CLUSTER_SECRET": SECRET, "REPLICATION_FACTOR": "2",
               "HEARTBEAT_INTERVAL": "1", "FAILURE_TIMEOUT": "5", "ANTI_ENTROPY_INTERVAL_SECONDS": "5"}


def _ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _ingest(url: str, bodies: list[wire.Body], clients: int) -> dict:
    sent = send_all(url + LP_URL, {"Content-Type": "text/plain"}, bodies, clients)
    return {"points": sent.points, "seconds": round(sent.seconds, 3), "points_per_second": round(sent.points / sent.seconds),
            "statuses": sent.statuses, "first_error": sent.first_error}


def _range_p50(url: str, paths: list[str]) -> float:
    session, latencies = requests.Session(), []
    for path in paths:
        began = time.perf_counter()
        answer = session.get(url + path, timeout=60)
        answer.raise_for_status()
        latencies.append((time.perf_counter() - began) * 1000)
    return round(statistics.median(latencies[2:]), 3)


def settle(urls: list[str], limit_seconds: float = 300) -> float:
    """Seconds until every node's background compaction is quiet (GET /status): nothing pending, and a whole
    interval since its last run that did any work. That is the state a query usually meets, since ingest leaves
    a burst of small blocks that compaction merges over a few intervals; "nothing pending" alone is not enough,
    as the last flushes can make one more merge due an interval later, which then runs beside the queries."""
    began = time.monotonic()
    while time.monotonic() - began < limit_seconds:
        if all(_compaction_quiet(requests.get(url + "/status", timeout=30).json()) for url in urls):
            break
        time.sleep(2)
    return round(time.monotonic() - began, 1)


def _compaction_quiet(status: dict) -> bool:
    compaction = status["compaction"]
    last = compaction["last"] or {"finished": 0}
    return not compaction["pending"] and status["time"] - last["finished"] > compaction["interval_seconds"] + 2


def _group_by_seconds(url: str, runs: int = 5) -> float:
    timings = []
    for _ in range(runs):
        began = time.perf_counter()
        answer = requests.post(url + "/query/sql", data=GROUP_BY_SQL, headers={"Content-Type": "text/plain",
                                                                               "Accept": "application/vnd.apache.arrow.stream"}, timeout=600)
        answer.raise_for_status()
        timings.append(time.perf_counter() - began)
    return round(statistics.median(timings), 3)


class BenchCluster:
    def __init__(self, work: Path, size: int = 3):
        ports = _ports(size)
        self.addresses = [f"127.0.0.1:{port}" for port in ports]
        self.nodes = [CountServer(work / f"node{i + 1}", work / f"node{i + 1}.log",
                                  {**CLUSTER_ENV, "CLUSTER_NODES": ",".join(self.addresses), "NODE_ID": str(i + 1),
                                   "BIND_ADDRESS": self.addresses[i]}) for i in range(size)]
        self.ports = ports

    def start(self, index: int | None = None) -> None:
        for i in [index] if index is not None else range(len(self.nodes)):
            self.nodes[i].start(port=self.ports[i])

    def digest(self, node: int, peer: int) -> dict:
        body = orjson.dumps({"peer": peer})
        answer = requests.post(self.nodes[node].url + "/cluster/digest", data=body, timeout=120,
                               headers=sign(SECRET, "POST", "/cluster/digest", body, peer))
        answer.raise_for_status()
        return answer.json()

    def converged(self) -> bool:
        pairs = [(a, b) for a in range(len(self.nodes)) for b in range(len(self.nodes)) if a < b]
        return all(self.digest(a, b)["cells"] == self.digest(b, a)["cells"] for a, b in pairs)

    def seconds_until(self, predicate, limit: float) -> float | None:
        began = time.monotonic()
        while time.monotonic() - began < limit:
            try:
                if predicate():
                    return round(time.monotonic() - began, 1)
            except requests.RequestException:
                pass
            time.sleep(1)
        return None

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _load(url: str, dataset: CpuDataset, stop: threading.Event, counts: dict) -> None:
    """Single line-protocol requests of fresh points (after the data set's end) until `stop`; bounded."""
    session = requests.Session()
    for step in range(100_000):
        if stop.is_set():
            return
        ts_ns = (dataset.end_ms + 10_000 * (step + 1)) * 1_000_000
        lines = "\n".join(f"load,host=h{h} value={step % 100} {ts_ns}" for h in range(20))
        try:
            status = session.post(url + LP_URL, data=lines, timeout=30).status_code
        except requests.RequestException:
            status = 0
        counts[status] = counts.get(status, 0) + 1


def run(scale_name: str, results_dir: Path, clients: int, down_seconds: float) -> dict:
    dataset = CpuDataset(SCALES[scale_name])
    bodies = list(wire.line_protocol_bodies(dataset, 0, dataset.scale.points_per_series))
    rng = random.Random(5)
    results: dict = {"scale": scale_name, "points": dataset.scale.points, "started": datetime.now(timezone.utc).isoformat()}
    with tempfile.TemporaryDirectory(prefix="count-bench-cluster-") as folder:
        work = Path(folder)
        single = CountServer(work / "single", work / "single.log").start()
        try:
            results["single_ingest"] = _ingest(single.url, bodies, clients)
            windows = [(rng.choice(dataset.series.keys), dataset.start_ms + rng.randint(0, 20) * HOUR_MS)
                       for _ in range(60)]
            paths = [range_path(key, start, start + HOUR_MS - 1) for key, start in windows]
            results["single_range_1h_p50_ms_right_after_ingest"] = _range_p50(single.url, paths)
            results["single_settled_seconds"] = settle([single.url])
            results["single_range_1h_p50_ms"] = _range_p50(single.url, paths)
            results["single_group_by_seconds"] = _group_by_seconds(single.url)
        finally:
            single.stop()
        cluster = BenchCluster(work)
        cluster.start()
        try:
            time.sleep(3)
            results["cluster_ingest"] = _ingest(cluster.nodes[0].url, bodies, clients)
            ring = Ring.build(cluster.addresses)
            outsider = {key: next(n for n in range(3) if n not in ring.owners(key, 2)) for key, _ in windows}
            by_node = {n: [p for (key, _), p in zip(windows, paths) if outsider[key] == n] for n in range(3)}
            by_owner = {n: [p for (key, _), p in zip(windows, paths) if ring.owners(key, 2)[0] == n] for n in range(3)}

            def range_p50(paths_by_node: dict) -> float:
                return round(statistics.median([_range_p50(cluster.nodes[n].url, ps)
                                                for n, ps in paths_by_node.items() if len(ps) > 3]), 3)

            results["cluster_range_1h_p50_ms_via_non_owner_right_after_ingest"] = range_p50(by_node)
            results["cluster_settled_seconds"] = settle([node.url for node in cluster.nodes])
            results["cluster_range_1h_p50_ms_via_non_owner"] = range_p50(by_node)
            results["cluster_range_1h_p50_ms_via_owner"] = range_p50(by_owner)
            by_coordinator = [_group_by_seconds(node.url) for node in cluster.nodes]
            results["cluster_group_by_seconds_through_each_node"] = by_coordinator
            results["cluster_group_by_seconds"] = statistics.median(by_coordinator)
            results["converged_after_ingest_seconds"] = cluster.seconds_until(cluster.converged, 120)
            stop, counts = threading.Event(), {}
            loader = threading.Thread(target=_load, args=(cluster.nodes[0].url, dataset, stop, counts))
            loader.start()
            cluster.nodes[2].stop()
            time.sleep(down_seconds)
            cluster.start(2)
            returned = time.monotonic()
            stop.set()
            loader.join()
            results["node_down"] = {"down_seconds": down_seconds, "load_answers": counts,
                                    "converged_seconds_after_return": cluster.seconds_until(cluster.converged, 300),
                                    "measured_from_return": round(time.monotonic() - returned, 1)}
            cluster.nodes[2].stop()
            shutil.rmtree(cluster.nodes[2].data_dir)
            cluster.start(2)
            results["empty_node_refilled_seconds"] = cluster.seconds_until(cluster.converged, 600)
        finally:
            cluster.stop()
    results["ratios"] = {
        "ingest_cluster_vs_single": round(results["cluster_ingest"]["points_per_second"]
                                          / results["single_ingest"]["points_per_second"], 3),
        "range_1h_p50_non_owner_vs_single": round(results["cluster_range_1h_p50_ms_via_non_owner"]
                                                  / results["single_range_1h_p50_ms"], 3),
        "range_1h_p50_owner_vs_single": round(results["cluster_range_1h_p50_ms_via_owner"]
                                              / results["single_range_1h_p50_ms"], 3),
        "range_1h_p50_non_owner_vs_single_right_after_ingest": round(
            results["cluster_range_1h_p50_ms_via_non_owner_right_after_ingest"]
            / results["single_range_1h_p50_ms_right_after_ingest"], 3),
        "group_by_cluster_vs_single": round(results["cluster_group_by_seconds"] / results["single_group_by_seconds"], 3),
    }
    return write_results(results_dir, f"{scale_name}-cluster", results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--results-dir", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--down-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    results = run(args.scale, args.results_dir, args.clients, args.down_seconds)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
