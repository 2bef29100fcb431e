"""The damage register (table damaged_files): files Count found unreadable or wrong and set aside.

Invariant: a block is in `blocks` or in `damaged_files`, never both; moving it is one transaction
(the caller's), so every worker stops reading it at the same catalog version.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from countdb.catalog.blocks import BlockRecord


@dataclass(frozen=True)
class DamagedFile:
    path: str  # where it was, relative to DATA_DIR
    kind: str  # "points" | "shadow" | "wal"
    problem: str
    detail: str
    quarantined_as: str | None = None
    rows: int | None = None
    min_ts: int | None = None
    max_ts: int | None = None
    detected_ms: int = 0


_COLUMNS = "path, kind, problem, detail, quarantined_as, rows, min_ts, max_ts, detected_ms"


def block_row(connection: sqlite3.Connection, path: str) -> BlockRecord | None:
    """The published block at `path`, or None when the catalog no longer lists it."""
    row = connection.execute("SELECT path, kind, month, min_ts, max_ts, min_seq, max_seq, rows, bytes, sha256 "
                             "FROM blocks WHERE path = ?", (path,)).fetchone()
    return BlockRecord(*row) if row else None


def record_damage(connection: sqlite3.Connection, damaged: DamagedFile) -> None:
    """Register `damaged` and unpublish the block at its path (if any). Call inside the caller's transaction."""
    detected_ms = damaged.detected_ms or int(time.time() * 1000)
    connection.execute("DELETE FROM blocks WHERE path = ?", (damaged.path,))
    connection.execute(
        f"INSERT OR REPLACE INTO damaged_files ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
        (damaged.path, damaged.kind, damaged.problem, damaged.detail, damaged.quarantined_as, damaged.rows,
         damaged.min_ts, damaged.max_ts, detected_ms))


def damaged_files(connection: sqlite3.Connection, limit: int | None = None) -> list[DamagedFile]:
    """Registered damage, newest first."""
    sql = f"SELECT {_COLUMNS} FROM damaged_files ORDER BY detected_ms DESC, path"
    rows = connection.execute(sql + " LIMIT ?", (limit,)) if limit is not None else connection.execute(sql)
    return [DamagedFile(*row) for row in rows]


def damaged_file_count(connection: sqlite3.Connection) -> int:
    """How many files are registered as damaged (for /health and /metrics)."""
    return connection.execute("SELECT count(*) FROM damaged_files").fetchone()[0]


def forget_damage(connection: sqlite3.Connection) -> int:
    """Empty the register once an operator has dealt with it; returns rows removed. Call inside a transaction."""
    return connection.execute("DELETE FROM damaged_files").rowcount
