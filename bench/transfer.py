"""Big results to a pyarrow client: up to 10 M stored points as an Arrow IPC stream over HTTP (POST /query/sql with
`Accept: application/vnd.apache.arrow.stream`) and over Arrow Flight do_get, with and without the series column.

Invariant: points/s is rows / wall seconds from sending the query until the client holds the whole table, and a
run whose row count differs from the first run's is reported as a problem, not hidden in the median.
"""

from __future__ import annotations

import statistics
import time

import pyarrow as pa
import pyarrow.flight as flight
import requests

from bench.server import CountServer

ARROW_STREAM = "application/vnd.apache.arrow.stream"
RESULT_POINTS = 10_000_000  # the target's result size; also Count's default QUERY_MAX_ROWS
ROUTES = ("http", "flight")
STATEMENTS = {
    "series_ts_value": f"SELECT series, ts, value FROM points LIMIT {RESULT_POINTS}",
    "ts_value": f"SELECT ts, value FROM points LIMIT {RESULT_POINTS}",
}


def http_table(base_url: str, sql: str) -> pa.Table:
    with requests.post(base_url + "/query/sql", data=sql.encode(), stream=True, timeout=600,
                       headers={"Content-Type": "text/plain", "Accept": ARROW_STREAM}) as answer:
        if answer.status_code != 200:
            raise RuntimeError(f"HTTP {answer.status_code}: {answer.content[:300].decode(errors='replace')}")
        return pa.ipc.open_stream(answer.raw).read_all()


def flight_table(port: int, sql: str) -> pa.Table:
    with flight.connect(f"grpc://127.0.0.1:{port}") as client:
        return client.do_get(flight.Ticket(sql.encode())).read_all()


def not_measured(reason: str) -> dict:
    """The phase's results before (or instead of) measuring: every target row then says why it has no value."""
    return {route: {name: {"available": False, "reason": reason} for name in STATEMENTS} for route in ROUTES}


def measure_transfer(server: CountServer, flight_port: int, repeats: int) -> dict:
    """{"http"|"flight": {statement: runs and medians}} for every statement in STATEMENTS, `repeats` runs each;
    server CPU seconds per million points come from the server's process tree."""
    out: dict = {}
    fetchers = {"http": lambda sql: http_table(server.url, sql), "flight": lambda sql: flight_table(flight_port, sql)}
    for route in ROUTES:
        fetch = fetchers[route]
        out[route] = {}
        for name, sql in STATEMENTS.items():
            runs = []
            for _ in range(repeats):
                cpu_before, began = server.cpu_seconds(), time.perf_counter()
                table = fetch(sql)
                seconds = time.perf_counter() - began
                cpu = server.cpu_seconds() - cpu_before
                runs.append({"rows": table.num_rows, "seconds": round(seconds, 3),
                             "points_per_s": round(table.num_rows / seconds), "server_cpu_seconds": round(cpu, 3),
                             "series_type": str(table.schema.field("series").type) if "series" in table.schema.names
                             else None})
                del table
            out[route][name] = _summary(sql, runs)
    return out


def _summary(sql: str, runs: list[dict]) -> dict:
    rows = runs[0]["rows"]
    summary = {"available": True, "sql": sql, "rows": rows, "runs": runs,
               "points_per_s_median": round(statistics.median(run["points_per_s"] for run in runs)),
               "server_cpu_s_per_m_points": round(statistics.median(run["server_cpu_seconds"] for run in runs)
                                                  / max(rows, 1) * 1e6, 3)}
    if any(run["rows"] != rows for run in runs):
        summary["note"] = f"row counts differ between runs: {[run['rows'] for run in runs]}"
    return summary
