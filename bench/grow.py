"""The membership phase: a 3-node cluster (RF=2) holding the data set grows to 4 nodes under writes and queries.

`python -m bench.grow --scale medium` loads the cpu data set into three nodes, then starts a fourth with the longer
CLUSTER_NODES and restarts the three one at a time with it (the documented way, docs/cluster.md), while a writer
and a reader keep going through the fourth node. It reports how long after the fourth node started every node
read from the new ring (the new node holds its share) and had settled on it (the old copies dropped), how many
points the new node stores against a quarter of all copies, and every write or query that failed. Writes
bench/results/<date>-<host>-<scale>-grow.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import requests

from bench import wire
from bench.cluster import CLUSTER_ENV, LP_URL, SECRET, _ingest, _ports
from bench.dataset import SCALES, CpuDataset
from bench.queries import HOUR_MS, range_path
from bench.results_file import write_results
from bench.server import CountServer
from countdb.cluster.auth import sign


SERVING = ("switched", "settling", "settled")  # the new node holds its share and reads use it


def _signed(url: str, method: str, path: str, signer: int) -> dict:
    answer = requests.request(method, url + path, timeout=60, headers=sign(SECRET, method, path, b"", signer))
    answer.raise_for_status()
    return answer.json()


def stored_rows(url: str) -> int:
    months = requests.get(url + "/storage", timeout=60).json()["months"]
    return sum(month["rows"] for month in months if month["kind"] == "points")


def _traffic(node: CountServer, dataset: CpuDataset, stop: threading.Event, outcomes: dict) -> None:
    """Line-protocol writes of fresh points and one-hour range queries through `node`, alternately, until `stop`
    (bounded); `outcomes` counts each status per kind."""
    session = requests.Session()
    key = dataset.series.keys[0]
    query = range_path(key, dataset.start_ms, dataset.start_ms + HOUR_MS - 1)
    for step in range(200_000):
        if stop.is_set():
            return
        ts_ns = (dataset.end_ms + 10_000 * (step + 1)) * 1_000_000
        lines = "\n".join(f"grow,host=h{h} value={step % 100} {ts_ns}" for h in range(20))
        for kind, call in (("write", lambda: session.post(node.url + LP_URL, data=lines, timeout=30)),
                           ("query", lambda: session.get(node.url + query, timeout=30))):
            try:
                status = call().status_code
            except requests.RequestException:
                status = 0
            counts = outcomes.setdefault(kind, {})
            counts[str(status)] = counts.get(str(status), 0) + 1


def run(scale_name: str, results_dir: Path, clients: int) -> dict:
    dataset = CpuDataset(SCALES[scale_name])
    bodies = list(wire.line_protocol_bodies(dataset, 0, dataset.scale.points_per_series))
    results: dict = {"scale": scale_name, "points": dataset.scale.points,
                     "started": datetime.now(timezone.utc).isoformat()}
    ports = _ports(4)
    addresses = [f"127.0.0.1:{port}" for port in ports]
    with tempfile.TemporaryDirectory(prefix="count-bench-grow-") as folder:
        work = Path(folder)
        nodes = [CountServer(work / f"node{i + 1}", work / f"node{i + 1}.log",
                             {**CLUSTER_ENV, "CLUSTER_NODES": ",".join(addresses[:3]), "NODE_ID": str(i + 1),
                              "BIND_ADDRESS": addresses[i]}) for i in range(3)]
        try:
            for i, node in enumerate(nodes):
                node.start(port=ports[i])
            time.sleep(3)
            results["ingest"] = _ingest(nodes[0].url, bodies, clients)
            copies = sum(stored_rows(node.url) for node in nodes)
            results["copies_before"] = copies
            stop, outcomes = threading.Event(), {}
            began = time.monotonic()
            nodes.append(CountServer(work / "node4", work / "node4.log",
                                     {**CLUSTER_ENV, "CLUSTER_NODES": ",".join(addresses), "NODE_ID": "4",
                                      "BIND_ADDRESS": addresses[3]}).start(port=ports[3]))
            traffic = threading.Thread(target=_traffic, args=(nodes[3], dataset, stop, outcomes))
            traffic.start()
            for i in range(3):
                nodes[i].stop()
                nodes[i].extra_env["CLUSTER_NODES"] = ",".join(addresses)
                nodes[i].start(port=ports[i])
            switched = settled = None
            while time.monotonic() - began < 1800:
                rings = [_signed(node.url, "GET", "/cluster/status", 3)["ring"] for node in nodes]
                if switched is None and all(ring["phase"] in SERVING and len(ring["target"]) == 4 for ring in rings):
                    switched = round(time.monotonic() - began, 1)
                if all(ring["phase"] == "settled" and len(ring["target"]) == 4 for ring in rings):
                    settled = round(time.monotonic() - began, 1)
                    break
                time.sleep(1)
            stop.set()
            traffic.join()
            new_node_rows = stored_rows(nodes[3].url)
            results["grow"] = {"serving_seconds_after_new_node_started": switched,
                               "settled_seconds_after_new_node_started": settled,
                               "new_node_points": new_node_rows,
                               "quarter_of_copies": copies // 4,
                               "new_node_vs_quarter": round(new_node_rows / (copies / 4), 3),
                               "traffic_through_new_node": outcomes}
        finally:
            for node in nodes:
                node.stop()
    return write_results(results_dir, f"{scale_name}-grow", results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.grow", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--results-dir", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.scale, args.results_dir, args.clients), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
