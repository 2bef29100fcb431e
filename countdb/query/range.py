"""Range and aggregate queries over one series (the original Count API), with step= downsampling.

Invariant: without a step a range answers exactly the visible points in time order; with one it answers one
row per non-empty epoch-aligned bucket in [start, end] (every bucket, with a fill), labelled by its start.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from countdb.errors import LimitExceeded
from countdb.query.aggregations import Aggregation, grouped_sql
from countdb.query.buckets import Fill, bucket_count, fill_buckets
from countdb.query.engine import QueryEngine
from countdb.query.execute import check_bounds, select_visible

MAX_FILLED_POINTS = 1_000_000
BUCKET_WINDOW = ('greatest("timestamp", $start)', 'least("timestamp" + $step, $end)')
WHOLE_WINDOW = ("$start", "$end")


@dataclass(frozen=True)
class Downsample:
    """step=: aggregate each `step_ms` bucket with `aggregation`; answer empty buckets per `fill`."""

    step_ms: int
    aggregation: Aggregation
    fill: Fill

    def bucketed_sql(self, source: str, keys: list[tuple[str, str]]) -> str:
        """One row per (keys…, bucket start "timestamp") of `source` that has points."""
        return grouped_sql(self.aggregation, source, [*keys, ("ts - ts % $step", "timestamp")], BUCKET_WINDOW)

    def check_fill_size(self, start_ms: int, end_ms: int, series: int) -> None:
        """LimitExceeded when filling would answer more than MAX_FILLED_POINTS buckets in all."""
        buckets = bucket_count(start_ms, end_ms, self.step_ms) * series
        if self.fill.policy != "none" and buckets > MAX_FILLED_POINTS:
            raise LimitExceeded(f"fill: {buckets} buckets to answer, over the limit of {MAX_FILLED_POINTS}; "
                                "use a larger step or a shorter range", limit="max_filled_points",
                                maximum=MAX_FILLED_POINTS)

    def fill_table(self, table: pa.Table, start_ms: int, end_ms: int) -> pa.Table:
        """(timestamp, value) of one series' non-empty buckets → every bucket of [start_ms, end_ms]."""
        grid, values = fill_buckets(table["timestamp"].combine_chunks(), table["value"].combine_chunks(),
                                    start_ms, end_ms, self.step_ms, self.fill)
        return pa.table({"timestamp": grid, "value": values})


def query_range(engine: QueryEngine, series: str, start_ms: int, end_ms: int,
                downsample: Downsample | None = None) -> pa.RecordBatchReader | pa.Table:
    """Rows (timestamp, value) of `series` in [start_ms, end_ms]: its visible points, or with `downsample`
    its buckets. Raises InvalidInput (bounds), LimitExceeded (fill too large)."""
    params = {"series": series}
    if downsample is None:
        return select_visible(engine, start_ms, end_ms, "series = $series", params,
                              lambda points: f"SELECT ts AS timestamp, value FROM {points} ORDER BY ts",
                              series=series)
    check_bounds(start_ms, end_ms)
    downsample.check_fill_size(start_ms, end_ms, 1)
    rows = select_visible(engine, start_ms, end_ms, "series = $series", {**params, "step": downsample.step_ms},
                          lambda points: downsample.bucketed_sql(points, []) + " ORDER BY 1", series=series)
    if downsample.fill.policy == "none":
        return rows
    return downsample.fill_table(rows.read_all(), start_ms, end_ms)


def query_aggregate(engine: QueryEngine, series: str, start_ms: int, end_ms: int,
                    aggregation: Aggregation) -> pa.RecordBatchReader:
    """One row, column `value`: the aggregate over the range (`count` of no points is 0, the others null)."""
    return select_visible(engine, start_ms, end_ms, "series = $series", {"series": series},
                          lambda points: grouped_sql(aggregation, points, [], WHOLE_WINDOW), series=series)
