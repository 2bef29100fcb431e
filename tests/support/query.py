"""Reading a series through the query path in-process, as plain (timestamp, value) tuples."""

from __future__ import annotations

from countdb.query.engine import QueryEngine
from countdb.query.range import query_range


def series_points(engine: QueryEngine, series: str, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
    """Every visible point of `series` in [start_ms, end_ms], in time order."""
    table = query_range(engine, series, start_ms, end_ms).read_all()
    return list(zip(table["timestamp"].to_pylist(), table["value"].to_pylist()))
