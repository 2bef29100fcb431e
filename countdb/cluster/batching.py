"""CopyBatcher: copies for a peer that arrive while a message to it has just left ride together in the next
message (group commit across a process's request threads), so concurrent client writes share one /cluster/write.

Invariant: each copy keeps its own write stamp (the message carries `seq` per row and the peer appends one WAL
record per stamp) and learns the outcome of the message that carried it. A copy waits behind a message only while
that message is younger than QUEUE_BEHIND_SECONDS (a slow peer gets parallel messages, as without batching), and
no copy waits longer than its timeout from the moment it was submitted. Nothing waits for a timer.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Callable

import pyarrow as pa

from countdb.cluster.peers import PeerError
from countdb.cluster.wire import encode_stream

MESSAGE_ROWS = 100_000
"""A message takes queued copies until it holds this many rows (a larger single copy goes alone)."""
QUEUE_BEHIND_SECONDS = 0.05
"""A copy queues behind the newest message to its peer only while that message is younger than this."""


@dataclass
class _Copy:
    rows: pa.Table
    deadline: float
    future: Future = field(default_factory=Future)


@dataclass
class _Peer:
    queued: list[_Copy] = field(default_factory=list)
    senders: int = 0
    last_sent: float = 0.0


class CopyBatcher:
    def __init__(self, send: Callable[[int, bytes, float], object], pool: Executor, timeout_seconds: float,
                 address: Callable[[int], str]):
        """`send(node, body, timeout_seconds)` posts an encoded message to `node` (raises on failure); it runs on
        `pool`. A copy fails with PeerError once `timeout_seconds` passed since it was submitted."""
        self._send = send
        self._pool = pool
        self._timeout_seconds = timeout_seconds
        self._address = address
        self._lock = threading.Lock()
        self._peers: dict[int, _Peer] = {}

    def submit(self, node: int, stamped_rows: pa.Table) -> Future:
        """Queue `stamped_rows` (series, ts, value, seq) for `node`; the Future ends as the message carrying
        them does: send()'s result, or its exception."""
        now = time.monotonic()
        copy = _Copy(stamped_rows, now + self._timeout_seconds)
        with self._lock:
            peer = self._peers.setdefault(node, _Peer())
            peer.queued.append(copy)
            if peer.senders and now - peer.last_sent < QUEUE_BEHIND_SECONDS:
                return copy.future
            peer.senders += 1
        self._pool.submit(self._drain, node)
        return copy.future

    def _drain(self, node: int) -> None:
        while True:
            with self._lock:
                peer = self._peers[node]
                batch = _take(peer.queued, MESSAGE_ROWS)
                if not batch:
                    peer.senders -= 1
                    return
                peer.last_sent = time.monotonic()
            self._deliver(node, batch)

    def _deliver(self, node: int, batch: list[_Copy]) -> None:
        seconds = min(copy.deadline for copy in batch) - time.monotonic()
        try:
            if seconds <= 0:
                raise PeerError(node, self._address(node), f"no answer within {self._timeout_seconds:g} s")
            outcome = self._send(node, encode_stream(pa.concat_tables([copy.rows for copy in batch])), seconds)
        except Exception as error:  # NOTE: relayed to every caller, who decides (coordinator.acknowledged)
            if isinstance(error, PeerError) and error.status is None:
                with self._lock:  # the peer did not answer: what queued behind fails now, not a timeout later
                    batch += _take(self._peers[node].queued, rows_limit=None)
            for copy in batch:
                copy.future.set_exception(error)
        else:
            for copy in batch:
                copy.future.set_result(outcome)


def _take(queued: list[_Copy], rows_limit: int | None) -> list[_Copy]:
    """Remove and return the oldest copies, up to `rows_limit` rows (at least one copy; all with None)."""
    taken, rows = 0, 0
    while taken < len(queued):
        rows += queued[taken].rows.num_rows
        if taken and rows_limit is not None and rows > rows_limit:
            break
        taken += 1
    batch = queued[:taken]
    del queued[:taken]
    return batch
