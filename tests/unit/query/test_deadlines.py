"""Deadlines against a real DuckDB: a query past its time limit is interrupted (and again, if DuckDB forgot the
first interrupt); a cancelled watch never touches its cursor."""

from __future__ import annotations

import time

import duckdb
import pytest

from countdb.errors import QueryTimeout
from countdb.query.deadlines import Deadlines

ENDLESS = "SELECT sum(i * i) FROM range(1000000000000) t(i)"


def test_a_query_past_its_deadline_is_interrupted_and_says_why():
    cursor = duckdb.connect().cursor()
    watch = Deadlines(0.2).watch(cursor)
    started = time.monotonic()
    with pytest.raises(duckdb.InterruptException):
        cursor.sql(ENDLESS).fetchall()
    assert watch.expired and time.monotonic() - started < 30
    watch.cancel()
    assert isinstance(watch.timeout(), QueryTimeout) and "0.2 s limit (QUERY_TIMEOUT_SECONDS)" in str(watch.timeout())


def test_a_deadline_that_passes_before_the_statement_starts_still_stops_it():
    cursor = duckdb.connect().cursor()
    watch = Deadlines(0.05).watch(cursor)
    time.sleep(0.3)  # "planning": DuckDB drops an interrupt that arrives while no statement runs
    with pytest.raises(duckdb.InterruptException):
        cursor.sql(ENDLESS).fetchall()
    assert watch.expired
    watch.cancel()


def test_a_cancelled_watch_leaves_its_cursor_alone_and_others_keep_their_own_deadlines():
    deadlines = Deadlines(0.3)
    done, slow = duckdb.connect().cursor(), duckdb.connect().cursor()
    finished = deadlines.watch(done)
    running = deadlines.watch(slow)
    assert done.sql("SELECT 42").fetchall() == [(42,)]
    finished.cancel()
    with pytest.raises(duckdb.InterruptException):
        slow.sql(ENDLESS).fetchall()
    running.cancel()
    time.sleep(0.4)
    assert done.sql("SELECT sum(i) FROM range(30000000) t(i)").fetchall() == [(449999985000000,)]
    assert not finished.expired and running.expired
