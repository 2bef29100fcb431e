"""Range and aggregate queries over one series (the original Count API), with step= downsampling.

Invariant: without a step a range answers exactly the visible points in time order; with one it answers one
row per non-empty epoch-aligned bucket in [start, end] (every bucket, with a fill), labelled by its start.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

import pyarrow as pa

from countdb.errors import LimitExceeded
from countdb.query.aggregations import Aggregation, grouped_sql
from countdb.query.buckets import Fill, bucket_count, fill_buckets
from countdb.model import RemotePoints, last_writes
from countdb.query.engine import QueryEngine, Snapshot
from countdb.query.execute import check_bounds, select_visible
from countdb.query.visible import used_params

MAX_FILLED_POINTS = 1_000_000
BUCKET_WINDOW = ('greatest("timestamp", $start)', 'least("timestamp" + $step, $end)')
WHOLE_WINDOW = ("$start", "$end")
_names = itertools.count()


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
                downsample: Downsample | None = None, remote: RemotePoints | None = None) -> pa.RecordBatchReader | pa.Table:
    """Rows (timestamp, value) of `series` in [start_ms, end_ms]: its visible points, or with `downsample`
    its buckets; `remote`: the series' points on other cluster nodes, merged in. Raises InvalidInput (bounds),
    LimitExceeded (fill too large)."""
    check_bounds(start_ms, end_ms)
    if downsample is None:
        return engine.run_query(lambda current: _series_rows(
            engine, current, series, start_ms, end_ms, {},
            lambda points: f"SELECT ts AS timestamp, value FROM {points} ORDER BY ts", points_answer=True), remote)
    downsample.check_fill_size(start_ms, end_ms, 1)
    rows = engine.run_query(lambda current: _series_rows(
        engine, current, series, start_ms, end_ms, {"step": downsample.step_ms},
        lambda points: downsample.bucketed_sql(points, []) + " ORDER BY 1"), remote)
    if downsample.fill.policy == "none":
        return rows
    return downsample.fill_table(rows.read_all(), start_ms, end_ms)


def query_aggregate(engine: QueryEngine, series: str, start_ms: int, end_ms: int,
                    aggregation: Aggregation, remote: RemotePoints | None = None) -> pa.RecordBatchReader:
    """One row, column `value`: the aggregate over the range (`count` of no points is 0, the others null)."""
    check_bounds(start_ms, end_ms)
    return engine.run_query(lambda current: _series_rows(
        engine, current, series, start_ms, end_ms, {},
        lambda points: grouped_sql(aggregation, points, [], WHOLE_WINDOW)), remote)


def _series_rows(engine: QueryEngine, current: Snapshot, series: str, start_ms: int, end_ms: int, params: dict,
                 build: Callable[[str], str], points_answer: bool = False) -> pa.RecordBatchReader:
    """build(<relation of the series' visible points (series, ts, value)>) over `current`. When the stored-series
    fast path can read the points (issue 4), SQL runs over them alone, or, with `points_answer` (build only
    orders them), they are the answer; otherwise the general visible-points SQL answers."""
    points = stored_points(engine, current, series, start_ms, end_ms)
    if points is None:
        return select_visible(engine, start_ms, end_ms, "series = $series", {**params, "series": series},
                              build, series=series, snapshot=current)
    if not points_answer:
        table = f"stored_points_{next(_names)}"
        sql = build(f"(SELECT $series AS series, timestamp AS ts, value FROM {table})")
        cursor = engine.cursor()
        try:
            cursor.register(table, points)
            run_params = {**params, "series": series, "start": start_ms, "end": end_ms}
            points = cursor.sql(sql, params=used_params(sql, run_params)).to_arrow_table()
        finally:
            cursor.close()
    return pa.RecordBatchReader.from_batches(points.schema, points.to_batches())


def stored_points(engine: QueryEngine, current: Snapshot, series: str, start_ms: int,
                  end_ms: int, with_seq: bool = False) -> pa.Table | None:
    """(timestamp, value) of the series' visible points in [start_ms, end_ms] read straight from its stored
    row groups (and `seq` with `with_seq`), merged with its unflushed points and the other owners' copies the
    snapshot holds, or None when the general path must answer: a tombstone or a shadow row may touch the series
    in the range, or a block file can't be read here (the general path then finds the damage)."""
    scope = current.scope(start_ms, end_ms, series)
    start_ms = max(start_ms, scope.floor_ms)
    if current.remote_only:  # other nodes' copies, already merged: the points as they are
        return _as_points(scope.unflushed.sort_by("ts"), with_seq)
    if scope.tombstones:
        return None
    newer = scope.unflushed
    try:
        if engine.stored_series.may_hold(scope.shadows, series, start_ms, end_ms):
            return None
        stored = engine.stored_series.read(scope.files, series, start_ms, end_ms, with_seq or newer.num_rows > 0)
    except (OSError, pa.ArrowException):
        return None
    if stored is None or newer.num_rows == 0:
        return stored
    # NOTE: the series' unflushed points (a dashboard's latest hour: issue 17) and a cluster owner's copies of
    # other owners (issue 12) meet its stored points here, the last write of each ts winning, instead of sending
    # every point through the general SQL (an hour of a series being written: 12 ms through it, 3.2 ms here). Equal
    # stamps rank as the general path ranks them (query/visible.py): unflushed points by position, the latest
    # first, then copies (pos -1), then stored points; last_writes keeps the first of equals.
    newer = newer.sort_by([("pos", "descending")]).select(["ts", "value", "seq"])
    merged = pa.concat_tables([newer, stored.rename_columns(["ts", "value", "seq"])])
    return _as_points(last_writes(merged, ["ts"]), with_seq)


def _as_points(points: pa.Table, with_seq: bool) -> pa.Table:
    return pa.table({"timestamp": points["ts"], "value": points["value"],
                     **({"seq": points["seq"]} if with_seq else {})})
