"""PreparedStatements: the Flight process's open prepared statements, by opaque handle: each one's SQL and
its bound parameter row.

Invariant: the store is bounded: at most `max_count` statements (creating one more evicts the least recently
used), and a statement unused for `ttl_seconds` is gone; so a client that never closes its statements can
not exhaust memory. Safe across the Flight server's threads (one lock around the dict).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from countdb.errors import InvalidInput


@dataclass
class Prepared:
    sql: str
    params: list | None = None
    used_at: float = field(default=0.0)


class PreparedStatements:
    def __init__(self, max_count: int, ttl_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.max_count = max_count
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._open: OrderedDict[bytes, Prepared] = OrderedDict()  # least recently used first

    def create(self, sql: str) -> bytes:
        """A new handle for `sql` (no parameters bound yet)."""
        handle = secrets.token_bytes(16)
        with self._lock:
            self._expire()
            while len(self._open) >= self.max_count:
                self._open.popitem(last=False)
            self._open[handle] = Prepared(sql, used_at=self._clock())
        return handle

    def bind(self, handle: bytes, params: list) -> None:
        """Bind one row of parameters to the statement, replacing any bound before."""
        with self._lock:
            self._touch(handle).params = params

    def get(self, handle: bytes) -> tuple[str, list | None]:
        """(SQL, bound parameters) of an open statement; InvalidInput if it is closed, expired or unknown."""
        with self._lock:
            prepared = self._touch(handle)
            return prepared.sql, prepared.params

    def close(self, handle: bytes) -> None:
        with self._lock:
            self._open.pop(handle, None)

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._open)

    def _touch(self, handle: bytes) -> Prepared:
        self._expire()
        prepared = self._open.get(handle)
        if prepared is None:
            raise InvalidInput("unknown, closed or expired prepared statement handle; prepare the statement again",
                               field="prepared_statement_handle")
        prepared.used_at = self._clock()
        self._open.move_to_end(handle)
        return prepared

    def _expire(self) -> None:
        deadline = self._clock() - self.ttl_seconds
        while self._open and next(iter(self._open.values())).used_at < deadline:
            self._open.popitem(last=False)
