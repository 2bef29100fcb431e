"""Opening the catalog: SQLite in WAL mode, a busy timeout, short BEGIN IMMEDIATE write transactions.

Invariant: every write goes through `transaction()`, so several worker processes never interleave half-writes.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from countdb.errors import CatalogError

BUSY_TIMEOUT_MS = 30_000


def connect(path: Path) -> sqlite3.Connection:
    """A connection usable from any thread of this process (callers serialise their use of it)."""
    try:
        connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                     check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA foreign_keys=ON")
        return connection
    except sqlite3.Error as error:
        raise CatalogError(f"cannot open catalog {path}: {error}", path=str(path)) from None


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write, for tools that must leave a data directory as they found it
    (backup, verify), even on a read-only mount. Raises CatalogError when it can't be read."""
    uri = path.resolve().as_uri()
    # NOTE: a read-only WAL-mode database needs its -shm file. A running node has one; on a read-only mount
    # of a stopped node there is none and no writer either, so the file is read as immutable.
    modes = ["mode=ro"] if path.with_name(path.name + "-wal").exists() else ["mode=ro", "immutable=1"]
    for mode in modes:
        try:
            connection = sqlite3.connect(f"{uri}?{mode}", uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                                         isolation_level=None, check_same_thread=False)
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return connection
        except sqlite3.Error as error:
            failure = error
    raise CatalogError(f"cannot open catalog {path}: {failure}", path=str(path))


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception (re-raised as CatalogError for SQLite's)."""
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as error:
        raise CatalogError(f"catalog is busy: {error}") from None
    try:
        yield connection
        connection.execute("COMMIT")
    except sqlite3.Error as error:
        _rollback(connection)
        raise CatalogError(f"catalog write failed: {error}") from None
    except BaseException:
        _rollback(connection)
        raise


def _rollback(connection: sqlite3.Connection) -> None:
    """ROLLBACK unless SQLite already rolled back by itself (it does on SQLITE_FULL, a full disk)."""
    if connection.in_transaction:
        connection.execute("ROLLBACK")


def data_version(connection: sqlite3.Connection) -> int:
    """Changes whenever another connection commits: a cheap 'has the catalog moved?' check."""
    return connection.execute("PRAGMA data_version").fetchone()[0]
