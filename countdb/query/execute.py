"""Running one SELECT over the visible points of a time range, answered as a stream of Arrow record batches.

Invariant: every query over points goes through visible_points() on one fresh snapshot (bounds inclusive,
last write wins, unflushed points included, each point once), runs under the engine's deadline (QueryTimeout
past QUERY_TIMEOUT_SECONDS), and its cursor is closed when the stream is drained or dropped.
"""

from __future__ import annotations

from typing import Callable

import duckdb
import pyarrow as pa

from countdb.errors import InvalidInput
from countdb.query.deadlines import Watch
from countdb.model import RemotePoints
from countdb.query.engine import QueryEngine, Snapshot
from countdb.query.visible import used_params, visible_points

BATCH_ROWS = 64 * 1024


def check_bounds(start_ms: int, end_ms: int) -> None:
    if start_ms > end_ms:
        raise InvalidInput(f"start ({start_ms}) is after end ({end_ms})", field="start")


def select_visible(engine: QueryEngine, start_ms: int, end_ms: int, where: str, params: dict,
                   build: Callable[[str], str], *, series: str | None = None, snapshot: Snapshot | None = None,
                   tables: dict[str, pa.Table] | None = None, with_seq: bool = False,
                   remote: RemotePoints | None = None) -> pa.RecordBatchReader:
    """Run build(<visible relation>) — SQL using the relation of points (series, ts, value) in
    [start_ms, end_ms] that satisfy `where` — and stream its rows. `series` narrows the unflushed points
    before SQL sees them; `tables` are registered by name for `where` and `build` to use; `with_seq` adds each
    point's write stamp `seq` to the relation; `remote` are other nodes' points to merge (QueryEngine.snapshot)."""
    check_bounds(start_ms, end_ms)
    params = {**params, "start": start_ms, "end": end_ms}
    where = f"ts BETWEEN $start AND $end AND ({where})"

    def start(current: Snapshot) -> tuple[pa.RecordBatchReader, list[pa.RecordBatch], duckdb.DuckDBPyConnection,
                                          Watch]:
        """Plan the query and read its first batch, where a damaged block file shows up."""
        cursor = engine.cursor()
        watch = engine.deadlines.watch(cursor)
        try:
            for name, table in (tables or {}).items():
                cursor.register(name, table)
            run_params = dict(params)
            sql = build(visible_points(cursor, current.scope(start_ms, end_ms, series), where, run_params, with_seq))
            reader = cursor.sql(sql, params=used_params(sql, run_params)).to_arrow_reader(BATCH_ROWS)
            first = next(iter(reader), None)
            return reader, [] if first is None else [first], cursor, watch
        except BaseException:
            watch.cancel()
            cursor.close()
            if watch.expired:
                raise watch.timeout() from None
            raise

    reader, first, cursor, watch = start(snapshot) if snapshot is not None else engine.run_query(start, remote)
    return pa.RecordBatchReader.from_batches(reader.schema, _closing(first, reader, cursor, watch))


def _closing(first: list[pa.RecordBatch], reader: pa.RecordBatchReader, cursor, watch: Watch):
    """The batches; past the time limit, QueryTimeout (DuckDB's interrupt surfaces as an Arrow read error)."""
    try:
        yield from first
        yield from reader
    except Exception:
        if watch.expired:
            raise watch.timeout() from None
        raise
    finally:
        watch.cancel()
        cursor.close()
