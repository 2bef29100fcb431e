"""SeriesIndex: the catalog's series table as an Arrow table, re-read only when the catalog changed, plus the
series of points not yet flushed, so that a series is discoverable as soon as one point is acknowledged.

Invariant: read after the snapshot whose unflushed points it is combined with, so a series flushed in
between is in the catalog's table and one not yet flushed is in the snapshot: never in neither.
"""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
import pyarrow as pa

from countdb.catalog.db import connect, data_version
from countdb.catalog.series import read_series
from countdb.model import parse_series_key

TAGS_TYPE = pa.map_(pa.string(), pa.string())
SERIES_SCHEMA = pa.schema([("series", pa.string()), ("name", pa.string()), ("tags", TAGS_TYPE),
                           ("first_ts", pa.int64()), ("last_ts", pa.int64())])


class SeriesIndex:
    """Thread-safe. Opens its own catalog connection on first use."""

    def __init__(self, catalog_path: Path):
        self._catalog_path = catalog_path
        self._connection = None
        self._lock = threading.Lock()
        self._version = -1
        self._stored = SERIES_SCHEMA.empty_table()
        self._unflushed_source: pa.Table | None = None
        self._unflushed = SERIES_SCHEMA.empty_table()

    def stored(self) -> pa.Table:
        """Every flushed series (SERIES_SCHEMA), as of now."""
        with self._lock:
            if self._connection is None:
                self._connection = connect(self._catalog_path)
            version = data_version(self._connection)
            if version != self._version:
                rows = read_series(self._connection)
                self._stored = _table([r[0] for r in rows], [r[1] for r in rows],
                                      [orjson.loads(r[2]) for r in rows], [r[3] for r in rows], [r[4] for r in rows])
                self._version = version
            return self._stored

    def unflushed(self, points: pa.Table) -> pa.Table:
        """The series of `points` (a snapshot's unflushed table) with their extents (SERIES_SCHEMA); remembered
        for as long as the WAL answers the same table."""
        with self._lock:
            if points is not self._unflushed_source:
                self._unflushed = series_of(points)
                self._unflushed_source = points
            return self._unflushed

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def _table(keys: list[str], names: list[str], tags: list[dict], first: list[int], last: list[int]) -> pa.Table:
    return pa.table([pa.array(keys, pa.string()), pa.array(names, pa.string()),
                     pa.array([list(t.items()) for t in tags], TAGS_TYPE),
                     pa.array(first, pa.int64()), pa.array(last, pa.int64())], schema=SERIES_SCHEMA)


def series_of(points: pa.Table) -> pa.Table:
    """The series of a table of points (series, ts, …) with their extents (SERIES_SCHEMA)."""
    extents = points.group_by("series").aggregate([("ts", "min"), ("ts", "max")])
    keys = extents["series"].to_pylist()
    parsed = [parse_series_key(key) for key in keys]
    return _table(keys, [p[0] for p in parsed], [p[1] for p in parsed], extents["ts_min"].to_pylist(),
                  extents["ts_max"].to_pylist())
