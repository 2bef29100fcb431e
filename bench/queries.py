"""Query latency through Count's HTTP API, and the same questions asked of plain DuckDB over the same Parquet files.

Why the baseline: Count's query path is DuckDB too, so the ratio to a bare, reused DuckDB connection over the
very files Count wrote shows what the HTTP layer, snapshots and last-write-wins de-duplication cost.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import duckdb
import orjson
import requests

from bench.dataset import CpuDataset
from bench.ingest import percentile

HOUR_MS, DAY_MS = 3_600_000, 86_400_000
_TAG_EXPRESSIONS = ("tags['hostname']", "tags->>'hostname'", """regexp_extract(series, 'hostname="([^"]*)"', 1)""")


@dataclass(frozen=True)
class Query:
    """One sampled question: how Count is asked (method, path, SQL body) and the DuckDB SQL that answers it."""

    method: str
    path: str
    body: str | None
    duck_sql: str
    duck_params: list


def range_path(key: str, start_ms: int, end_ms: int, extra: str = "") -> str:
    return f"/query/range/{quote(key, safe='')}?start={start_ms}&end={end_ms}{extra}"


def sample_queries(dataset: CpuDataset, samples: int, seed: int = 7) -> dict[str, list[Query]]:
    """Seeded random series and windows for every query kind; bounds are inclusive, as in Count's API."""
    rng = random.Random(seed)
    keys, first, last = dataset.series.keys, dataset.start_ms, dataset.end_ms

    def window(length_ms: int) -> tuple[int, int]:
        hours = max(0, (last - first - length_ms) // HOUR_MS)
        start = first + rng.randint(0, hours) * HOUR_MS
        return start, start + length_ms - 1

    where = "series = ? AND ts BETWEEN ? AND ?"
    out: dict[str, list[Query]] = {"range_1h": [], "step_1m_1d": [], "aggregate_series_all": []}
    for _ in range(samples):
        key, (start, end) = rng.choice(keys), window(HOUR_MS)
        out["range_1h"].append(Query("GET", range_path(key, start, end), None,
                                     f"SELECT ts, value FROM pts WHERE {where} ORDER BY ts", [key, start, end]))
        key, (start, end) = rng.choice(keys), window(DAY_MS)
        out["step_1m_1d"].append(Query(
            "GET", range_path(key, start, end, "&step=1m&aggregation=mean"), None,
            f"SELECT ts - ts % 60000 AS t, avg(value) FROM pts WHERE {where} GROUP BY 1 ORDER BY 1", [key, start, end]))
        key = rng.choice(keys)
        out["aggregate_series_all"].append(Query(
            "GET", f"/query/aggregated/{quote(key, safe='')}?start={first}&end={last}&aggregation=mean", None,
            f"SELECT avg(value) FROM pts WHERE {where}", [key, first, last]))
    scans = max(3, samples // 4)
    out["mean_all_sql"] = [Query("POST", "/query/sql", "SELECT avg(value) AS mean FROM points",
                                 "SELECT avg(value) AS mean FROM pts", [])] * scans
    out["sql_group_by"] = [Query(
        "POST", "/query/sql",
        "SELECT series, count(*) AS n, avg(value) AS mean, max(value) AS peak FROM points GROUP BY series",
        "SELECT series, count(*) AS n, avg(value) AS mean, max(value) AS peak FROM pts GROUP BY series", [])] * scans
    out["group_by_tag_sql"] = [Query(
        "POST", "/query/sql",
        "SELECT {tag} AS hostname, avg(value) AS mean FROM points WHERE name = 'cpu.usage_user' GROUP BY 1",
        f"SELECT {_TAG_EXPRESSIONS[2]} AS hostname, avg(value) AS mean FROM pts "
        "WHERE series LIKE 'cpu.usage\\_user{%' ESCAPE '\\' GROUP BY 1", [])] * scans
    return out


def load_paths(dataset: CpuDataset, count: int = 2_000, seed: int = 11) -> list[str]:
    """Request paths for the wrk load test: one-hour raw ranges of random series and hours."""
    queries = sample_queries(dataset, count, seed)["range_1h"]
    return [query.path for query in queries]


class CountClient:
    """Times Count queries over one keep-alive session; SQL is sent as the raw body (text/plain) by default."""

    def __init__(self, base_url: str):
        self.base_url, self.session = base_url, requests.Session()
        self.sql_as_json = False

    def run(self, query: Query, body: str | None = None) -> tuple[float, int, bytes]:
        """(milliseconds until the whole answer arrived, status, answer bytes)."""
        url, began = self.base_url + query.path, time.perf_counter()
        if query.method == "GET":
            answer = self.session.get(url, timeout=120)
        elif self.sql_as_json:
            answer = self.session.post(url, data=orjson.dumps({"sql": body}),
                                       headers={"Content-Type": "application/json"}, timeout=120)
        else:
            answer = self.session.post(url, data=body.encode(), headers={"Content-Type": "text/plain"}, timeout=120)
        return (time.perf_counter() - began) * 1000, answer.status_code, answer.content


def measure_kind(client: CountClient, baseline: "DuckBaseline | None", queries: list[Query], warmup: int = 2) -> dict:
    """Count and DuckDB answer each sampled question in turn, after `warmup` unrecorded ones of each, so any
    passing noise on the machine hits both sides of the ratio alike. Count's rows are counted from its JSON.
    Without a baseline (while a compactor replaces the files under it), Count alone."""
    body = _sql_body(client, queries[0])
    count, duck = _Tally(), _Tally()
    for n, query in enumerate(queries[:warmup] + queries):
        if not isinstance(body, dict):
            elapsed, status, content = client.run(query, body)
            if n >= warmup:
                count.add(elapsed, status, _rows(content) if status == 200 else content)
        if baseline is not None:
            elapsed, rows = baseline.run(query)
            if n >= warmup:
                duck.add(elapsed, 200, rows)
    if isinstance(body, dict):
        count_result = body
    else:
        count_result = count.summary()
        if body and body != queries[0].body:
            count_result["sql"] = body
    if baseline is None:
        return {"count": count_result}
    duck_result = duck.summary()
    return {"count": count_result, "duckdb": duck_result, "ratio": compare(count_result, duck_result)}


class _Tally:
    """Latencies, answers by status, rows, and the first error body of one side of a comparison."""

    def __init__(self):
        self.latencies, self.statuses, self.rows, self.first_error = [], {}, 0, None

    def add(self, elapsed_ms: float, status: int, rows_or_error) -> None:
        self.latencies.append(elapsed_ms)
        self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
        if status == 200:
            self.rows += rows_or_error or 0
        elif self.first_error is None:
            self.first_error = f"HTTP {status}: {rows_or_error[:300].decode(errors='replace')}"

    def summary(self) -> dict:
        result = {**latency_summary(self.latencies), "available": True, "statuses": self.statuses,
                  "rows_total": self.rows}
        if self.first_error:
            result["first_error"] = self.first_error
        return result


def _sql_body(client: CountClient, query: Query):
    """The SQL text to send (choosing the tag expression the server understands), or a not-available result."""
    if query.method == "GET":
        return None
    candidates = [query.body.format(tag=tag) for tag in _TAG_EXPRESSIONS] if "{tag}" in query.body else [query.body]
    tried = {}
    for candidate in candidates:
        for as_json in (False, True):
            client.sql_as_json = as_json
            _, status, content = client.run(query, candidate)
            if status == 200:
                return candidate
            answer = f"{status} {content[:200].decode(errors='replace')}"
            tried[f"{'json' if as_json else 'text'}: {candidate[:60]}"] = answer
            if status in (404, 405):
                return {"available": False, "reason": "not available", "probe_status": status, "tried": tried}
    return {"available": False, "reason": "failed", "tried": tried}


def _rows(content: bytes) -> int | None:
    try:
        document = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    if isinstance(document, list):
        return len(document)
    if isinstance(document, dict):
        for key in ("rows", "data", "points", "values", "result"):
            if isinstance(document.get(key), list):
                return len(document[key])
        return 1
    return 1


class DuckBaseline:
    """Plain DuckDB, one reused connection, view `pts` over DATA_DIR/time_blocks/*/*.parquet."""

    def __init__(self, data_dir: Path, threads: int | None = None):
        self.connection = duckdb.connect()
        if threads:
            self.connection.execute(f"SET threads = {int(threads)}")
        pattern = str(data_dir / "time_blocks" / "*" / "*.parquet").replace("'", "''")
        self.connection.execute(f"CREATE VIEW pts AS SELECT series, ts, value, seq FROM read_parquet('{pattern}')")

    def run(self, query: Query) -> tuple[float, int]:
        """(milliseconds to execute and fetch every row, rows)."""
        began = time.perf_counter()
        rows = self.connection.execute(query.duck_sql, query.duck_params).fetchall()
        return (time.perf_counter() - began) * 1000, len(rows)

    def close(self) -> None:
        self.connection.close()


def latency_summary(latencies_ms: list[float]) -> dict:
    ordered = sorted(latencies_ms)
    return {"samples": len(ordered), "p50_ms": round(percentile(ordered, 50), 3),
            "p99_ms": round(percentile(ordered, 99), 3), "max_ms": round(ordered[-1], 3) if ordered else 0.0,
            "latencies_ms": [round(v, 3) for v in latencies_ms]}


def compare(count: dict, duck: dict) -> dict:
    """Count's latency as a multiple of DuckDB's, at p50 and p99 (None if either side is missing)."""
    if not count.get("available") or not duck.get("p50_ms"):
        return {"p50": None, "p99": None}
    return {"p50": round(count["p50_ms"] / duck["p50_ms"], 3), "p99": round(count["p99_ms"] / duck["p99_ms"], 3)}


CATCH_UP_STAGES = ("after_ingest", "after_2_minutes")  # judged against "compacted" (limits: report.py TARGETS)


def catch_up_ratios(stages: dict) -> dict:
    """Each query kind's Count p50 in the earlier stages ÷ its p50 after `countdb compact`, the worst of each stage
    (what issue 17's targets judge), and the wrk load's median of each stage."""
    compacted = stages["compacted"]["queries"]
    out: dict = {"by_kind": {}, "worst": {}, "query_load_per_s": {}}
    for stage in CATCH_UP_STAGES:
        ratios = {}
        for kind, measured in stages[stage]["queries"].items():
            now, then = measured["count"].get("p50_ms"), compacted.get(kind, {}).get("count", {}).get("p50_ms")
            if now is not None and then:
                ratios[kind] = round(now / then, 3)
                out["by_kind"].setdefault(kind, {})[stage] = ratios[kind]
        out["worst"][stage] = max(ratios.values(), default=None)
    for stage, measured in stages.items():
        out["query_load_per_s"][stage] = measured.get("query_load", {}).get("expected_per_s_median")
    return out
