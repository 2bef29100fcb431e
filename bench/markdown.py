"""The Markdown report: targets first (met, MISSED, or not measured and why), then each measurement in detail.

Why a module of its own: the report is read by people deciding what to optimise, so its layout changes more
often than the measurements do; it only reads the results dict.
"""

from __future__ import annotations

from pathlib import Path

_STATUS = {"met": "✅ met", "MISSED": "❌ **MISSED**", "not measured": "⚠️ not measured"}
_QUERY_LABELS = {
    "range_1h": "One series, one hour raw (`/query/range`)",
    "step_1m_1d": "One series, one day, `step=1m&aggregation=mean`",
    "aggregate_series_all": "One series, whole range, `/query/aggregated` mean",
    "mean_all_sql": "`avg(value)` over everything (SQL)",
    "group_by_tag_sql": "mean of usage_user per hostname (SQL)",
    "sql_group_by": "`GROUP BY series` over everything (SQL)",
}


def number(value, unit: str = "") -> str:
    """Readable figure: 1,234,567 · 12.35 · 0.123 · 25.0 % · 1.17×; None is an em dash."""
    if value is None:
        return "—"
    if unit == "%":
        return f"{value * 100:.1f} %"
    if unit == "x":
        return f"{value:.2f}×"
    if isinstance(value, float) and abs(value) < 100:
        return f"{value:.3g}" if abs(value) < 1 else f"{value:,.2f}"
    return f"{value:,.0f}"


def _with_unit(value, unit: str) -> str:
    text = number(value, unit)
    return text if value is None or unit in ("%", "x") else f"{text} {unit}"


def table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows] + [""]


def to_markdown(results: dict, paths: dict) -> str:
    machine, data = results["machine"], results["dataset"]
    libraries = ", ".join(f"{name} {version}" for name, version in machine["libraries"].items() if version)
    lines = [
        f"# Count benchmark — scale `{results['scale']}` — {results['started_at']}",
        "",
        f"**Machine:** {machine['host']}, {machine['cores']} cores, {machine['cpu_model']}, "
        f"{machine['memory_gb']} GB RAM, {machine['os']} (kernel {machine['kernel']}); Python {machine['python']}; "
        f"{libraries}; {machine['wrk'] or 'wrk: not installed'}; commit {machine['commit'] or 'none'}.",
        "",
        f"**Data set:** {data['kind']}, {data['hosts']} hosts × 10 fields = {data['series']:,} series × "
        f"{data['points_per_series']:,} points at 10 s = {data['points']:,} points (seed {data['seed']}).",
        "",
        "## Targets",
        "",
    ]
    lines += table(["Measurement", "Measured", "Target", "Result"], [
        [row["label"], _with_unit(row["value"], row["unit"]),
         f"{row['comparison']} {_with_unit(row['threshold'], row['unit'])}",
         _STATUS[row["status"]] + (f" ({row['reason']})" if row.get("reason") else "")]
        for row in results["targets"]])
    lines += (_ingest(results) + _single(results) + _queries(results) + _load(results) + _catch_up(results)
              + _transfer(results))
    lines += _storage(results) + _rss(results) + _problems(results)
    lines += ["## Charts", "", f"![Ingest throughput per protocol]({Path(paths['ingest_chart']).name})", "",
              f"![Query latency distributions]({Path(paths['query_chart']).name})", ""]
    return "\n".join(lines) + "\n"


def _ingest(results: dict) -> list[str]:
    ingest = results.get("ingest")
    if not ingest:
        return ["## Batch ingest", "", "Not measured (see errors).", ""]
    rows = []
    for name, r in ingest["protocols"].items():
        if not r.get("available"):
            rows.append([name, "—", "—", "—", "—", "—", f"{r.get('reason')} (HTTP {r.get('probe_status')})"])
            continue
        rows.append([name, number(r["points"]), number(r["points_per_s_median"]), number(r["points_per_s_min"]),
                     number(r["request_ms_p50"]), number(r["request_ms_p99"]),
                     ", ".join(f"{code}×{n}" for code, n in r["statuses"].items())])
    return ["## Batch ingest", "",
            f"{ingest['clients']} concurrent keep-alive clients against {ingest.get('server_workers', '?')} gunicorn "
            "workers, bodies encoded before the clock starts; points/s "
            "over each of the runs (median and slowest); request latency over all requests.", ""] + table(
        ["Protocol", "Points", "Points/s (median)", "Points/s (slowest run)", "Request p50 ms", "Request p99 ms",
         "Answers"], rows)


