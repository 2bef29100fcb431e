"""Tombstones: the catalog's record of deletes, read by every query snapshot.

Invariant: a tombstone hides exactly the points of its series in [start_ms, end_ms] written before it
(seq below its seq), stored or still in the WAL; a point written after the delete stays visible.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from countdb.catalog.db import transaction


@dataclass(frozen=True)
class Tombstone:
    id: int
    series: str
    start_ms: int  # inclusive
    end_ms: int  # inclusive
    seq: int  # wall-clock ns of the delete: points with a smaller seq are hidden

    def overlaps(self, min_ts: int, max_ts: int) -> bool:
        return self.start_ms <= max_ts and self.end_ms >= min_ts


COLUMNS = "id, series, start_ms, end_ms, seq"


def add_tombstone(connection: sqlite3.Connection, series: str, start_ms: int, end_ms: int, seq: int) -> Tombstone:
    """Record a delete; visible to every snapshot taken after this returns. The same delete (series, range and
    stamp) recorded before is returned as it is: replicas receive a delete more than once. Raises CatalogError."""
    with transaction(connection):
        known = connection.execute(f"SELECT {COLUMNS} FROM tombstones WHERE series = ? AND start_ms = ? AND "
                                   "end_ms = ? AND seq = ?", (series, start_ms, end_ms, seq)).fetchone()
        if known is not None:
            return Tombstone(*known)
        cursor = connection.execute(
            "INSERT INTO tombstones (series, start_ms, end_ms, seq, created_ms) VALUES (?,?,?,?,?)",
            (series, start_ms, end_ms, seq, int(time.time() * 1000)))
    return Tombstone(cursor.lastrowid, series, start_ms, end_ms, seq)


def read_tombstones(connection: sqlite3.Connection) -> tuple[Tombstone, ...]:
    """Every tombstone, oldest first (call inside the caller's read transaction for a consistent view)."""
    return tuple(Tombstone(*row) for row in connection.execute(f"SELECT {COLUMNS} FROM tombstones ORDER BY id"))


def drop_tombstones_before(connection: sqlite3.Connection, floor_ms: int) -> int:
    """Forget tombstones whose whole range is older than the retention floor (queries hide it anyway)."""
    with transaction(connection):
        return connection.execute("DELETE FROM tombstones WHERE end_ms < ?", (floor_ms,)).rowcount
