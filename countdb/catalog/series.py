"""Reading the series index: every flushed series with its tags and time extent (publish() extends it).

Invariant: extents only grow, so [first_ts, last_ts] bounds every stored point of a series.
"""

from __future__ import annotations

import sqlite3


def read_series(connection: sqlite3.Connection) -> list[tuple[str, str, str, int, int]]:
    """(key, name, tags JSON, first_ts, last_ts) of every series, ordered by key."""
    return connection.execute("SELECT key, name, tags, first_ts, last_ts FROM series ORDER BY key").fetchall()