def _single(results: dict) -> list[str]:
    single = results.get("single_insert", {})
    head = ["## Single-point inserts (each run from a fresh node start)", ""]
    if not single.get("available"):
        return head + [f"Not measured: {single.get('reason', 'see errors')}.", ""]
    rows = [[n + 1, number(run["expected_per_s"]), number(run["latency_ms"]["p50"]), number(run["latency_ms"]["p99"]),
             ", ".join(f"{share:.0%}" for share in _shares(run["worker_requests"]))]
            for n, run in enumerate(single["runs"])]
    rows += [[f"trivial Falcon + gunicorn {n + 1}", number(run["expected_per_s"]), number(run["latency_ms"]["p50"]),
              number(run["latency_ms"]["p99"]), "—"] for n, run in enumerate(single["trivial"]["runs"])]
    return head + [
        f"{single['connections']} wrk connections opened at once against a node started a moment before (new "
        f"DATA_DIR each run); each worker's share of requests from the access log. Median "
        f"{number(single['expected_per_s_median'])}/s (min {number(single['expected_per_s_min'])}, max "
        f"{number(single['expected_per_s_max'])}); the trivial app's median "
        f"{number(single['trivial']['expected_per_s_median'])}/s, measured in the same phase; non-201 answers: "
        f"{single['unexpected_status']}, socket errors: {single['socket_errors']}.", ""] + table(
        ["Run", "201 answers/s", "p50 ms", "p99 ms", "Workers' shares"], rows)


def _shares(counts: dict) -> list[float]:
    total = sum(counts.values())
    return sorted((n / total for n in counts.values()), reverse=True) if total else []


def _queries(results: dict) -> list[str]:
    rows = []
    for kind, r in results.get("queries", {}).items():
        count, duck, ratio = r.get("count", {}), r.get("duckdb", {}), r.get("ratio", {})
        if not count.get("available"):
            rows.append([_QUERY_LABELS.get(kind, kind), f"{count.get('reason', 'failed')}", "—",
                         number(duck.get("p50_ms")), number(duck.get("p99_ms")), "—", "—", count.get("samples", 0)])
            continue
        rows.append([_QUERY_LABELS.get(kind, kind), number(count["p50_ms"]), number(count["p99_ms"]),
                     number(duck.get("p50_ms")), number(duck.get("p99_ms")), number(ratio.get("p50"), "x"),
                     number(ratio.get("p99"), "x"), count["samples"]])
    return ["## Query latency (ms)", "",
            "Each question to Count (one keep-alive connection) and then to DuckDB (one reused connection, plain "
            "`read_parquet` over the same files, no de-duplication), in turn.", ""] + table(
        ["Query", "Count p50", "Count p99", "DuckDB p50", "DuckDB p99", "Ratio p50", "Ratio p99", "Samples"], rows)


def _load(results: dict) -> list[str]:
    load = results.get("query_load", {})
    head = ["## Query load (wrk, one-hour ranges, random series and hours)", ""]
    if not load.get("available"):
        return head + [f"Not measured: {load.get('reason', 'see errors')}.", ""]
    return head + table(["Connections", "200 answers/s (median)", "All answers/s", "p50 ms", "p99 ms",
                         "non-200 answers", "socket errors"],
                        [[load["connections"], number(load["expected_per_s_median"]),
                          number(load["requests_per_s_median"]), number(load["latency_ms_p50"]),
                          number(load["latency_ms_p99"]), load["unexpected_status"], load["socket_errors"]]])


def _catch_up(results: dict) -> list[str]:
    stages, ratios = results.get("query_stages", {}), results.get("query_catch_up", {})
    head = ["## Queries before the compactor catches up", ""]
    if "compacted" not in stages:
        return head + ["Not measured: see errors.", ""]
    names = [("after_ingest", "right after ingest"), ("after_2_minutes", "2 minutes later"),
             ("compacted", "after `countdb compact`")]
    rows = []
    for kind in stages["compacted"]["queries"]:
        row = [_QUERY_LABELS.get(kind, kind)]
        for stage, _ in names:
            p50 = stages.get(stage, {}).get("queries", {}).get(kind, {}).get("count", {}).get("p50_ms")
            ratio = ratios.get("by_kind", {}).get(kind, {}).get(stage)
            row.append(number(p50) + (f" ({number(ratio, 'x')})" if ratio is not None else ""))
        rows.append(row)
    rows.append(["One-hour ranges, 8 clients (queries/s)"]
                + [number(ratios.get("query_load_per_s", {}).get(stage)) for stage, _ in names])
    rows.append(["Block files"] + [number(stages.get(stage, {}).get("block_files")) for stage, _ in names])
    return head + [
        "Count's p50 in ms (÷ the same after `countdb compact`): the node restarted on the ingest's blocks as flushed, "
        "with the background compactor on (its default interval); again 2 minutes after that restart; then after "
        "`countdb compact` and a restart (the figures above).", ""] + table(
        ["Query"] + [label for _, label in names], rows)


