"""Single-point inserts from fresh node starts: how evenly the workers share keep-alive connections opened at once.

Each run starts a new node on an empty DATA_DIR, waits for /health, opens all wrk connections at once and counts,
from the access log, each worker's share of the requests. The trivial Falcon + gunicorn app (bench/trivial_app.py),
with the same workers, threads and one listening socket per worker, is measured in the same phase as the ceiling
the figures are compared with.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import requests

from bench.server import CountServer, free_port
from bench.wrk import run_wrk
from countdb.config import Settings

CONNECTIONS = 16


def measure_spread(make_server, work_dir: Path, runs: int, seconds: float, first_ms: int) -> dict:
    """`runs` wrk runs of single-point POST /insert, each against a node `make_server(n)` just started;
    then as many runs against the trivial app. Returns per-run figures, worker shares and the ratios."""
    count_runs = []
    for n in range(runs):
        server: CountServer = make_server(n).start()
        try:
            run = run_wrk(server.url + "/insert", "insert.lua", [str(first_ms + n * 10**9)], CONNECTIONS, seconds)
        finally:
            server.stop()
        run["worker_requests"] = worker_requests(server.log_path, "/insert")
        count_runs.append(run)
    trivial_runs = [_trivial_run(work_dir, seconds) for _ in range(runs)]
    return summarize(count_runs, trivial_runs)


def summarize(count_runs: list[dict], trivial_runs: list[dict]) -> dict:
    rates = [run["expected_per_s"] for run in count_runs]
    shares = [min(run["worker_requests"].values(), default=0) / max(1, sum(run["worker_requests"].values()))
              if len(run["worker_requests"]) > 1 else 0.0 for run in count_runs]
    median, trivial = statistics.median(rates), statistics.median(run["expected_per_s"] for run in trivial_runs)
    return {
        "available": True, "connections": CONNECTIONS, "expected_status": 201, "runs": count_runs,
        "expected_per_s_median": round(median, 1), "expected_per_s_min": round(min(rates), 1),
        "expected_per_s_max": round(max(rates), 1),
        "requests_per_s_median": round(statistics.median(run["requests_per_s"] for run in count_runs), 1),
        "slowest_vs_median": round(min(rates) / median, 3) if median else None,
        "smallest_worker_share": round(min(shares), 3),
        "worker_shares": [round(share, 3) for share in shares],
        "latency_ms_p50": round(statistics.median(run["latency_ms"]["p50"] for run in count_runs), 3),
        "latency_ms_p99": round(statistics.median(run["latency_ms"]["p99"] for run in count_runs), 3),
        "latency_ms_p99_worst": max(run["latency_ms"]["p99"] for run in count_runs),
        "unexpected_status": sum(run["unexpected_status"] for run in count_runs),
        "socket_errors": sum(sum(run["socket_errors"].values()) - run["socket_errors"]["status"]
                             for run in count_runs),
        "requests": sum(run["requests"] for run in count_runs),
        "trivial": {"runs": trivial_runs, "expected_per_s_median": round(trivial, 1)},
        "vs_trivial": round(median / trivial, 3) if trivial else None,
    }


def worker_requests(log_path: Path, path: str) -> dict[str, int]:
    """Requests to `path` per worker pid, from Count's JSON access log lines."""
    counts: Counter = Counter()
    for line in log_path.read_text(errors="replace").splitlines():
        if '"countdb.access"' not in line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("msg", "").split(" ")[1:2] == [path]:
            counts[str(event["pid"])] += 1
    return dict(counts)


def _trivial_run(work_dir: Path, seconds: float) -> dict:
    """One wrk run against the trivial app, started for it. With --reuse-port, gunicorn ≥ 24 gives each worker
    its own listening socket, as Count does: on one shared socket, 3 runs in 5 had one worker serving every
    connection, and the ratio was taken against a third of what the stack can do."""
    defaults = Settings.from_env({})
    # cwd=work_dir: in the repo root gunicorn would read ./gunicorn.conf.py, which is Count's
    port = free_port()
    log = (work_dir / "trivial.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", str(defaults.workers), "--threads",
         str(defaults.threads), "--keep-alive", "75", "--reuse-port", "-b", f"127.0.0.1:{port}",
         "bench.trivial_app:app"],
        cwd=work_dir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    log.close()
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.post(url + "/insert", data=b"{}", timeout=2)
                break
            except requests.RequestException:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the trivial app did not start (exit {process.poll()})") from None
                time.sleep(0.1)
        return run_wrk(url + "/insert", "insert.lua", ["1700000000000"], CONNECTIONS, seconds)
    finally:
        process.terminate()
        process.wait(30)
