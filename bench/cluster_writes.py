"""The cluster-writes phase: what a clustered write costs. Small writes straight at the three nodes of a cluster
(RF=2), against the same writes into three independent nodes, in the same run.

`python -m bench.cluster_writes [--seconds 10] [--connections 24]` starts three nodes clustered, runs one wrk per
node (connections split evenly) posting 10-point JSON writes (bench/lua/insert_batch.lua), then does the same
with three nodes not clustered. It reports writes/s, p99 and the CPU seconds every process of the nodes used per
write (their gunicorn masters, workers and helper processes, from /proc). Anti-entropy is set to an hour so its
rounds don't land in the measurement. Writes bench/results/<date>-<host>-cluster-writes.json.

Why beside the rolling-restart phase: there, the TLS proxy and forty Python clients take much of the two cores,
so a change in the nodes' own cost shows only in part; here wrk's cost is small and the same in both halves.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from bench.cluster import CLUSTER_ENV, _ports
from bench.results_file import write_results
from bench.rolling import _wait_formed
from bench.server import CountServer
from bench.wrk import parse_wrk, wrk_command

NODES = 3
FIRST_TS_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _load(nodes: list[CountServer], seconds: float, connections: int) -> dict:
    """One wrk per node at once; writes/s and p99 of all, CPU per acknowledged write of all the nodes."""
    cpu_before = sum(node.cpu_seconds() for node in nodes)
    runs = [subprocess.Popen(wrk_command(node.url + "/insert", "insert_batch.lua", [str(FIRST_TS_MS + i * 10**9)],
                                         max(1, connections // len(nodes)), seconds, threads=1),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i, node in enumerate(nodes)]
    outputs = [run.communicate(timeout=seconds + 60) for run in runs]
    cpu = sum(node.cpu_seconds() for node in nodes) - cpu_before
    results = [parse_wrk(run.returncode, stdout, stderr) for (stdout, stderr), run in zip(outputs, runs)]
    writes = sum(r["requests"] - r["unexpected_status"] for r in results)
    return {"writes_per_second": round(sum(r["expected_per_s"] for r in results), 1),
            "p99_ms": max(r["latency_ms"]["p99"] for r in results),
            "unexpected_statuses": [r["unexpected_statuses"] for r in results],
            "cpu_ms_per_write": round(cpu / max(writes, 1) * 1000, 2)}


def _nodes(work: Path, clustered: bool) -> tuple[list[CountServer], list[int]]:
    ports = _ports(NODES)
    addresses = [f"127.0.0.1:{port}" for port in ports]
    env = {**CLUSTER_ENV, "CLUSTER_NODES": ",".join(addresses), "ANTI_ENTROPY_INTERVAL_SECONDS": "3600",
           "COMPACTION_INTERVAL_SECONDS": "0"} if clustered else {"COMPACTION_INTERVAL_SECONDS": "0"}
    name = "clustered" if clustered else "independent"
    return [CountServer(work / f"{name}{i + 1}", work / f"{name}{i + 1}.log",
                        {**env, "NODE_ID": str(i + 1), "BIND_ADDRESS": addresses[i]}) for i in range(NODES)], ports


def _measure(work: Path, clustered: bool, seconds: float, connections: int) -> dict:
    nodes, ports = _nodes(work, clustered)
    try:
        for node, port in zip(nodes, ports):
            node.start(port=port)
        if clustered:
            _wait_formed(nodes)
        return _load(nodes, seconds, connections)
    finally:
        for node in nodes:
            node.stop()


def run(seconds: float, connections: int, results_dir: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="count-bench-cluster-writes-") as folder:
        work = Path(folder)
        cluster = _measure(work, True, seconds, connections)
        independent = _measure(work, False, seconds, connections)
    report = {"seconds": seconds, "connections": connections, "points_per_write": 10, "replication_factor": 2,
              "cluster": cluster, "independent_nodes": independent,
              "cluster_rate_ratio": round(cluster["writes_per_second"] / independent["writes_per_second"], 3),
              "cluster_cpu_ratio": round(cluster["cpu_ms_per_write"] / independent["cpu_ms_per_write"], 2)}
    return write_results(results_dir, "cluster-writes", report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_writes", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=24, help="wrk connections in all, split over the nodes")
    parser.add_argument("--results-dir", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.seconds, args.connections, args.results_dir), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