def _transfer(results: dict) -> list[str]:
    transfer = results.get("transfer")
    head = ["## Big results to a pyarrow client (Arrow IPC)", ""]
    if not transfer:
        return head + ["Not measured (see errors).", ""]
    rows = [[route, f"`{r['sql']}`", number(r["rows"]), number(r["points_per_s_median"]),
             number(min(run["points_per_s"] for run in r["runs"])), number(r["server_cpu_s_per_m_points"]),
             r["runs"][0]["series_type"] or "—"] if r.get("available") else
            [route, name, f"not measured: {r.get('reason')}", "—", "—", "—", "—"]
            for route, statements in transfer.items() for name, r in statements.items()]
    return head + [
        "Up to 10 M stored points (10 M at the medium and large scales; all there are at smaller ones) read by "
        "one pyarrow client: HTTP is `POST /query/sql` with `Accept: application/vnd.apache.arrow.stream` read by "
        "`pyarrow.ipc.open_stream`, Flight is `do_get` of the SQL as ticket; points/s = rows / wall seconds "
        "until the client holds the whole table (median and slowest run); server CPU = user + system seconds "
        "of the server's processes per million points (median run).", ""] + table(
        ["Route", "Statement", "Rows", "Points/s (median)", "Points/s (slowest)", "Server CPU s / M points",
         "series as"], rows)


def _storage(results: dict) -> list[str]:
    rows = []
    for name, s in results.get("storage", {}).items():
        zstd = s["zstd_parquet"]
        rows.append([name, number(s["points"]), number(s["stored_rows"]), s["parquet_files"],
                     number(s["bytes_per_point"]), number(zstd["sorted"]["bytes_per_point"]),
                     number(zstd["arrival_order"]["bytes_per_point"]),
                     number(s["reduction_vs_zstd"], "%") + f" (vs {s['zstd_reference'].replace('_', ' ')})"])
    return ["## Storage (after SIGTERM flush)", "",
            "Count: sum of `time_blocks/*/*.parquet` sizes / points written (its `seq` column and one file per "
            "flush and month included). zstd Parquet: `pyarrow.parquet.write_table(compression='zstd')` of (series, "
            "ts, value) in one file, sorted by series and ts, and in arrival order; the target is judged against the "
            "smaller of the two.",
            ""] + table(["Data set", "Points", "Rows stored", "Files", "Count B/point", "zstd sorted B/point",
                         "zstd arrival B/point", "Count vs smaller zstd"], rows) + _storage_columns(results)


def _storage_columns(results: dict) -> list[str]:
    """Where Count's bytes go: each column's share of bytes/point and the encodings its column chunks use."""
    rows = []
    for name, s in results.get("storage", {}).items():
        for column, bpp in s.get("column_bytes_per_point", {}).items():
            seen = ", ".join(f"{e} ×{n}" for e, n in sorted(s["column_encodings"][column].items()))
            rows.append([name, f"`{column}`", number(bpp), seen])
    if not rows:
        return []
    return ["Count's bytes/point by column (shadow blocks' columns included; footers are the rest), and the "
            "encodings of its column chunks (docs/format/blocks.md):", ""] + table(
        ["Data set", "Column", "B/point", "Column chunks by encoding"], rows)


def _rss(results: dict) -> list[str]:
    rss = results.get("rss")
    if not rss:
        return []
    peaks = ", ".join(f"pid {pid}: {mb:,.0f} MB" for pid, mb in rss.get("worker_peak_mb", {}).items())
    flush = ", ".join(f"pid {pid}: {mb:,.0f} MB" for pid, mb in rss.get("shutdown_flush_max_mb", {}).items())
    return ["## Worker memory", "", f"Peak RSS (VmHWM) per gunicorn worker during ingest: {peaks or 'none seen'}.",
            "", f"Largest RSS sampled (every 0.2 s) per worker during the SIGTERM flush that follows: "
            f"{flush or 'none seen'}.", ""]


def _problems(results: dict) -> list[str]:
    lines = ["## Problems noticed", ""]
    for error in results.get("errors", []):
        lines.append(f"- **phase {error['phase']} failed**: {error['error']}")
    lines += [f"- {problem}" for problem in results.get("problems", [])]
    if len(lines) == 2:
        lines.append("- none")
    return lines + [""]
