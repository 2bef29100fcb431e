"""The rolling-restart phase: a 3-node cluster (RF=2) behind the repository's nginx.conf restarted one node at a time
while clients write about 1,000 requests a second through nginx (issue 13's number: 0 failed writes).

`python -m bench.rolling [--rate 1000] [--clients 40]` starts three nodes and nginx (TLS, as shipped), then runs the
clients in four processes. Each client has its own loopback source address (nginx.conf limits each client address
to 100 writes/s, as it would limit each real host) and posts, at its share of the rate, one JSON batch of 10 points
of rounded gauges. After a steady stretch it stops (SIGTERM) and starts each node in turn, waiting for the cluster
to form again and then longer than nginx's fail_timeout, as docs/operations.md asks. It reports the rate the
clients reached before and during the restart, every failed write, p99 latency, and whether every node then answers
every acknowledged point once. Writes bench/results/<date>-<host>-rolling.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter

from bench.cluster import CLUSTER_ENV, _ports
from bench.proxies import make_tls, nginx_command, render_nginx_conf
from bench.results_file import write_results
from bench.server import CountServer

POINTS_PER_WRITE = 10
PROCESSES = 4
BETWEEN_NODES_SECONDS = 6  # longer than nginx.conf's fail_timeout (5 s)
STEADY_SECONDS = 10
MAX_SECONDS = 900  # the clients stop by themselves after this, whatever happens to the run
BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


class _FromAddress(HTTPAdapter):
    """Connections from one loopback source address (one client host, as nginx's per-address limits see it)."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def _client(number: int, url: str, cert: str, rate: float, stop, results) -> None:
    """Post one batch every 1/rate seconds (on a schedule: a slow answer is caught up, not forgotten) until `stop`
    is set (or MAX_SECONDS); put (number, acknowledged batches, statuses, failures, latencies) on `results`."""
    session = requests.Session()
    session.mount("https://", _FromAddress(f"127.0.1.{number + 1}"))
    acknowledged, statuses, failures, latencies = [], {}, [], []
    due, sequence = time.time(), 0
    give_up = due + MAX_SECONDS
    while not stop.is_set() and due < give_up:
        time.sleep(max(0.0, due - time.time()))
        ts = BASE_MS + sequence
        body = [{"series": f"roll,host=h{number},core={k}", "timestamp": ts,
                 "value": round(20 + (number * 7 + k * 3 + sequence) % 600 / 10, 1)} for k in range(POINTS_PER_WRITE)]
        began = time.time()
        try:
            status = session.post(url + "/insert", json=body, timeout=30, verify=cert).status_code
        except requests.RequestException as error:
            status, reason = 0, f"{type(error).__name__}: {error}"
        else:
            reason = f"HTTP {status}"
        latencies.append((began, time.time() - began))
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if status == 201:
            acknowledged.append(ts)
        else:
            failures.append((began, reason))
        sequence += 1
        due += 1 / rate
    results.put((number, acknowledged, statuses, failures, latencies))


def _clients(number_from: int, count: int, url: str, cert: str, rate: float, stop, results) -> None:
    """One process's clients, a thread each."""
    threads = [threading.Thread(target=_client, args=(n, url, cert, rate, stop, results))
               for n in range(number_from, number_from + count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _counts(url: str) -> tuple[int, int]:
    """(rows, distinct points) of the benchmark's series as node `url` answers for the whole cluster."""
    sql = "SELECT count(*), count(DISTINCT (series, ts)) FROM points WHERE name LIKE 'roll,%'"
    answer = requests.post(url + "/query/sql", data=sql, headers={"Content-Type": "text/plain"}, timeout=120)
    answer.raise_for_status()
    rows, distinct = answer.json()["rows"][0]
    return rows, distinct


def _rate(latencies: list[tuple[float, float]], start: float, end: float) -> float:
    return round(sum(1 for began, _ in latencies if start <= began < end) / max(end - start, 1e-9), 1)


class _Load:
    """The clients, in PROCESSES processes, writing through `url` from start() until finish()."""

    def __init__(self, url: str, cert: str, rate: float, clients: int):
        self.per_process = clients // PROCESSES
        self.stop, self.queue = multiprocessing.Event(), multiprocessing.Queue()
        self.processes = [multiprocessing.Process(target=_clients, args=(
            p * self.per_process, self.per_process, url, cert, rate / clients, self.stop, self.queue))
            for p in range(PROCESSES)]
        self.began = time.time()

    def start(self) -> "_Load":
        self.began = time.time()
        for process in self.processes:
            process.start()
        return self

    def finish(self) -> dict:
        """Stop the clients; every write's (began, seconds), the failures, the acknowledged points, the statuses."""
        self.stop.set()
        outcomes = [self.queue.get(timeout=120) for _ in range(self.per_process * PROCESSES)]
        for process in self.processes:
            process.join(60)
        statuses: dict[str, int] = {}
        for outcome in outcomes:
            for status, count in outcome[2].items():
                statuses[status] = statuses.get(status, 0) + count
        return {"latencies": sorted(entry for outcome in outcomes for entry in outcome[4]),
                "failures": sorted(entry for outcome in outcomes for entry in outcome[3]),
                "acknowledged": sum(len(outcome[1]) for outcome in outcomes) * POINTS_PER_WRITE,
                "statuses": statuses}


class _Nginx:
    """The repository's nginx.conf in front of `backends`, TLS on `https_port`."""

    def __init__(self, work: Path, backends: list[str], http_port: int, https_port: int):
        self.tls = make_tls(work)
        conf = render_nginx_conf(work, backends, self.tls, http_port, https_port)
        self.process = subprocess.Popen(nginx_command(conf, work), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.url = f"https://127.0.0.1:{https_port}"
        _wait_listening(https_port)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def _single_node_rate(work: Path, rate: float, clients: int) -> dict:
    """The baseline: the same clients for STEADY_SECONDS through nginx into one node (not clustered)."""
    port, http_port, https_port = _ports(3)
    node = CountServer(work / "single", work / "single.log").start(port=port)
    proxy = None
    try:
        proxy = _Nginx(work / "single", [f"127.0.0.1:{port}"], http_port, https_port)
        load = _Load(proxy.url, str(proxy.tls.cert), rate, clients).start()
        time.sleep(STEADY_SECONDS)
        done = load.finish()
        seconds = [latency for _, latency in done["latencies"]]
        return {"writes_per_second": _rate(done["latencies"], load.began + 2, load.began + STEADY_SECONDS),
                "failed_writes": len(done["failures"]), "p99_ms": _p99_ms(seconds)}
    finally:
        if proxy is not None:
            proxy.stop()
        node.stop()


def _p99_ms(seconds: list[float]) -> float:
    return round(statistics.quantiles(seconds, n=100)[98] * 1000, 1)


def run(rate: float, clients: int, results_dir: Path) -> dict:
    ports = _ports(5)
    addresses = [f"127.0.0.1:{port}" for port in ports[:3]]
    env = {**CLUSTER_ENV, "CLUSTER_NODES": ",".join(addresses)}
    report: dict = {"rate_asked": rate, "clients": clients, "points_per_write": POINTS_PER_WRITE,
                    "started": datetime.now(timezone.utc).isoformat()}
    with tempfile.TemporaryDirectory(prefix="count-bench-rolling-") as folder:
        work = Path(folder)
        report["single_node_baseline"] = _single_node_rate(work, rate, clients)
        nodes = [CountServer(work / f"node{i + 1}", work / f"node{i + 1}.log",
                             {**env, "NODE_ID": str(i + 1), "BIND_ADDRESS": addresses[i]}) for i in range(3)]
        proxy = None
        try:
            for i, node in enumerate(nodes):
                node.start(port=ports[i])
            _wait_formed(nodes)
            proxy = _Nginx(work, addresses, ports[3], ports[4])
            load = _Load(proxy.url, str(proxy.tls.cert), rate, clients).start()
            time.sleep(STEADY_SECONDS)
            restart_began = time.time()
            steps = []
            for i, node in enumerate(nodes):
                stopped = node.stop()
                started = time.time()
                node.start(port=ports[i])
                _wait_formed(nodes)
                steps.append({"node": i + 1, "stop_seconds": stopped.get("seconds"),
                              "start_and_rejoin_seconds": round(time.time() - started, 1)})
                time.sleep(BETWEEN_NODES_SECONDS)
            restart_ended = time.time()
            time.sleep(STEADY_SECONDS)
            done = load.finish()
            latencies, failures = done["latencies"], done["failures"]
            report.update({
                "writes_per_second_before_restart": _rate(latencies, load.began + 2, restart_began),
                "writes_per_second_during_restart": _rate(latencies, restart_began, restart_ended),
                "restart_seconds": round(restart_ended - restart_began, 1), "restart_steps": steps,
                "writes": len(latencies), "statuses": done["statuses"], "failed_writes": len(failures),
                "first_failures": [f"{round(at - restart_began, 1)} s into the restart: {why}"
                                   for at, why in failures[:5]],
                "logged_around_first_failure": _logged_around(failures[0][0], work, nodes) if failures else {},
                "p99_ms": _p99_ms([latency for _, latency in latencies]),
                "acknowledged_points": done["acknowledged"],
                "every_node_answers": {},
            })
            for i, node in enumerate(nodes):
                rows, distinct = _counts(node.url)
                report["every_node_answers"][f"node {i + 1}"] = {"rows": rows, "distinct": distinct}
            report["every_acknowledged_point_once"] = all(
                answer["rows"] == answer["distinct"] >= done["acknowledged"]
                for answer in report["every_node_answers"].values())
        finally:
            if proxy is not None:
                proxy.stop()
            for node in nodes:
                node.stop()
    return write_results(results_dir, "rolling", report)


def _logged_around(moment: float, work: Path, nodes: list[CountServer], seconds: float = 10,
                   most: int = 15) -> dict[str, list[str]]:
    """What nginx (its error log) and each node logged at warning or worse within `seconds` before and after
    `moment` (Unix time), at most `most` lines each: why a write failed is in these, not in the client's status."""
    def near(stamp: str, layout: str) -> bool:
        try:
            at = datetime.strptime(stamp, layout).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            return False
        return abs(at - moment) <= seconds

    def lines(path: Path) -> list[str]:
        return path.read_text(errors="replace").splitlines() if path.exists() else []

    # NOTE: nginx writes local time; the benchmark machines (and CI) run in UTC
    found = {"nginx": [line for line in lines(work / "error.log")
                       if near(line[:19], "%Y/%m/%d %H:%M:%S") and "[info]" not in line][:most]}
    for i, node in enumerate(nodes):
        found[f"node {i + 1}"] = [line for line in lines(node.log_path)
                                  if ('"level":"warning"' in line or '"level":"error"' in line)
                                  and near(line[7:26], "%Y-%m-%dT%H:%M:%S")][:most]
    return found


def _wait_formed(nodes: list[CountServer], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    seen: list = []
    while time.monotonic() < deadline:
        seen = []
        for node in nodes:
            try:
                seen.append(requests.get(node.url + "/health", timeout=5).json()["cluster"])
            except (requests.RequestException, ValueError, KeyError) as error:
                seen.append(f"{type(error).__name__}: {error}")
        if all(isinstance(cluster, dict) and cluster["members_up"] == len(nodes) for cluster in seen):
            return
        time.sleep(0.5)
    tails = "\n".join(f"{node.url}: {node.log_tail(5)}" for node in nodes)
    raise RuntimeError(f"the cluster did not form within {seconds:.0f} s: {seen}\n{tails}")


def _wait_listening(port: int, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rolling", description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="writes (requests) per second, all clients")
    parser.add_argument("--clients", type=int, default=40, help="client addresses (a multiple of 4)")
    parser.add_argument("--results-dir", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.rate, args.clients, args.results_dir), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
