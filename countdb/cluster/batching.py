"""CopyBatcher: at most one /cluster/write in flight from this process to each peer, carrying every copy that
queued for that peer while the previous one was on the wire (group commit across a process's request threads).

Invariant: each copy keeps its own write stamp (the message carries `seq` per row and the peer appends one WAL
record per stamp) and each caller learns the outcome of the message that carried its rows, or, when the peer did
not answer, of that failed message. Nothing waits for a timer: a copy for an idle peer leaves at once.
"""

from __future__ import annotations

import threading
from concurrent.futures import Executor, Future
from typing import Callable

import pyarrow as pa

from countdb.cluster.peers import PeerError
from countdb.cluster.wire import encode_stream

MESSAGE_ROWS = 100_000
"""A message takes queued copies until it holds this many rows (a larger single copy goes alone)."""


class CopyBatcher:
    def __init__(self, send: Callable[[int, bytes], object], pool: Executor):
        """`send(node, body)` posts an encoded message to `node` (raises on failure); it runs on `pool`."""
        self._send = send
        self._pool = pool
        self._lock = threading.Lock()
        self._queued: dict[int, list[tuple[pa.Table, Future]]] = {}
        self._sending: set[int] = set()

    def submit(self, node: int, stamped_rows: pa.Table) -> Future:
        """Queue `stamped_rows` (series, ts, value, seq) for `node`; the Future ends as the message carrying
        them does: send()'s result, or its exception."""
        future: Future = Future()
        with self._lock:
            self._queued.setdefault(node, []).append((stamped_rows, future))
            if node in self._sending:
                return future
            self._sending.add(node)
        self._pool.submit(self._drain, node)
        return future

    def _drain(self, node: int) -> None:
        while True:
            with self._lock:
                batch = self._take(node)
                if not batch:
                    self._sending.discard(node)
                    return
            try:
                message = encode_stream(pa.concat_tables([rows for rows, _ in batch]))
                outcome = self._send(node, message)
            except Exception as error:  # NOTE: relayed to every caller, who decides (coordinator.acknowledged)
                if isinstance(error, PeerError) and error.status is None:
                    with self._lock:  # the peer did not answer: what queued behind fails now, not a timeout later
                        batch += self._queued.pop(node, [])
                for _, future in batch:
                    future.set_exception(error)
            else:
                for _, future in batch:
                    future.set_result(outcome)

    def _take(self, node: int) -> list[tuple[pa.Table, Future]]:
        queued = self._queued.get(node, [])
        taken, rows = 0, 0
        while taken < len(queued) and (taken == 0 or rows + queued[taken][0].num_rows <= MESSAGE_ROWS):
            rows += queued[taken][0].num_rows
            taken += 1
        self._queued[node] = queued[taken:]
        return queued[:taken]
