"""Compaction's catalog records: the atomic swap of blocks, retired block files awaiting deletion, and
which tombstones each compacted block already has applied.

Invariant: new blocks become visible and the blocks they replace stop being visible in one transaction;
a replaced block's file stays on disk (listed in retired_blocks) until no query can still be reading it.
"""

from __future__ import annotations

import sqlite3

from countdb.catalog.blocks import BlockRecord, insert_blocks
from countdb.catalog.db import transaction
from countdb.errors import CatalogError


def swap_blocks(connection: sqlite3.Connection, replaced: list[str], written: list[BlockRecord],
                tombstone_mark: int, now_ms: int) -> None:
    """Unpublish `replaced` (recorded as retired at `now_ms`) and publish `written` (marked as having every
    tombstone up to `tombstone_mark` applied), atomically. Raises CatalogError, changing nothing, if a
    replaced block is no longer published."""
    with transaction(connection):
        for path in replaced:
            if connection.execute("DELETE FROM blocks WHERE path = ?", (path,)).rowcount != 1:
                raise CatalogError(f"compaction input {path} is no longer published", path=path)
        connection.executemany("DELETE FROM compacted_blocks WHERE path = ?", [(p,) for p in replaced])
        connection.executemany("INSERT INTO retired_blocks VALUES (?, ?)", [(p, now_ms) for p in replaced])
        insert_blocks(connection, written, now_ms)
        connection.executemany("INSERT INTO compacted_blocks VALUES (?, ?)",
                               [(b.path, tombstone_mark) for b in written if b.kind == "points"])


def tombstone_marks(connection: sqlite3.Connection) -> dict[str, int]:
    """Compacted block path -> id of the newest tombstone applied to it (flushed blocks are absent: 0)."""
    return dict(connection.execute("SELECT path, tombstone_mark FROM compacted_blocks"))


def retired_before(connection: sqlite3.Connection, before_ms: int) -> list[str]:
    """Retired block files retired before `before_ms`: no query can still be reading them."""
    return [row[0] for row in connection.execute("SELECT path FROM retired_blocks WHERE retired_ms < ?", (before_ms,))]


def forget_retired_blocks(connection: sqlite3.Connection, paths: list[str]) -> None:
    """Drop retired-block rows whose files are deleted."""
    if paths:
        with transaction(connection):
            connection.executemany("DELETE FROM retired_blocks WHERE path = ?", [(p,) for p in paths])


def block_files_in_use(connection: sqlite3.Connection) -> set[str]:
    """Every block file the catalog still accounts for: published, or retired and awaiting deletion."""
    rows = connection.execute("SELECT path FROM blocks UNION ALL SELECT path FROM retired_blocks")
    return {row[0] for row in rows}
