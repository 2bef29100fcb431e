"""RenewingDatabase: a query database whose buffer pool keeps dead entries (each operator block a window query
releases leaves one) is replaced by a fresh one, so a worker's memory stays bounded; a statement that holds a
cursor of the old instance finishes on it."""

from __future__ import annotations

import threading

import duckdb
import numpy as np
import pyarrow as pa

from countdb.storage import renewing_duckdb
from countdb.storage.renewing_duckdb import RenewingDatabase, dead_entries

POINTS = pa.table({"ts": np.arange(20_000, dtype=np.int64), "seq": np.arange(20_000, dtype=np.int64) % 7})
WINDOW = "SELECT count(*) FROM (SELECT row_number() OVER (PARTITION BY ts // 3 ORDER BY seq DESC) AS r FROM points) " \
         "WHERE r = 1"


def _window_query(cursor: duckdb.DuckDBPyConnection) -> int:
    cursor.register("points", POINTS)
    try:
        return cursor.execute(WINDOW).fetchone()[0]
    finally:
        cursor.close()


def test_a_database_holding_too_many_dead_entries_is_replaced(monkeypatch):
    monkeypatch.setattr(renewing_duckdb, "CHECK_EVERY_CURSORS", 8)
    monkeypatch.setattr(renewing_duckdb, "DEAD_ENTRIES_LIMIT", 200)
    renewing = RenewingDatabase(lambda: duckdb.connect(config={"threads": 2}))
    first = renewing.connection
    held = renewing.cursor()  # a statement still running on the first instance
    most = 0
    for _ in range(200):
        assert _window_query(renewing.cursor()) == 6_667
        most = max(most, dead_entries(renewing.connection))
    assert renewing.renewals > 0 and renewing.connection is not first
    assert 0 < most < 2_000  # bounded: the limit plus what the queries between two checks leave
    assert held.execute("SELECT 42").fetchone() == (42,)
    held.close()
    renewing.close()


def test_without_renewal_dead_entries_pile_up():
    """What the renewal bounds: the same queries on one instance leave far more dead entries than the bound above."""
    connection = duckdb.connect(config={"threads": 2})
    for _ in range(200):
        _window_query(connection.cursor())
    assert dead_entries(connection) > 2_000
    connection.close()


def test_other_threads_get_cursors_while_a_fresh_instance_is_being_opened(monkeypatch):
    """The renewal's open runs outside the lock: a slow one (a locked-down sandbox instance took ~28 ms) holds up
    only the thread whose cursor fell due."""
    monkeypatch.setattr(renewing_duckdb, "CHECK_EVERY_CURSORS", 2)
    monkeypatch.setattr(renewing_duckdb, "dead_entries", lambda connection: renewing_duckdb.DEAD_ENTRIES_LIMIT + 1)
    opening, release = threading.Event(), threading.Event()

    def open_database() -> duckdb.DuckDBPyConnection:
        if renewing is not None:  # the renewal's open, not the first one
            opening.set()
            release.wait(10)
        return duckdb.connect()

    renewing = None
    renewing = RenewingDatabase(open_database)
    renewing.cursor().close()
    due = threading.Thread(target=lambda: renewing.cursor().close())
    due.start()
    assert opening.wait(10)
    others = []
    for _ in range(3):  # the 3rd cursor is due again, but a check is already under way: not a second open
        others.append(renewing.cursor())
    assert all(cursor.execute("SELECT 1").fetchone() == (1,) for cursor in others) and renewing.renewals == 0
    release.set()
    due.join(10)
    assert renewing.renewals == 1
    for cursor in others:
        cursor.close()
    renewing.close()
