"""Batch ingest throughput per wire protocol, from concurrent keep-alive clients sending pre-encoded bodies.

Invariant: every point of the data set is written exactly once: each protocol gets its own time slice,
back-pressure (503/429) is retried, and a slice whose endpoint is missing (404/405/415) or failing is written
afterwards by an available protocol ("backfill", untimed), so storage and queries see the whole data set.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import requests

from bench import wire
from bench.dataset import CpuDataset, Points

NOT_AVAILABLE = (404, 405, 415)
RETRIED, RETRY_LIMIT = (429, 503), 50


@dataclass(frozen=True)
class Protocol:
    """One way in: where to POST, with which headers, and how to encode time steps [t0, t1) of the data set."""

    name: str
    path: str
    headers: dict
    encode: Callable[[CpuDataset, int, int], Iterator[wire.Body]]
    weight: float  # share of the data set's time steps this protocol writes


PROTOCOLS = (
    Protocol("json", "/insert", {"Content-Type": "application/json"},
             lambda d, a, b: wire.json_bodies(d.points(a, b)), 0.15),
    Protocol("ndjson", "/insert", {"Content-Type": "application/x-ndjson"},
             lambda d, a, b: wire.ndjson_bodies(d.points(a, b)), 0.10),
    Protocol("csv", "/insert", {"Content-Type": "text/csv"},
             lambda d, a, b: wire.csv_bodies(d.points(a, b)), 0.05),
    Protocol("line_protocol", "/write?db=bench&precision=ns", {"Content-Type": "text/plain; charset=utf-8"},
             lambda d, a, b: wire.line_protocol_bodies(d, a, b), 0.15),
    Protocol("prometheus_remote_write", "/api/v1/write",
             {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
              "X-Prometheus-Remote-Write-Version": "0.1.0"},
             lambda d, a, b: wire.prometheus_bodies(d.points(a, b)), 0.10),
    Protocol("arrow", "/insert", {"Content-Type": "application/vnd.apache.arrow.stream"},
             lambda d, a, b: wire.arrow_bodies(d.points(a, b)), 0.45),
)
ARROW_AS_STRINGS = Protocol("arrow", "/insert", {"Content-Type": "application/vnd.apache.arrow.stream"},
                            lambda d, a, b: wire.arrow_bodies(d.points(a, b), dictionary=False), 0.45)


@dataclass
class Sent:
    """What one batch of concurrent requests achieved."""

    points: int = 0
    seconds: float = 0.0
    latencies_ms: list = field(default_factory=list)  # of 2xx answers only
    statuses: dict = field(default_factory=dict)  # every answer, retries included
    last_status: int = 0
    first_error: str | None = None


def send_all(url: str, headers: dict, bodies: list[wire.Body], clients: int, timeout_seconds: float = 120) -> Sent:
    """POST every body over `clients` keep-alive connections; only 2xx answers count as written points.

    503/429 (back-pressure) are retried like a real agent would, after Retry-After or a short growing pause,
    up to RETRY_LIMIT times; every answer, retried or not, is counted in `statuses`.
    """
    sent, lock, cursor = Sent(), threading.Lock(), iter(range(len(bodies)))

    def post(session: requests.Session, body: wire.Body) -> None:
        for attempt in range(RETRY_LIMIT + 1):
            began = time.perf_counter()
            try:
                answer = session.post(url, data=body.data, headers=headers, timeout=timeout_seconds)
                status, text, pause = answer.status_code, answer.text[:500], _retry_after(answer, attempt)
            except requests.RequestException as error:
                status, text, pause = 0, f"{type(error).__name__}: {error}", None
            with lock:
                sent.statuses[status] = sent.statuses.get(status, 0) + 1
                sent.last_status = status
                if 200 <= status < 300:
                    sent.points += body.points
                    sent.latencies_ms.append((time.perf_counter() - began) * 1000)
                elif sent.first_error is None:
                    sent.first_error = f"HTTP {status}: {text}"
            if status not in RETRIED or attempt == RETRY_LIMIT:
                return
            time.sleep(pause)

    def client() -> None:
        with requests.Session() as session:
            while True:
                with lock:
                    index = next(cursor, None)
                if index is None:
                    return
                post(session, bodies[index])

    began = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(max(1, min(clients, len(bodies))))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent.seconds = time.perf_counter() - began
    return sent


def _retry_after(answer: requests.Response, attempt: int) -> float:
    """Seconds to wait before retrying: the server's Retry-After if numeric, else 50 ms growing to 1 s."""
    try:
        return min(5.0, float(answer.headers["Retry-After"]))
    except (KeyError, ValueError):
        return min(1.0, 0.05 * (attempt + 1))


def time_slices(total_steps: int) -> dict[str, tuple[int, int]]:
    """Consecutive time-step ranges per protocol, in PROTOCOLS order, sized by weight (the last takes the rest)."""
    slices, start = {}, 0
    for n, protocol in enumerate(PROTOCOLS):
        stop = total_steps if n == len(PROTOCOLS) - 1 else start + round(total_steps * protocol.weight)
        slices[protocol.name] = (start, stop)
        start = stop
    return slices


