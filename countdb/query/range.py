"""Range and aggregate queries over one series: bounds inclusive, last write wins, unflushed included."""

from __future__ import annotations

from countdb.errors import InvalidInput
from countdb.query.engine import QueryEngine, Snapshot
from countdb.query.visible import used_params, visible_points

AGGREGATIONS = {
    "sum": "sum(value)",
    "mean": "avg(value)",
    "avg": "avg(value)",
    "min": "min(value)",
    "max": "max(value)",
    "count": "count(*)",
}

_WHERE = "series = $series AND ts BETWEEN $start AND $end"


def check_bounds(start_ms: int, end_ms: int) -> None:
    if start_ms > end_ms:
        raise InvalidInput(f"start ({start_ms}) is after end ({end_ms})", field="start")


def query_range(engine: QueryEngine, series: str, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
    """Every visible point of `series` with start_ms <= ts <= end_ms, in time order."""
    return _over_range(engine, series, start_ms, end_ms, "ts, value", " ORDER BY ts")


def query_aggregate(engine: QueryEngine, series: str, start_ms: int, end_ms: int, aggregation: str) -> float | int | None:
    """One aggregate over the range: `count` of no points is 0, the others are None."""
    expression = AGGREGATIONS.get(aggregation)
    if expression is None:
        raise InvalidInput(f"aggregation: {aggregation!r} is not one of {', '.join(AGGREGATIONS)}",
                           field="aggregation")
    return _over_range(engine, series, start_ms, end_ms, expression)[0][0]


def _over_range(engine: QueryEngine, series: str, start_ms: int, end_ms: int, select: str, tail: str = "") -> list:
    """SELECT `select` over the visible points of one series in [start_ms, end_ms] (a fresh snapshot)."""
    check_bounds(start_ms, end_ms)

    def run(snapshot: Snapshot) -> list:
        cursor = engine.cursor()
        try:
            params = {"series": series, "start": start_ms, "end": end_ms}
            relation = visible_points(cursor, snapshot.scope(start_ms, end_ms, series), _WHERE, params)
            sql = f"SELECT {select} FROM {relation}{tail}"
            return cursor.execute(sql, used_params(sql, params)).fetchall()
        finally:
            cursor.close()

    return engine.run_query(run)
