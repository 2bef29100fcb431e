"""The soak phase (issue 14 §6): one node under a steady mix of writes and queries at a share of its measured capacity
for half an hour, to show that memory, open files and latency stay flat (end within 10 % of start) and nothing is lost.

`python -m bench.soak [--minutes 30] [--load 0.7]` starts one count-server with short flush and compaction intervals
(both run all along), finds the mix's capacity with closed-loop clients, then runs the same clients open-loop at
`--load` of it: each on a schedule, a late request sent at once rather than skipped (bench/rolling.py). Every few
seconds it reads the master's and workers' RSS and open file descriptors, and the CPU the node and the machine used,
from /proc. It compares the first minutes after a warm-up with the last ones, counts every failed request, and checks
that the node holds every acknowledged point, before and after a restart. Writes bench/results/<date>-<host>-soak.json
and <date>-<host>-soak.png.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import tempfile
import threading
import time
from array import array
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import requests

from bench import wire
from bench.charts import plain_log_labels, plt
from bench.cluster import settle
from bench.grow import stored_rows
from bench.ingest import percentile, send_all
from bench.queries import DAY_MS, HOUR_MS, range_path
from bench.results_file import write_results
from bench.server import CountServer, cpu_seconds, status_kb
from countdb.obs.metrics import process_role

BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: the data's time; each write is the next 10 s of it
INTERVAL_MS = 10_000
HOSTS_PER_CLIENT = 5
FIELDS = ("cpu", "mem_mb", "requests", "bytes_out", "errors")
POINTS_PER_WRITE = HOSTS_PER_CLIENT * len(FIELDS)
MIX = {"write": 0.5, "range_1h": 0.3, "step_1m_1d": 0.18, "sql_group_by": 0.02}
KINDS = tuple(MIX)
LP_PATH = "/api/v2/write?bucket=soak&precision=ms"
TEXT = {"Content-Type": "text/plain"}
# NOTE: short intervals so that flushes and the background compactor run throughout the soak, as they do in a day.
SERVER_ENV = {"FLUSH_INTERVAL_SECONDS": "2", "COMPACTION_INTERVAL_SECONDS": "10"}
FLAT_RATIO = 1.10
PROCESSES = 2


class _Agent:
    """One client: its own hosts' metrics, one data-time step per acknowledged write, and queries about its own
    series that end at the newest point it wrote (half of them: a dashboard's latest hour or day) or anywhere before,
    with a whole window of points behind them once the history (--history-hours) covers one.
    A failed write is sent again with the same points, as an agent would: the node then holds each point once."""

    def __init__(self, number: int, sequence: int, seed: int):
        self.number, self.sequence, self.rng = number, sequence, random.Random(seed * 1_000 + number)

    def next_request(self) -> tuple[str, str, str, str | None]:
        """(kind, method, path, body) of the next operation of the mix."""
        kind = self.rng.choices(KINDS, MIX.values())[0]
        if kind == "write":
            return kind, "POST", LP_PATH, _lines(self.number, self.sequence, self.sequence + 1)
        newest = max(self.sequence - 1, 0)
        oldest = min(DAY_MS // INTERVAL_MS, newest)
        end = BASE_MS + (newest if self.rng.random() < 0.5 else self.rng.randint(oldest, newest)) * INTERVAL_MS
        if kind == "sql_group_by":
            return kind, "POST", "/query/sql", _group_by_sql(end - HOUR_MS, end)
        key = f'soak.{self.rng.choice(FIELDS)}{{host="c{self.number}h{self.rng.randrange(HOSTS_PER_CLIENT)}"}}'
        if kind == "range_1h":
            return kind, "GET", range_path(key, end - HOUR_MS + 1, end), None
        return kind, "GET", range_path(key, end - DAY_MS + 1, end, "&step=1m&aggregation=mean"), None


def _lines(number: int, first: int, stop: int) -> str:
    """Line protocol of client `number`'s hosts for data-time steps [first, stop): a rounded gauge, an integer-valued
    one and three integer counters per host, as an agent such as Telegraf sends them."""
    return "\n".join(
        f"soak,host=c{number}h{k} cpu={round(20 + (number * 7 + k * 3 + s) % 600 / 10, 1)},"
        f"mem_mb={2048 + (s * 13 + k * 101) % 512},requests={s * 37 + k}i,bytes_out={s * 52_113 + k * 7}i,"
        f"errors={s // 97}i {BASE_MS + s * INTERVAL_MS}" for s in range(first, stop) for k in range(HOSTS_PER_CLIENT))


def _history(url: str, clients: int, hours: float) -> list[int]:
    """Write `hours` of data time for every client before anything is measured, in large batches, and wait until
    the node has flushed and compacted them: queries then read whole windows from the start, so their cost does not
    grow during the soak just because there is more behind them. Returns each client's next step."""
    steps = int(hours * HOUR_MS // INTERVAL_MS)
    bodies = [wire.Body(_lines(number, first, min(first + 1_000, steps)).encode(),
                        (min(first + 1_000, steps) - first) * POINTS_PER_WRITE)
              for number in range(clients) for first in range(0, steps, 1_000)]
    sent = send_all(url + LP_PATH, TEXT, bodies, PROCESSES)
    if sent.points != steps * clients * POINTS_PER_WRITE:
        raise RuntimeError(f"the history was not written: {sent.statuses}, {sent.first_error}")
    deadline = time.monotonic() + 300
    while stored_rows(url) < sent.points and time.monotonic() < deadline:
        time.sleep(0.5)
    settle([url])
    return [steps] * clients


def _group_by_sql(start_ms: int, end_ms: int) -> str:
    """Every series' count, mean and peak over one hour of data time: a dashboard's table, bounded in time so that
    its cost stays the same however much the node holds (if it grows, the time pruning is what failed)."""
    def stamp(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return ("SELECT series, count(*) AS n, avg(value) AS mean, max(value) AS peak FROM points "
            f"WHERE ts >= TIMESTAMP '{stamp(start_ms)}' AND ts < TIMESTAMP '{stamp(end_ms)}' GROUP BY series")


def _client(number: int, sequence: int, url: str, rate: float | None, until: float, seed: int, results) -> None:
    """Send the mix until `until` (epoch seconds): back to back when `rate` is None (closed loop), else one request
    every 1/rate s on a schedule, a late one sent at once. Stops at `until` even when behind, so the run lasts what
    was asked. Puts (number, sequence reached, seconds behind schedule at the end, began, seconds, kind, status
    arrays) on `results`."""
    agent, session = _Agent(number, sequence, seed), requests.Session()
    began, seconds, kinds, statuses = array("d"), array("d"), array("b"), array("H")
    due = time.time()
    while due < until and time.time() < until:
        time.sleep(max(0.0, due - time.time()))
        kind, method, path, body = agent.next_request()
        start = time.time()
        try:
            status = session.request(method, url + path, data=body, headers=TEXT, timeout=60).status_code
        except requests.RequestException:
            status = 0
        began.append(start), seconds.append(time.time() - start), kinds.append(KINDS.index(kind))
        statuses.append(status)
        if kind == "write" and 200 <= status < 300:
            agent.sequence += 1
        due = due + 1 / rate if rate else time.time()
    results.put((number, agent.sequence, max(0.0, until - due), began, seconds, kinds, statuses))


def _clients(numbers: list[int], sequences: list[int], url: str, rate, until: float, seed: int, results) -> None:
    """One process's clients, a thread each."""
    threads = [threading.Thread(target=_client, args=(n, s, url, rate, until, seed, results))
               for n, s in zip(numbers, sequences)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class _Requests:
    """Every request of a phase, all clients together, in order of sending: began (epoch s), seconds, kind (index
    into KINDS) and status (0: no answer) as numpy columns; the sequence each client reached, and how far behind
    its schedule the latest client was when the phase ended."""

    def __init__(self, outcomes: list[tuple]):
        outcomes.sort(key=lambda outcome: outcome[0])
        self.sequences = [outcome[1] for outcome in outcomes]
        self.behind_seconds = max(outcome[2] for outcome in outcomes)
        began, seconds, kinds, statuses = (np.concatenate([np.asarray(outcome[c]) for outcome in outcomes])
                                           for c in range(3, 7))
        order = np.argsort(began, kind="stable")
        self.began, self.seconds, self.kinds, self.statuses = began[order], seconds[order], kinds[order], statuses[order]

    def between(self, start: float, end: float, kinds=KINDS, ok_only: bool = False) -> np.ndarray:
        """Indices of the requests of `kinds` that began in [start, end), only the 2xx answers if `ok_only`."""
        low, high = np.searchsorted(self.began, [start, end])
        indices = np.arange(low, high)
        keep = np.isin(self.kinds[low:high], [KINDS.index(kind) for kind in kinds])
        if ok_only:
            keep &= self.ok(indices)
        return indices[keep]

    def ok(self, indices: np.ndarray) -> np.ndarray:
        return (self.statuses[indices] >= 200) & (self.statuses[indices] < 300)

    def latency(self, indices: np.ndarray) -> dict:
        ordered = sorted((self.seconds[indices] * 1000).tolist())
        return {"count": len(ordered), "p50_ms": round(percentile(ordered, 50), 2),
                "p99_ms": round(percentile(ordered, 99), 2)}

    def statuses_of(self, indices: np.ndarray) -> dict:
        found, counts = np.unique(self.statuses[indices], return_counts=True)
        return {str(status): int(count) for status, count in zip(found.tolist(), counts.tolist())}


class _Clients:
    """len(sequences) clients in PROCESSES processes, sending the mix for `seconds` from start(), each client
    going on from its sequence (the data time it reached before)."""

    def __init__(self, url: str, sequences: list[int], rate: float | None, seconds: float, seed: int):
        self.url, self.sequences, self.rate, self.seconds, self.seed = url, sequences, rate, seconds, seed
        self.queue, self.processes = multiprocessing.Queue(), []

    def start(self) -> "_Clients":
        """Forks the processes; call it before starting any thread of this process (a fork copies no thread)."""
        until, numbers = time.time() + self.seconds, list(range(len(self.sequences)))
        self.processes = [multiprocessing.Process(target=_clients, args=(
            numbers[p::PROCESSES], self.sequences[p::PROCESSES], self.url, self.rate, until, self.seed, self.queue))
            for p in range(PROCESSES)]
        for process in self.processes:
            process.start()
        return self

    def finish(self) -> _Requests:
        """Every request the clients made, once they stopped by themselves."""
        outcomes = [self.queue.get(timeout=self.seconds + 120) for _ in self.sequences]
        for process in self.processes:
            process.join(60)
        return _Requests(outcomes)


def _capacity(url: str, sequences: list[int], seconds: float, seed: int) -> tuple[dict, list[int]]:
    """The mix's capacity: 2xx answers/s of closed-loop clients, after the first fifth of `seconds` (warm-up).
    Returns it with each client's next step."""
    began = time.time()
    done = _Clients(url, sequences, None, seconds, seed).start().finish()
    warm = began + seconds / 5
    ok = done.between(warm, began + seconds, ok_only=True)
    every = done.between(began, began + seconds)
    return {"seconds": seconds, "ops_per_second": round(len(ok) / (seconds * 4 / 5), 1),
            "by_kind": {kind: done.latency(done.between(warm, began + seconds, (kind,), True)) for kind in KINDS},
            "statuses": done.statuses_of(every)}, done.sequences


class _Sampler:
    """Every `interval_seconds`, the RSS (MB) and open descriptors of the server's master and each worker, the
    block files on disk, and the CPU (in cores) the node's processes, the whole machine and its hypervisor (steal)
    took since the last sample, timed from `began` (epoch s); a thread, stopped by stop()."""

    def __init__(self, server: CountServer, interval_seconds: float, began: float):
        self.server, self.interval_seconds, self.samples = server, interval_seconds, []
        self.began, self.workers_seen = began, set()
        pids = [server.process.pid, *server.child_pids()]
        self._cpu_before = (time.monotonic(), {pid: cpu_seconds(pid) for pid in pids}, _machine_ticks())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            self.samples.append(self._sample())

    def stop(self) -> list[dict]:
        self._stop.set()
        self._thread.join()
        return self.samples

    def _sample(self) -> dict:
        workers = self.server.worker_pids()
        self.workers_seen.update(workers)
        rss = {pid: (status_kb(pid, "VmRSS") or 0) / 1024 for pid in [self.server.process.pid,
                                                                        *self.server.child_pids()]}
        fds = {pid: _open_files(pid) for pid in rss}
        master = self.server.process.pid
        return {"t_s": round(time.time() - self.began, 2), "workers": len(workers),
                "rss_mb": {"master": round(rss[master], 1), "sum": round(sum(rss.values()), 1),
                           "max_worker": round(max([rss[pid] for pid in workers] or [0]), 1)},
                "open_files": {"master": fds[master], "sum": sum(fds.values()),
                               "max_worker": max([fds[pid] for pid in workers] or [0])},
                "block_files": sum(1 for _ in (self.server.data_dir / "time_blocks").glob("*/*.parquet")),
                "cpu_cores": self._cpu_cores(list(rss))}

    def _cpu_cores(self, pids: list[int]) -> dict:
        """Cores used since the last sample: by the node's workers, its compactor, its other processes (the master,
        Flight…), and by the machine (`busy`: every process, this benchmark's clients too; `steal`: taken by the
        hypervisor for other guests, which a shared VM's latency feels but no process here shows)."""
        now, process_cpu, machine = time.monotonic(), {pid: cpu_seconds(pid) for pid in pids}, _machine_ticks()
        then, cpu_then, machine_then = self._cpu_before
        self._cpu_before = (now, process_cpu, machine)
        elapsed = max(now - then, 1e-9)
        by_role = {"workers": 0.0, "compactor": 0.0, "node_other": 0.0}
        for pid, used in process_cpu.items():
            role = process_role(pid) if pid != self.server.process.pid else "master"
            role = {"worker": "workers", "compactor": "compactor"}.get(role, "node_other")
            by_role[role] += max(used - cpu_then.get(pid, 0.0), 0.0) / elapsed
        ticks = os.sysconf("SC_CLK_TCK") * elapsed
        return {**{role: round(cores, 3) for role, cores in by_role.items()},
                **{name: round((machine[name] - machine_then[name]) / ticks, 3) for name in ("busy", "steal")}}


def _machine_ticks() -> dict[str, int]:
    """The machine's CPU time so far in clock ticks (/proc/stat's first line): busy (user, nice, system, irq,
    softirq) and steal."""
    fields = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return {"busy": user + nice + system + irq + softirq, "steal": steal}


def _open_files(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _with_requests(samples: list[dict], done: _Requests, began: float) -> list[dict]:
    """Each sample with the requests that began since the previous one: rate, latencies, failures."""
    previous = 0.0
    for sample in samples:
        window = (began + previous, began + sample["t_s"])
        every = done.between(*window)
        sample.update({"ops_per_second": round(len(every) / max(sample["t_s"] - previous, 1e-9), 1),
                       "write": done.latency(done.between(*window, ("write",))),
                       "query": done.latency(done.between(*window, KINDS[1:])),
                       "failed": int((~done.ok(every)).sum())})
        previous = sample["t_s"]
    return samples


def _compare(start: float, end: float) -> dict:
    """end / start and whether that is flat (at most FLAT_RATIO); a smaller end is flat too."""
    ratio = round(end / start, 3) if start else None
    return {"start": round(start, 2), "end": round(end, 2), "ratio": ratio,
            "verdict": "flat" if ratio is not None and ratio <= FLAT_RATIO else "MISSED"}


def _start_and_end(samples: list[dict], done: _Requests, began: float, seconds: float) -> dict:
    """The first window after the warm-up against the last: the median sample's RSS and open files, the p99 of
    every request that began in the window; and, to explain them rather than judged, the median sample's CPU."""
    warm, length = min(60.0, seconds / 10), min(180.0, seconds / 5)
    windows = {"start": (round(warm, 1), round(warm + length, 1)), "end": (round(seconds - length, 1), seconds)}

    def median(group: str, name: str, window) -> float:
        return statistics.median([s[group][name] for s in samples if window[0] <= s["t_s"] <= window[1]] or [0])

    def p99(kinds, window) -> float:
        return done.latency(done.between(began + window[0], began + window[1], kinds))["p99_ms"]

    measures = {"rss_sum_mb": lambda w: median("rss_mb", "sum", w),
                "rss_max_worker_mb": lambda w: median("rss_mb", "max_worker", w),
                "open_files": lambda w: median("open_files", "sum", w),
                "write_p99_ms": lambda w: p99(("write",), w), "query_p99_ms": lambda w: p99(KINDS[1:], w)}
    compared = {name: _compare(measure(windows["start"]), measure(windows["end"])) for name, measure in measures.items()}
    by_kind = {kind: _compare(p99((kind,), windows["start"]), p99((kind,), windows["end"])) for kind in KINDS[1:]}
    cpu = {name: {window: median("cpu_cores", name, windows[window]) for window in windows}
           for name in samples[0]["cpu_cores"]} if samples else {}
    return {"windows_s": windows, "compared": compared, "query_p99_ms_by_kind": by_kind, "cpu_cores": cpu,
            "all_flat": all(c["verdict"] == "flat" for c in compared.values())}


def _counts(url: str) -> dict:
    """Rows and distinct (series, ts) of the soak's series that the node answers."""
    sql = "SELECT count(*), count(DISTINCT (series, ts)) FROM points WHERE name LIKE 'soak.%'"
    answer = requests.post(url + "/query/sql", data=sql, headers=TEXT, timeout=300)
    answer.raise_for_status()
    rows, distinct = answer.json()["rows"][0]
    return {"rows": rows, "distinct": distinct}


def _soak(server: CountServer, sequences: list[int], rate: float, seconds: float, args) -> dict:
    """The open-loop run with its samples: what it did, window by window and start against end."""
    began = time.time()
    clients = _Clients(server.url, sequences, rate / len(sequences), seconds, args.seed + 1).start()
    sampler = _Sampler(server, args.sample_seconds, began)
    done = clients.finish()
    samples = _with_requests(sampler.stop(), done, began)
    every = done.between(0, float("inf"))
    failed = every[~done.ok(every)]
    requests_by_kind = {kind: done.between(0, float("inf"), (kind,)) for kind in KINDS}
    return {"ops_per_second_reached": round(len(every) / seconds, 1),
            "behind_schedule_seconds_at_end": round(done.behind_seconds, 2),
            "requests": {kind: {**done.latency(indices), "statuses": done.statuses_of(indices)}
                         for kind, indices in requests_by_kind.items()},
            "failed_requests": len(failed),
            "first_failures": [f"{done.began[i] - began:.1f} s: {KINDS[done.kinds[i]]} HTTP {done.statuses[i]}"
                               for i in failed[:5]],
            "start_vs_end": _start_and_end(samples, done, began, seconds),
            "worker_pids_seen": len(sampler.workers_seen), "samples": samples,
            "acknowledged_points": sum(done.sequences) * POINTS_PER_WRITE}


def _stored(server: CountServer) -> dict:
    """What the node answers for the soak's series while running, and again after a stop (SIGTERM: it flushes
    everything) and a start on the same data: the stop's outcome and both counts."""
    live = _counts(server.url)
    stop = server.stop()
    server.start()
    return {"live": live, "after_restart": _counts(server.url), "stop": stop}


def _verdict_on_points(report: dict) -> dict:
    """Lost points (acknowledged but not answered) and whether every acknowledged point is there exactly once.
    A write that failed may still have been stored, but its points are sent again, so a point is never twice."""
    acknowledged, counts = report["acknowledged_points"], [report["stored"][k] for k in ("live", "after_restart")]
    return {"lost_points": max(0, acknowledged - min(count["distinct"] for count in counts)),
            "every_acknowledged_point_once": all(c["rows"] == c["distinct"] >= acknowledged for c in counts)}


def run(args) -> dict:
    """The whole phase; returns the report, with `written` (the JSON) and `chart` (the PNG beside it)."""
    seconds = args.minutes * 60
    report: dict = {"minutes": args.minutes, "load": args.load, "clients": args.clients, "mix": MIX,
                    "history_hours": args.history_hours,
                    "points_per_write": POINTS_PER_WRITE, "server_env": SERVER_ENV,
                    "started": datetime.now(timezone.utc).isoformat()}
    with tempfile.TemporaryDirectory(prefix="count-bench-soak-") as folder:
        server = CountServer(Path(folder) / "data", Path(folder) / "server.log", SERVER_ENV).start()
        try:
            history = _history(server.url, args.clients, args.history_hours)
            report["history_points"] = sum(history) * POINTS_PER_WRITE
            report["capacity"], sequences = _capacity(server.url, history, args.probe_seconds, args.seed)
            report["rate_asked"] = round(args.load * report["capacity"]["ops_per_second"], 1)
            report.update(_soak(server, sequences, report["rate_asked"], seconds, args))
            report["compaction"] = requests.get(server.url + "/status", timeout=30).json()["compaction"]
            report["stored"] = _stored(server)
        finally:
            server.stop()
    report.update(_verdict_on_points(report))
    results = write_results(args.results_dir, "soak", report)
    chart = Path(results["written"]).with_suffix(".png")
    _chart(results, chart)
    return {**results, "chart": str(chart)}


def _chart(report: dict, path: Path) -> None:
    """RSS, open files, p99 and CPU over the soak, the start and end windows shaded."""
    samples = report["samples"]
    minutes = [sample["t_s"] / 60 for sample in samples]
    fig, (rss, files, p99, cpu) = plt.subplots(4, 1, figsize=(10, 11.5), sharex=True)
    rss.plot(minutes, [s["rss_mb"]["sum"] for s in samples], label="all the node's processes")
    rss.plot(minutes, [s["rss_mb"]["max_worker"] for s in samples], label="largest worker")
    rss.set_ylabel("RSS, MB")
    files.plot(minutes, [s["open_files"]["sum"] for s in samples], label="open files, all the node's processes")
    files.plot(minutes, [s["block_files"] for s in samples], label="block files on disk")
    files.set_ylabel("files")
    for kind, color in (("write", "#ef6c00"), ("query", "#6a1b9a")):
        p99.plot(minutes, [max(s[kind]["p99_ms"], 0.1) for s in samples], label=f"{kind} p99", color=color)
    p99.set_yscale("log")
    plain_log_labels(p99)
    p99.set_ylabel("ms per sample window (log)")
    for name, label in (("workers", "Count's workers"), ("compactor", "Count's compactor"),
                        ("busy", "whole machine (clients too)"), ("steal", "stolen by the hypervisor")):
        cpu.plot(minutes, [s["cpu_cores"][name] for s in samples], label=label)
    cpu.set_ylabel("CPU, cores")
    cpu.set_xlabel("minutes of soak")
    compared = report["start_vs_end"]
    for ax in (rss, files, p99, cpu):
        for start, end in compared["windows_s"].values():
            ax.axvspan(start / 60, end / 60, color="#9e9e9e", alpha=0.2)
        ax.set_ylim(bottom=0 if ax is not p99 else None)
        ax.legend(fontsize=8, loc="upper left")
    verdicts = ", ".join(f"{name} {c['ratio']}x" for name, c in compared["compared"].items())
    fig.suptitle(f"Count soak: {report['rate_asked']:g} ops/s ({report['load']:.0%} of capacity), "
                 f"{report['minutes']:g} min, {report['failed_requests']} failed, {report['lost_points']} lost\n"
                 f"end / start (grey windows): {verdicts}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Exit 1 when a request failed, a point was lost or the server hung on stop; not flat is reported, not failed."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the open-loop run")
    parser.add_argument("--load", type=float, default=0.7, help="share of the measured capacity to ask for")
    parser.add_argument("--clients", type=int, default=8, help=f"client threads, in {PROCESSES} processes")
    parser.add_argument("--history-hours", type=float, default=24.0, help="data time written first, per client")
    parser.add_argument("--probe-seconds", type=float, default=20.0, help="closed-loop capacity measurement")
    parser.add_argument("--sample-seconds", type=float, default=5.0, help="between samples of RSS and open files")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--results-dir", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    report = run(args)
    print(json.dumps({key: value for key, value in report.items() if key != "samples"}, indent=2))
    healthy = report["failed_requests"] == 0 and report["every_acknowledged_point_once"]
    return 0 if healthy and not report["stored"]["stop"]["hung"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
