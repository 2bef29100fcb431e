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
    (backup, verify). Raises CatalogError when there is no catalog at `path`."""
    try:
        return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                               isolation_level=None, check_same_thread=False)
    except sqlite3.Error as error:
        raise CatalogError(f"cannot open catalog {path}: {error}", path=str(path)) from None


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
        connection.execute("ROLLBACK")
        raise CatalogError(f"catalog write failed: {error}") from None
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def data_version(connection: sqlite3.Connection) -> int:
    """Changes whenever another connection commits: a cheap 'has the catalog moved?' check."""
    return connection.execute("PRAGMA data_version").fetchone()[0]
