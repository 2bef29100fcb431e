"""Targets and problems, derived from the results dict alone (bench/markdown.py renders them).

Invariant: every target appears in every report with its measured value and "met", "MISSED" or "not measured
(why)"; nothing that was missed or failed is left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from bench.dataset import VALUE_SHAPES

_MB = "MB"


@dataclass(frozen=True)
class Target:
    label: str
    path: tuple  # where the value lives in the results
    at_least: bool
    threshold: float
    unit: str
    unavailable: tuple = ()  # where a "not available" reason may be found instead


def _transfer(route: str, label: str) -> Target:
    path = ("transfer", route, "series_ts_value")
    return Target(f"Arrow IPC result (series, ts, value) to pyarrow, {label}", path + ("points_per_s_median",), True,
                  20_000_000, "points/s", path)


def _protocol(name: str, label: str, threshold: float) -> Target:
    return Target(f"{label} ingest", ("ingest", "protocols", name, "points_per_s_median"), True, threshold,
                  "points/s", ("ingest", "protocols", name))


TARGETS = (
    Target("Single-point POST /insert (16 connections)", ("single_insert", "expected_per_s_median"), True, 2_500,
           "req/s", ("single_insert",)),
    Target("Single-point POST /insert p99", ("single_insert", "latency_ms_p99"), False, 30, "ms", ("single_insert",)),
    Target("Single-point POST /insert, slowest of the fresh starts vs median", ("single_insert", "slowest_vs_median"),
           True, 0.85, "x", ("single_insert",)),
    Target("Single-point POST /insert, smallest worker's share of requests", ("single_insert", "smallest_worker_share"),
           True, 0.30, "%", ("single_insert",)),
    Target("Single-point POST /insert vs trivial Falcon + gunicorn", ("single_insert", "vs_trivial"), True, 0.6, "x",
           ("single_insert",)),
    _protocol("line_protocol", "Line protocol", 600_000),
    _protocol("json", "JSON array", 600_000),
    _protocol("ndjson", "NDJSON", 600_000),
    _protocol("arrow", "Arrow IPC", 5_000_000),
    _protocol("prometheus_remote_write", "Prometheus remote write", 300_000),
    Target("One series, one hour raw: p50", ("queries", "range_1h", "count", "p50_ms"), False, 10, "ms",
           ("queries", "range_1h", "count")),
    Target("One series, one day, step=1m: p50", ("queries", "step_1m_1d", "count", "p50_ms"), False, 20, "ms",
           ("queries", "step_1m_1d", "count")),
    Target("Full-scan mean vs raw DuckDB (p50)", ("queries", "mean_all_sql", "ratio", "p50"), False, 1.2, "x",
           ("queries", "mean_all_sql", "count")),
    Target("SQL GROUP BY vs raw DuckDB (p50)", ("queries", "sql_group_by", "ratio", "p50"), False, 1.2, "x",
           ("queries", "sql_group_by", "count")),
    Target("One-hour range queries, 8 clients", ("query_load", "expected_per_s_median"), True, 1_000, "queries/s",
           ("query_load",)),
    Target("Right after ingest: slowest query kind's p50 vs compacted", ("query_catch_up", "worst", "after_ingest"),
           False, 2.0, "x", ("query_catch_up",)),
    Target("2 minutes after ingest: slowest query kind's p50 vs compacted",
           ("query_catch_up", "worst", "after_2_minutes"), False, 1.3, "x", ("query_catch_up",)),
    Target("Right after ingest: one-hour range queries, 8 clients",
           ("query_catch_up", "query_load_per_s", "after_ingest"), True, 1_000, "queries/s", ("query_catch_up",)),
    Target("2 minutes after ingest: one-hour range queries, 8 clients",
           ("query_catch_up", "query_load_per_s", "after_2_minutes"), True, 1_000, "queries/s", ("query_catch_up",)),
    _transfer("http", "HTTP /query/sql"),
    _transfer("flight", "Flight do_get"),
    Target("Peak RSS of a worker during ingest", ("rss", "max_worker_peak_mb"), False, 300, _MB, ("rss",)),
    Target("cpu-only: fewer bytes/point than zstd Parquet", ("storage", "cpu", "reduction_vs_zstd"), True,
           0.25, "%", ("storage", "cpu")),
    Target("Exporter data: fewer bytes/point than zstd Parquet", ("storage", "exporter", "reduction_vs_zstd"),
           True, 0.25, "%", ("storage", "exporter")),
    Target("Exporter data: bytes/point", ("storage", "exporter", "bytes_per_point"), False, 0.85, "B/point",
           ("storage", "exporter")),
    Target("cpu-only after compaction: fewer bytes/point than zstd Parquet",
           ("storage", "cpu_compacted", "reduction_vs_zstd"), True, 0.25, "%", ("storage", "cpu_compacted")),
    Target("Exporter data after compaction: fewer bytes/point than zstd Parquet",
           ("storage", "exporter_compacted", "reduction_vs_zstd"), True, 0.25, "%", ("storage", "exporter_compacted")),
    Target("Exporter data after compaction: bytes/point", ("storage", "exporter_compacted", "bytes_per_point"), False,
           0.85, "B/point", ("storage", "exporter_compacted")),
    Target("cpu-only, two-decimal values: bytes/point as flushed", ("storage", "two_decimals", "bytes_per_point"),
           False, 2.3, "B/point", ("storage", "two_decimals")),
    Target("cpu-only, two-decimal values, after compaction: bytes/point",
           ("storage", "two_decimals_compacted", "bytes_per_point"), False, 1.9, "B/point",
           ("storage", "two_decimals_compacted")),
)


def _dig(results: dict, path: tuple):
    node = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def evaluate_targets(results: dict) -> list[dict]:
    """One row per target: measured value, threshold and status ("met", "MISSED", "not measured")."""
    rows = []
    for target in TARGETS:
        value = _dig(results, target.path)
        row = {"label": target.label, "value": value, "threshold": target.threshold, "unit": target.unit,
               "comparison": ">=" if target.at_least else "<="}
        if value is None:
            context = _dig(results, target.unavailable) or {}
            reason = context.get("reason") if isinstance(context, dict) else None
            row.update(status="not measured", reason=reason or _failed_phase(results, target.path))
        else:
            met = value >= target.threshold if target.at_least else value <= target.threshold
            row["status"] = "met" if met else "MISSED"
            wrong = _wrong_answers(results, target.path)
            if wrong:
                row.update(status="MISSED", reason=wrong)
        rows.append(row)
    return rows


def _wrong_answers(results: dict, path: tuple) -> str | None:
    """A latency target can't be met by a wrong answer: range and step queries must return DuckDB's rows."""
    if path[0] != "queries" or path[1] not in ("range_1h", "step_1m_1d"):
        return None
    count, duck = _dig(results, path[:2] + ("count", "rows_total")), _dig(results, path[:2] + ("duckdb", "rows_total"))
    if count is None or duck is None or count == duck:
        return None
    return f"wrong answers: {count:,} rows in all where DuckDB returns {duck:,}"


def _failed_phase(results: dict, path: tuple) -> str:
    phase = {"ingest": "ingest", "rss": "ingest", "queries": "queries", "query_load": "queries",
             "query_catch_up": "queries", "single_insert": "single_insert", "transfer": "transfer",
             "storage": _storage_phase(path[1])}[path[0]]
    if phase not in results.get("phase_seconds", {}):
        return f"the {phase} phase was not run"
    for error in results.get("errors", []):
        if error["phase"] == phase:
            return f"{phase} phase failed: {error['error']}"
    return "no value recorded"


def _storage_phase(name: str) -> str:
    if name.startswith("exporter"):
        return "exporter"
    return "ingest" if name.startswith("cpu") else "value_shapes"


def find_problems(results: dict) -> list[str]:
    """Server behaviour worth a look: missing endpoints, error answers, lost or duplicated rows, hangs."""
    problems = []
    ingest = results.get("ingest", {})
    for name, result in ingest.get("protocols", {}).items():
        if not result.get("available"):
            problems.append(f"ingest {name}: {result.get('reason')}: {(result.get('probe_error') or '')[:200]}")
        bad = {code: n for code, n in result.get("statuses", {}).items() if not code.startswith("2")}
        if bad:
            first = next((run["first_error"] for run in result["runs"] if "first_error" in run), "")
            problems.append(f"ingest {name}: non-2xx answers {bad}; first: {first[:200]}")
        if result.get("note"):
            problems.append(f"ingest {name}: {result['note'][:300]}")
    for entry in ingest.get("backfill", []):
        problems.append(f"backfill: {entry['for']}'s time slice was written via {entry.get('protocol')}")
    for name in ("cpu", "exporter", *VALUE_SHAPES):
        stored = _dig(results, ("storage", name))
        if stored and stored["points"] != stored["points_in_data_set"]:
            problems.append(f"storage {name}: only {stored['points']:,} of {stored['points_in_data_set']:,} points "
                            "were acknowledged (see the answers above)")
        if stored and stored["stored_rows"] != stored["points"]:
            problems.append(f"storage {name}: {stored['stored_rows']:,} rows in Parquet for {stored['points']:,} "
                            "points acknowledged (expected equal after a SIGTERM flush)")
    for where in (("ingest", "shutdown"), *(("storage", name, "shutdown") for name in ("exporter", *VALUE_SHAPES))):
        shutdown = _dig(results, where)
        if shutdown and (shutdown.get("hung") or shutdown.get("exit_code") not in (0, None)):
            problems.append(f"{'/'.join(where)}: server exit {shutdown}")
    problems += _query_problems(results)
    for route, statements in results.get("transfer", {}).items():
        problems += [f"transfer {route} `{r['sql']}`: {r['note']}" for r in statements.values() if r.get("note")]
    for key in ("single_insert", "query_load"):
        load = results.get(key, {})
        if load.get("unexpected_status") or load.get("socket_errors"):
            statuses = {}
            for run in load.get("runs", []):
                for code, n in run["unexpected_statuses"].items():
                    statuses[code] = statuses.get(code, 0) + n
            problems.append(f"{key}: {load['unexpected_status']} answers other than {load['expected_status']} "
                            f"{statuses}, {load['socket_errors']} socket errors/timeouts")
    return problems


def _query_problems(results: dict) -> list[str]:
    problems = []
    for kind, result in results.get("queries", {}).items():
        count, duck = result.get("count", {}), result.get("duckdb", {})
        if not count.get("available"):
            problems.append(f"query {kind}: {count.get('reason')}: {json.dumps(count.get('tried', {}))[:400]}")
            continue
        if count.get("first_error"):
            problems.append(f"query {kind}: {count['statuses']}; first: {count['first_error'][:200]}")
        if kind in ("range_1h", "step_1m_1d") and duck and count.get("rows_total") != duck.get("rows_total"):
            problems.append(f"query {kind}: Count returned {count.get('rows_total')} rows in all, "
                            f"DuckDB {duck.get('rows_total')} for the same questions"
                            + (" (step= looks ignored: raw points came back)" if kind == "step_1m_1d"
                               and count.get("rows_total", 0) > duck.get("rows_total", 0) else ""))
    return problems


def to_json(results: dict) -> str:
    return json.dumps(results, indent=1, sort_keys=False, default=str) + "\n"
