"""Stamped points for another cluster node: what this node holds of one series, or of a set of series, with each
point's write stamp so the asking node can merge copies.

Invariant: only this node's own points (blocks and WAL), visible as any query sees them; never points it was
itself sent by other nodes for one query.
"""

from __future__ import annotations

import pyarrow as pa

from countdb.model import MAX_TIMESTAMP_MS
from countdb.query.engine import QueryEngine, Snapshot
from countdb.query.execute import select_visible
from countdb.query.range import stored_points


def _stamped(points: str) -> str:
    return f"SELECT series, ts, value, seq FROM {points}"


def export_series(engine: QueryEngine, series: str, start_ms: int, end_ms: int) -> pa.Table:
    """(series, ts, value, seq) of `series`' visible points in [start_ms, end_ms]: from its stored row groups
    when the one-series fast path can read them (query/range.py stored_points), else through visible SQL."""
    points = engine.run_query(lambda current: stored_points(engine, current, series, start_ms, end_ms, with_seq=True))
    if points is not None:
        keys = pa.DictionaryArray.from_arrays(pa.array([0] * points.num_rows, pa.int32()), pa.array([series]))
        return pa.table({"series": keys, "ts": points["timestamp"], "value": points["value"], "seq": points["seq"]})
    return select_visible(engine, start_ms, end_ms, "series = $series", {"series": series},
                          _stamped, series=series, with_seq=True).read_all()


def export_keys(engine: QueryEngine, keys: list[str], start_ms: int, end_ms: int) -> pa.Table:
    """(series, ts, value, seq) of the visible points in [start_ms, end_ms] of every series in `keys`."""
    return select_visible(engine, start_ms, end_ms, "series IN (SELECT series FROM exported)", {},
                          _stamped, with_seq=True,
                          tables={"exported": pa.table({"series": pa.array(keys, pa.string())})}).read_all()


def snapshot_token(snapshot: Snapshot) -> tuple:
    """Changes whenever what the snapshot makes visible may have changed: its blocks, unflushed rows, deletes."""
    blocks = tuple(sorted(block.path for blocks in snapshot.blocks_by_month.values() for block in blocks))
    return blocks, snapshot.unflushed.num_rows, tuple(t.id for t in snapshot.tombstones), snapshot.floor_ms


def digest_cells(engine: QueryEngine, keyed: pa.Table, snapshot: Snapshot, before_seq: int | None = None) -> pa.Table:
    """Per (month, partition) of the series in `keyed` (columns series, partition): how many visible points
    stamped before `before_seq` (all when None) and the XOR of a hash of each (series, ts, seq, value), and the
    newest stamp of the cell's points, counted or not. Two nodes holding the same points give the same cells;
    a cell whose points are all newer than `before_seq` counts 0."""
    counted = "true" if before_seq is None else "p.seq < $before"

    def build(points: str) -> str:
        return (f"SELECT strftime(make_timestamp_ms(p.ts), '%Y-%m') AS month, k.partition, "
                f"count(*) FILTER (WHERE {counted}) AS points, "
                f"bit_xor(hash(p.series::VARCHAR, p.ts, p.seq, p.value)) FILTER (WHERE {counted}) AS digest, "
                f"max(p.seq) AS newest FROM {points} p JOIN keyed k ON k.series = p.series GROUP BY ALL ORDER BY 1, 2")

    params = {} if before_seq is None else {"before": before_seq}
    return select_visible(engine, 0, MAX_TIMESTAMP_MS, "series IN (SELECT series FROM keyed)", params, build,
                          with_seq=True, tables={"keyed": keyed}, snapshot=snapshot).read_all()
