"""RenewingDatabase: an in-memory DuckDB database of a worker's (the query engine's, the SQL sandbox's, the
flusher's), replaced by a fresh one once its buffer pool holds too many dead entries.

Why: DuckDB (2.0.1, measured) leaves an entry in its buffer pool's eviction queue whenever an operator of a query
(a window's sort, a hash aggregate or join) releases a block, and purges dead entries only in part: a loop of window
queries left 112 per query and levelled off near 180,000 (~30 MB of malloc, none of it shown by duckdb_memory()).
Beside the soak (bench/soak, issue 14 §6), heaptrack attached to a worker for 5 minutes found DuckDB's block
handles to be its largest growing allocation: 139,536 made, all still allocated at the peak. A fresh instance
starts empty. Statements already running keep the old instance through their cursors (dropping the connection
object does not close them), and it is freed whole when the last of them closes.

Invariant: every cursor comes from an instance set up by the same `open`; a renewal costs only what the old
instance had cached (Parquet footers are read again).
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

import duckdb

log = logging.getLogger(__name__)

DEAD_ENTRIES_LIMIT = 50_000  # ~17 MB of malloc: beside the soak a worker held ~0.35 kB more per dead entry
CHECK_EVERY_CURSORS = 256  # a check scans duckdb_eviction_queues(): ~0.3 ms on a busy 2-core VM


def dead_entries(connection: duckdb.DuckDBPyConnection) -> int:
    """Dead entries in the buffer pool's eviction queues; 0 from a DuckDB without duckdb_eviction_queues()
    (which then is never renewed)."""
    try:
        dead, = connection.execute("SELECT sum(dead_nodes) FROM duckdb_eviction_queues()").fetchone()
    except duckdb.CatalogException:
        return 0
    return int(dead or 0)


class RenewingDatabase:
    """Thread-safe: cursor() may be called from any thread. The thread whose cursor falls due checks the dead
    entries and opens the fresh instance outside the lock: opening a locked-down sandbox instance took ~28 ms,
    and the worker's other statements would have waited that long for their cursors."""

    def __init__(self, open_database: Callable[[], duckdb.DuckDBPyConnection]):
        self._open = open_database
        self._lock = threading.Lock()
        self.connection = open_database()
        self.renewals = 0
        self._cursors = 0
        self._checking = False

    def cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            self._cursors += 1
            due = self._cursors % CHECK_EVERY_CURSORS == 0 and not self._checking
            self._checking = self._checking or due
            current = self.connection
            cursor = current.cursor()
        if due:
            try:
                self._renew_if_worn(current)
            finally:
                with self._lock:
                    self._checking = False
        return cursor

    def _renew_if_worn(self, current: duckdb.DuckDBPyConnection) -> None:
        dead = dead_entries(current)
        if dead > DEAD_ENTRIES_LIMIT:
            fresh = self._open()
            with self._lock:
                self.connection = fresh
                self.renewals += 1
            log.debug("a fresh DuckDB database replaced one holding %d dead buffer entries", dead)

    def close(self) -> None:
        self.connection.close()
