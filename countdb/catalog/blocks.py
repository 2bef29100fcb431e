"""The block registry: which Parquet files are published, and which WAL segments they replaced.

Invariant: a block becomes visible and its WAL segments become retired in the same transaction, so a
reader sees each point either in a live segment or in a block, never both and never neither.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from countdb.catalog.db import transaction
from countdb.catalog.tombstones import Tombstone, read_tombstones


@dataclass(frozen=True)
class BlockRecord:
    path: str  # relative to DATA_DIR
    kind: str  # "points" | "shadow"
    month: str
    min_ts: int
    max_ts: int
    min_seq: int
    max_seq: int
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class SeriesExtent:
    key: str
    name: str
    tags_json: str
    first_ts: int
    last_ts: int


@dataclass(frozen=True)
class CatalogSnapshot:
    """What one read transaction saw: the published blocks, the retired WAL segments and the tombstones."""

    blocks: tuple[BlockRecord, ...]
    retired_segments: frozenset[str]
    tombstones: tuple[Tombstone, ...] = ()


_COLUMNS = "path, kind, month, min_ts, max_ts, min_seq, max_seq, rows, bytes, sha256"


def publish(connection: sqlite3.Connection, blocks: list[BlockRecord], retired_segments: list[str],
            series: list[SeriesExtent]) -> None:
    """Make blocks visible, retire the segments they came from and extend the series index, atomically."""
    now_ms = int(time.time() * 1000)
    with transaction(connection):
        insert_blocks(connection, blocks, now_ms)
        connection.executemany("INSERT OR IGNORE INTO retired_segments VALUES (?, ?)",
                               [(path, now_ms) for path in retired_segments])
        connection.executemany(
            "INSERT INTO series (key, name, tags, first_ts, last_ts) VALUES (?,?,?,?,?) "
            "ON CONFLICT(key) DO UPDATE SET first_ts = min(first_ts, excluded.first_ts), "
            "last_ts = max(last_ts, excluded.last_ts)",
            [(s.key, s.name, s.tags_json, s.first_ts, s.last_ts) for s in series],
        )


def insert_blocks(connection: sqlite3.Connection, blocks: list[BlockRecord], now_ms: int) -> None:
    """Add block rows; the caller holds the write transaction."""
    connection.executemany(
        f"INSERT INTO blocks ({_COLUMNS}, created_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        [(b.path, b.kind, b.month, b.min_ts, b.max_ts, b.min_seq, b.max_seq, b.rows, b.bytes, b.sha256, now_ms)
         for b in blocks],
    )


def snapshot(connection: sqlite3.Connection) -> CatalogSnapshot:
    """Blocks, retired segments and tombstones as of one consistent read."""
    connection.execute("BEGIN")
    try:
        blocks = tuple(BlockRecord(*row) for row in connection.execute(f"SELECT {_COLUMNS} FROM blocks ORDER BY id"))
        retired = frozenset(row[0] for row in connection.execute("SELECT path FROM retired_segments"))
        tombstones = read_tombstones(connection)
    finally:
        connection.execute("COMMIT")
    return CatalogSnapshot(blocks, retired, tombstones)


def forget_retired(connection: sqlite3.Connection, paths: list[str]) -> None:
    """Drop retired-segment rows whose files are deleted."""
    if paths:
        with transaction(connection):
            connection.executemany("DELETE FROM retired_segments WHERE path = ?", [(p,) for p in paths])


def series_extents(connection: sqlite3.Connection) -> list[SeriesExtent]:
    """Every series in the index, with its tags as JSON text and its time extent in ms."""
    rows = connection.execute("SELECT key, name, tags, first_ts, last_ts FROM series ORDER BY key")
    return [SeriesExtent(*row) for row in rows]


def totals_by_month(connection: sqlite3.Connection) -> list[tuple[str, str, int, int, int]]:
    """(month, kind, blocks, bytes, rows) of the published blocks, per UTC month and kind."""
    return connection.execute("SELECT month, kind, count(*), sum(bytes), sum(rows) FROM blocks GROUP BY month, kind "
                              "ORDER BY month, kind").fetchall()
