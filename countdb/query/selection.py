"""Queries over every series a selector matches: raw or bucketed points per series, and grouped aggregates.

Invariant: the series are resolved once (match_series, capped) on the same snapshot whose points are read,
so the answer is about one instant; points are read only through select_visible().
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from countdb.errors import InvalidInput
from countdb.model import RemotePoints, TAG_KEY_PATTERN
from countdb.query.aggregations import Aggregation, grouped_sql, quoted
from countdb.query.discovery import match_series
from countdb.query.engine import QueryEngine
from countdb.query.execute import check_bounds, select_visible
from countdb.query.range import WHOLE_WINDOW, Downsample
from countdb.query.selectors import NAME_TAG, Selector

_IN_MATCHED = "series IN (SELECT series FROM matched)"
POINTS_SCHEMA = pa.schema([("series", pa.string()), ("timestamp", pa.int64()), ("value", pa.float64())])


def parse_group_by(text: str | None) -> list[str]:
    """`group_by=tagkey,…` (NAME_TAG groups by series name) → the keys; InvalidInput naming a bad one."""
    keys = [key.strip() for key in (text or "").split(",") if key.strip()]
    for key in keys:
        if key != NAME_TAG and not TAG_KEY_PATTERN.match(key):
            raise InvalidInput(f"group_by: {key!r} is not a tag key", field="group_by")
        if key == "value":
            raise InvalidInput("group_by: 'value' would clash with the result's value column", field="group_by")
    if len(set(keys)) != len(keys):
        raise InvalidInput(f"group_by: {text!r} names a key twice", field="group_by")
    return keys


def query_range_matching(engine: QueryEngine, selector: Selector, start_ms: int, end_ms: int,
                         downsample: Downsample | None, max_series: int,
                         remote: RemotePoints | None = None) -> pa.RecordBatchReader | pa.Table:
    """Rows (series, timestamp, value) ordered by series then time: every visible point (or bucket) of each
    matched series that has points in [start_ms, end_ms] (`remote`: other cluster nodes' points, merged in).
    LimitExceeded past `max_series` or the fill limit."""
    check_bounds(start_ms, end_ms)
    snapshot = engine.snapshot(remote)
    matched = match_series(engine, selector, start_ms, end_ms, snapshot, max_series)
    if downsample is not None:
        downsample.check_fill_size(start_ms, end_ms, matched.num_rows)
    if matched.num_rows == 0:
        return POINTS_SCHEMA.empty_table()

    def build(points: str) -> str:
        if downsample is None:
            return f"SELECT series, ts AS timestamp, value FROM {points} ORDER BY series, ts"
        return downsample.bucketed_sql(points, [("series", "series")]) + " ORDER BY 1, 2"

    params = {} if downsample is None else {"step": downsample.step_ms}
    rows = select_visible(engine, start_ms, end_ms, _IN_MATCHED, params, build, snapshot=snapshot,
                          tables={"matched": matched.select(["series"])})
    if downsample is None or downsample.fill.policy == "none":
        return rows
    return _fill_each(rows.read_all(), downsample, start_ms, end_ms)


def _fill_each(table: pa.Table, downsample: Downsample, start_ms: int, end_ms: int) -> pa.Table:
    """Fill every series' buckets separately; series without points stay out."""
    if table.num_rows == 0:
        return table
    runs = pc.run_end_encode(table["series"].combine_chunks())
    parts, start = [], 0
    for key, end in zip(runs.values.to_pylist(), runs.run_ends.to_pylist()):
        filled = downsample.fill_table(table.slice(start, end - start), start_ms, end_ms)
        parts.append(filled.add_column(0, "series", pa.array([key] * filled.num_rows, pa.string())))
        start = end
    return pa.concat_tables(parts)


def query_aggregate_grouped(engine: QueryEngine, selector: Selector, start_ms: int, end_ms: int,
                            aggregation: Aggregation, group_by: list[str],
                            max_series: int, remote: RemotePoints | None = None) -> pa.RecordBatchReader | pa.Table:
    """Rows (<group_by keys>…, value): the aggregate over the points of all matched series in each group
    (rate: the sum of each series' rate). Without group_by one row over everything matched (`remote`: other
    cluster nodes' points, merged in)."""
    check_bounds(start_ms, end_ms)
    snapshot = engine.snapshot(remote)
    matched = match_series(engine, selector, start_ms, end_ms, snapshot, max_series)
    # NOTE: each series' group values as plain columns g0, g1…: joining them to every point is far cheaper than
    # joining the tags map (10x for rate over a day of 100 series).
    groups = pa.table({"series": matched["series"],
                       **{f"g{i}": _tag_values(matched, key) for i, key in enumerate(group_by)}})
    # NOTE: the SQL groups by internal names k0, k1…; tag keys become column names only in the outer SELECT, so
    # a key spelled like a column or table of the query (g, series, ts, n, g1…) can't capture it (issue 14: was a
    # 500, found by schemathesis). Positional ORDER BY for the same reason.
    keys = [(f"g{i}", f"k{i}") for i in range(len(group_by))]
    named = ", ".join([*(f"k{i} AS {quoted(key)}" for i, key in enumerate(group_by)), "value"])
    order = ", ".join(str(position) for position in range(1, len(group_by) + 1))

    def build(points: str) -> str:
        source = f"(SELECT p.*, m.* EXCLUDE (series) FROM {points} p JOIN matched m ON m.series = p.series)"
        grouped = grouped_sql(aggregation, source, keys, WHOLE_WINDOW)
        return f"SELECT {named} FROM ({grouped}) grouped ORDER BY {order}" if group_by else grouped

    return select_visible(engine, start_ms, end_ms, _IN_MATCHED, {}, build, snapshot=snapshot,
                          tables={"matched": groups})


def _tag_values(series: pa.Table, key: str) -> pa.ChunkedArray:
    """Each series' value of tag `key` (null where it has none); NAME_TAG: its name."""
    if key == NAME_TAG:
        return series["name"]
    if series.num_rows == 0:
        return pa.chunked_array([], pa.string())
    return pc.map_lookup(series["tags"], pa.scalar(key), "first")
