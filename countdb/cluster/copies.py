"""CopyQueues: a coordinator's copies of writes for one peer go in one request per round trip.

Why: every copy was a `/cluster/write` of its own, and a clustered 10-point write then cost its node and peers ~7 ms
of CPU against ~0.9 ms for the same write into an independent node: three HTTP requests in Python (the client's and
a copy to each other owner), each with its parsing, routing, signing and Arrow framing. While a copy request to a
peer is in flight, the copies that follow wait and then go together, each keeping its own write stamp (the peer
stores them with one WAL append, Writer.write_stamped). Under 24 connections of 10-point writes at a 3-node
cluster: 1.14-1.53x the writes/s, 2.01 -> 1.23-1.41 peer requests per write (docs/performance.md, *Copies for a
peer go together*).
A lone write is sent at once, as before: only writes that would have overlapped wait, for at most one round trip.

Invariant: each copy's Future resolves with the outcome of the one request that carried it (its answer, or the
PeerError all of that request's copies share), so the coordinator counts and hints each write exactly as before;
and a copy gets no more time in all than FORWARD_TIMEOUT_SECONDS from when it was made, waiting included: a request
carrying copies that waited is given what is left of the oldest one's time, and copies with none left fail
unsent (they are hinted as a timed-out copy was). Every copy's Future resolves, also when the process stops: copies
no thread will send any more fail, and the write's thread never waits for them.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import pyarrow as pa

from countdb.cluster.peers import PeerClient, PeerError
from countdb.cluster.wire import ARROW_STREAM, encode_stream
from countdb.obs import metrics

PATH = "/cluster/write"


class CopyQueues:
    def __init__(self, peers: PeerClient):
        self._peers = peers
        self._lock = threading.Lock()
        self._waiting: dict[int, list[tuple[pa.Table, Future, float]]] = {}  # node -> (rows, copy, deadline)
        self._sending: set[int] = set()  # peers with a copy request in flight (a thread of peers.pool draining)

    def submit(self, node: int, stamped_rows: pa.Table) -> Future:
        """Queue the copy of one write (rows with their `seq`) for `node`; its Future has the peer's answer."""
        copy: Future = Future()
        with self._lock:
            self._waiting.setdefault(node, []).append(
                (stamped_rows, copy, time.monotonic() + self._peers.timeout_seconds))
            if node in self._sending:
                return copy
            self._sending.add(node)
        try:
            draining = self._peers.pool.submit(self._drain, node)
        except RuntimeError:  # the pool is shut down: this process is stopping
            self._abandon(node)
        else:  # a drain the pool's shutdown cancels before it runs must not leave its copies waiting for ever
            draining.add_done_callback(lambda done: self._abandon(node) if done.cancelled() else None)
        return copy

    def _abandon(self, node: int) -> None:
        """Fail what waits for `node`: no thread will send it (this process is stopping)."""
        with self._lock:
            copies = self._waiting.pop(node, [])
            self._sending.discard(node)
        _settle(copies, error=PeerError(node, self._peers.address(node), "not sent: this node is stopping"))

    def _drain(self, node: int) -> None:
        """Send what waits for `node`, one request at a time, until nothing does."""
        while True:
            with self._lock:
                copies = self._waiting.pop(node, [])
                if not copies:
                    self._sending.discard(node)
                    return
            now = time.monotonic()
            expired = [entry for entry in copies if entry[2] <= now]
            if expired:
                timeout = self._peers.timeout_seconds
                _settle(expired, error=PeerError(node, self._peers.address(node), f"no answer within {timeout:g} s"))
                copies = [entry for entry in copies if entry[2] > now]
            if copies:
                self._send(node, copies, min(deadline for _, _, deadline in copies) - now)

    def _send(self, node: int, copies: list[tuple[pa.Table, Future, float]], seconds: float) -> None:
        try:
            body = encode_stream(pa.concat_tables([rows for rows, _, _ in copies]).unify_dictionaries())
            answer = forward(self._peers, node, PATH, body, timeout_seconds=seconds)
        except Exception as error:  # the copies' Futures carry it, as a lone call's Future did
            _settle(copies, error=error)
        else:
            _settle(copies, answer=answer)


def forward(peers: PeerClient, node: int, path: str, body: bytes, params: dict | None = None,
            timeout_seconds: float | None = None):
    """POST stamped points (an Arrow IPC stream: copies, or a hint) to `node`, timed in
    count_cluster_forward_duration_seconds; the 2xx response, else PeerError."""
    started = time.perf_counter()
    try:
        return peers.call(node, "POST", path, body, params, timeout_seconds, headers={"Content-Type": ARROW_STREAM})
    finally:
        metrics.CLUSTER_FORWARD_SECONDS.observe(time.perf_counter() - started)


def _settle(copies: list[tuple[pa.Table, Future, float]], answer: object = None,
            error: BaseException | None = None) -> None:
    for _, copy, _ in copies:
        if error is None:
            copy.set_result(answer)
        else:
            copy.set_exception(error)
