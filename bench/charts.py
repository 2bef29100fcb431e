"""PNG charts for the README: ingest throughput per protocol, and query latency distributions (Count vs DuckDB).

Why log scales: Arrow's target is 17x Prometheus's, and a full scan is 100x a one-hour range; on linear axes the
small bars and boxes, which are the ones people ask about, would vanish.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.ticker import FuncFormatter  # noqa: E402

from bench.markdown import _QUERY_LABELS  # noqa: E402
from bench.report import TARGETS  # noqa: E402

_MET, _MISSED, _GREY, _DUCK = "#2e7d32", "#c62828", "#9e9e9e", "#1565c0"
_X_MIN = 1e3


def ingest_chart(results: dict, path: Path) -> None:
    """Median points/s per protocol (whisker: slowest to fastest run), the target as a black tick."""
    protocols = results.get("ingest", {}).get("protocols", {})
    targets = {t.path[2]: t.threshold for t in TARGETS if t.path[:2] == ("ingest", "protocols")}
    fig, ax = plt.subplots(figsize=(9, 4.5))
    names = list(protocols) or ["(no ingest results)"]
    for y, name in enumerate(names):
        result = protocols.get(name, {})
        if not result.get("available"):
            ax.text(_X_MIN * 1.2, y, result.get("reason", "not measured"), va="center", color=_GREY)
            continue
        rates = [run["points_per_s"] for run in result["runs"]] or [0.0]
        median, target = result["points_per_s_median"], targets.get(name)
        color = _GREY if target is None else (_MET if median >= target else _MISSED)
        ax.barh(y, max(median, 1), color=color,
                xerr=[[median - min(rates)], [max(rates) - median]], capsize=4)
        ax.text(max(rates + [target or 0]) * 1.15, y, f"{median:,.0f}", va="center", fontsize=9)
        if target:
            ax.plot([target, target], [y - 0.4, y + 0.4], color="black", linewidth=2)
    ax.set_xscale("log")
    ax.set_xlim(_X_MIN, max([1e7] + [r.get("points_per_s_median", 0) * 4 for r in protocols.values()]))
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("points/s, log scale (black tick: target; green met, red missed, grey: no target)", fontsize=9)
    ax.set_title(f"Count batch ingest — {results['scale']} — {results['machine']['host']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def query_chart(results: dict, path: Path) -> None:
    """Left: per query kind, box plots of Count and DuckDB latencies. Right: wrk latency percentiles."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [2.2, 1]})
    _query_boxes(left, results.get("queries", {}))
    _wrk_percentiles(right, results)
    fig.suptitle(f"Count queries — {results['scale']} — {results['machine']['host']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _query_boxes(ax, queries: dict) -> None:
    kinds = [kind for kind, result in queries.items() if result.get("count", {}).get("latencies_ms")]
    data, positions, colors = [], [], []
    for n, kind in enumerate(kinds):
        data += [queries[kind]["count"]["latencies_ms"],
                 queries[kind].get("duckdb", {}).get("latencies_ms") or [float("nan")]]
        positions += [n * 3, n * 3 + 1]
        colors += [_MET, _DUCK]
    ax.set_ylabel("latency, ms (log scale)")
    ax.set_title("Query latency: Count (green) vs plain DuckDB (blue); dashed: p50 target")
    if not data:
        return
    boxes = ax.boxplot(data, positions=positions, widths=0.8, patch_artist=True, showfliers=True)
    for box, color in zip(boxes["boxes"], colors):
        box.set_facecolor(color)
    labels = [_QUERY_LABELS.get(k, k).replace(" (", "\n(").replace(", `", ",\n`") for k in kinds]
    ax.set_xticks([n * 3 + 0.5 for n in range(len(kinds))], labels, fontsize=7)
    ax.set_yscale("log")
    plain_log_labels(ax)
    limits = {t.path[1]: t.threshold for t in TARGETS if t.path[0] == "queries" and t.path[-1] == "p50_ms"}
    for n, kind in enumerate(kinds):
        if kind in limits:
            ax.plot([n * 3 - 0.5, n * 3 + 0.5], [limits[kind]] * 2, color="black", linestyle="--")


def _wrk_percentiles(ax, results: dict) -> None:
    """Each wrk measurement's latency percentiles, the median over its runs."""
    percentiles = ["p50", "p75", "p90", "p99", "p99.9"]
    for key, label, color in (("single_insert", "single-point POST /insert, 16 conn", "#ef6c00"),
                              ("query_load", "one-hour ranges, 8 conn", "#6a1b9a")):
        load = results.get(key, {})
        if load.get("available"):
            values = [sorted(run["latency_ms"][p] for run in load["runs"])[len(load["runs"]) // 2]
                      for p in percentiles]
            ax.plot(percentiles, values, marker="o", color=color,
                    label=f"{label}: {load['expected_per_s_median']:,.0f} ok/s")
    ax.set_yscale("log")
    plain_log_labels(ax)
    ax.set_ylabel("latency, ms (log scale), median of runs")
    ax.set_title("wrk latency distribution")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def plain_log_labels(ax) -> None:
    """Label a log y axis 1, 2, 5, 10, 20, 50 … instead of 2×10^0."""
    def minor(value, _):
        return f"{value:g}" if value > 0 and round(value / 10 ** math.floor(math.log10(value))) in (2, 5) else ""
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))