def measure_protocol(base_url: str, protocol: Protocol, dataset: CpuDataset, t0: int, t1: int,
                     repeats: int, clients: int) -> dict:
    """Probe with one body, then `repeats` timed runs over [t0, t1) (bodies encoded before each run's clock)."""
    bounds = split_steps(t0, t1, repeats)
    first_run = list(protocol.encode(dataset, *bounds[0]))
    if not first_run:
        return {"available": False, "reason": "empty slice", "written_steps": (t0, t0)}
    probe = send_all(base_url + protocol.path, protocol.headers, first_run[:1], clients=1)
    status = probe.last_status
    if protocol.name == "arrow" and status in (400, 422) and protocol is not ARROW_AS_STRINGS:
        retried = measure_protocol(base_url, ARROW_AS_STRINGS, dataset, t0, t1, repeats, clients)
        retried["note"] = f"dictionary-encoded series refused ({probe.first_error}); sent plain strings"
        return retried
    if not 200 <= status < 300:
        return {"available": False, "reason": "not available" if status in NOT_AVAILABLE else "failed",
                "probe_status": status, "probe_error": probe.first_error, "written_steps": (t0, t0)}
    runs, latencies, statuses = [], [], {str(code): count for code, count in probe.statuses.items()}
    for n, (a, b) in enumerate(bounds):
        bodies = first_run[1:] if n == 0 else list(protocol.encode(dataset, a, b))
        if not bodies:
            continue
        sent = send_all(base_url + protocol.path, protocol.headers, bodies, clients)
        runs.append({"points": sent.points, "requests": len(bodies), "seconds": round(sent.seconds, 4),
                     "points_per_s": round(sent.points / sent.seconds, 1) if sent.seconds else 0.0,
                     **({"first_error": sent.first_error} if sent.first_error else {})})
        latencies += sent.latencies_ms
        for code, count in sent.statuses.items():
            statuses[str(code)] = statuses.get(str(code), 0) + count
    return summarize_runs(runs, latencies, statuses, first_run[0].points, (t0, t1))


def split_steps(t0: int, t1: int, parts: int) -> list[tuple[int, int]]:
    """[t0, t1) cut into `parts` consecutive ranges of (nearly) equal length."""
    edges = [t0 + (t1 - t0) * n // parts for n in range(parts + 1)]
    return list(zip(edges[:-1], edges[1:]))


def summarize_runs(runs: list[dict], latencies_ms: list[float], statuses: dict, probe_points: int,
                   steps: tuple[int, int]) -> dict:
    """Median and worst run throughput, request latency percentiles, answers by status."""
    rates = [run["points_per_s"] for run in runs] or [0.0]
    ordered = sorted(latencies_ms) or [0.0]
    return {
        "available": True, "runs": runs, "written_steps": steps,
        "points": sum(run["points"] for run in runs) + probe_points,
        "points_per_s_median": round(statistics.median(rates), 1),
        "points_per_s_min": round(min(rates), 1),
        "request_ms_p50": round(percentile(ordered, 50), 3), "request_ms_p99": round(percentile(ordered, 99), 3),
        "statuses": statuses,
    }


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not ordered:
        return 0.0
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


_FALLBACKS = (
    ("arrow", "/insert", {"Content-Type": "application/vnd.apache.arrow.stream"}, wire.arrow_bodies),
    ("arrow_strings", "/insert", {"Content-Type": "application/vnd.apache.arrow.stream"},
     lambda points: wire.arrow_bodies(points, dictionary=False)),
    ("json", "/insert", {"Content-Type": "application/json"}, wire.json_bodies),
    ("ndjson", "/insert", {"Content-Type": "application/x-ndjson"}, wire.ndjson_bodies),
)


def write_arrow(base_url: str, points: Points, clients: int, per_request: int) -> dict:
    """Write `points` in Arrow IPC requests of `per_request` points; raises IngestError unless all were taken."""
    sent = send_all(base_url + "/insert", {"Content-Type": "application/vnd.apache.arrow.stream"},
                    list(wire.arrow_bodies(points, per_request)), clients)
    if sent.points != len(points):
        raise IngestError(f"{sent.points:,} of {len(points):,} points taken: {sent.first_error}")
    return {"protocol": "arrow", "points": sent.points, "per_request": per_request, "seconds": round(sent.seconds, 3)}


def write_untimed(base_url: str, points: Points, clients: int) -> dict:
    """Write `points` through the first format the server takes (backfill and the exporter data set)."""
    tried = {}
    for name, path, headers, encode in _FALLBACKS:
        bodies = encode(points)
        probe = next(bodies, None)
        if probe is None:
            return {"protocol": None, "points": 0}
        answer = send_all(base_url + path, headers, [probe], clients=1)
        if not answer.points:
            tried[name] = answer.first_error
            continue
        rest = send_all(base_url + path, headers, list(bodies), clients)
        result = {"protocol": name, "points": answer.points + rest.points, "seconds": round(rest.seconds, 3)}
        if rest.first_error:
            result["first_error"] = rest.first_error
        return result
    raise IngestError(f"no ingest format accepted the points: {tried}")


class IngestError(RuntimeError):
    """The server took none of the formats the benchmark can send."""
