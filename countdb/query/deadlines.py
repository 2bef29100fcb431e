"""Deadlines: interrupts a query's DuckDB cursor when QUERY_TIMEOUT_SECONDS have passed since it started.

Invariant: a watched cursor is interrupted only before its watch is cancelled (cancel and the interrupt take
the same lock), so a cursor closed after cancel() is never touched. Past its deadline it is interrupted again
every REPEAT_SECONDS: DuckDB forgets an interrupt that lands while no statement runs (planning in Python, a
client reading slowly). One thread per engine serves every watch: a threading.Timer per query would start a
thread each time, ~0.1 ms of a one-hour range query's ~2 ms budget (issue 4).
"""

from __future__ import annotations

import threading
import time

import duckdb

from countdb.errors import QueryTimeout

REPEAT_SECONDS = 0.05


class Watch:
    """One query's deadline: `expired` once its cursor was interrupted; cancel() when the query is over."""

    def __init__(self, deadlines: "Deadlines", cursor: duckdb.DuckDBPyConnection, due: float):
        self.deadlines, self.cursor, self.due = deadlines, cursor, due
        self.expired = False

    def cancel(self) -> None:
        with self.deadlines.changed:
            self.deadlines.running.discard(self)

    def timeout(self) -> QueryTimeout:
        return QueryTimeout(f"the query ran past the {self.deadlines.timeout_seconds:g} s limit "
                            "(QUERY_TIMEOUT_SECONDS) and was stopped")


class Deadlines:
    """The running queries of one engine: a handful (one per request thread, plus streams being sent), so the
    thread finds the next deadline by looking at each."""

    def __init__(self, timeout_seconds: float):
        self.timeout_seconds = timeout_seconds
        self.changed = threading.Condition()
        self.running: set[Watch] = set()
        self._thread: threading.Thread | None = None

    def watch(self, cursor: duckdb.DuckDBPyConnection) -> Watch:
        """Start the clock for `cursor`'s query."""
        watch = Watch(self, cursor, time.monotonic() + self.timeout_seconds)
        with self.changed:
            if self._thread is None:  # started here, not in __init__: gunicorn forks workers after imports
                self._thread = threading.Thread(target=self._run, name="query-deadlines", daemon=True)
                self._thread.start()
            if all(watch.due < other.due for other in self.running):  # else the thread wakes before this is due
                self.changed.notify()
            self.running.add(watch)
        return watch

    def _run(self) -> None:
        with self.changed:
            while True:
                now = time.monotonic()
                for watch in self.running:
                    if watch.due <= now:
                        watch.expired = True
                        watch.cursor.interrupt()
                        watch.due = now + REPEAT_SECONDS
                self.changed.wait(min((watch.due for watch in self.running), default=now + 3600) - now)
