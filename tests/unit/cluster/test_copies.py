"""CopyQueues: copies of writes for a peer that overlap in time go in one request, each keeping its stamp; each
copy's Future has the outcome of the request that carried it, and no copy gets more than the forward timeout."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pytest

from countdb.cluster.copies import CopyQueues
from countdb.cluster.peers import PeerError
from countdb.cluster.wire import decode_stream

WAIT_SECONDS = 10


def copy_of(seq: int) -> pa.Table:
    return pa.table({"series": pa.array([f"s{seq}"]).dictionary_encode(), "ts": pa.array([seq], pa.int64()),
                     "value": pa.array([float(seq)]), "seq": pa.array([seq], pa.int64())})


class GatedPeers:
    """A PeerClient's part CopyQueues uses. Records each request's node, stamps and time limit and answers with the
    stamps (or raises `failure`); a request to `held` waits for `gate` first."""

    def __init__(self, timeout_seconds: float = 30):
        self.timeout_seconds = timeout_seconds
        self.pool = ThreadPoolExecutor(4)
        self.requests: list[tuple[int, list[int]]] = []
        self.limits: list[float] = []
        self.held: int | None = None
        self.gate, self.arrived = threading.Event(), threading.Event()
        self.failure: Exception | None = None

    def address(self, node: int) -> str:
        return f"127.0.0.1:{node}"

    def call(self, node: int, method: str, path: str, body: bytes, params: dict | None, timeout_seconds: float,
             headers: dict) -> str:
        stamps = decode_stream(body)["seq"].to_pylist()
        self.requests.append((node, stamps))
        self.limits.append(timeout_seconds)
        if node == self.held:
            self.arrived.set()
            assert self.gate.wait(WAIT_SECONDS)
        if self.failure is not None:
            raise self.failure
        return f"stored {stamps}"


@pytest.fixture
def peers():
    peers = GatedPeers()
    yield peers
    peers.gate.set()
    peers.pool.shutdown()


def test_a_lone_copy_is_sent_at_once_with_the_whole_time_limit(peers):
    assert CopyQueues(peers).submit(1, copy_of(7)).result(WAIT_SECONDS) == "stored [7]"
    assert peers.requests == [(1, [7])] and 20 < peers.limits[0] <= 30


def test_copies_made_while_a_request_is_in_flight_go_together_in_the_next(peers):
    queues, peers.held = CopyQueues(peers), 1
    first = queues.submit(1, copy_of(1))
    assert peers.arrived.wait(WAIT_SECONDS)
    waiting = [queues.submit(1, copy_of(seq)) for seq in (2, 3, 4)]
    assert queues.submit(2, copy_of(9)).result(WAIT_SECONDS) == "stored [9]"  # another peer's copies don't wait
    peers.gate.set()
    assert first.result(WAIT_SECONDS) == "stored [1]"
    assert [copy.result(WAIT_SECONDS) for copy in waiting] == ["stored [2, 3, 4]"] * 3
    assert peers.requests == [(1, [1]), (2, [9]), (1, [2, 3, 4])]


def test_every_copy_a_failed_request_carried_gets_its_error(peers):
    queues, peers.held = CopyQueues(peers), 1
    queues.submit(1, copy_of(1))
    assert peers.arrived.wait(WAIT_SECONDS)
    together = [queues.submit(1, copy_of(seq)) for seq in (2, 3)]
    peers.failure = PeerError(1, "127.0.0.1:1", "HTTP 503: flushes are behind", status=503)
    peers.gate.set()
    for copy in together:
        with pytest.raises(PeerError, match="503"):
            copy.result(WAIT_SECONDS)
    assert peers.requests[-1] == (1, [2, 3])


def test_a_copy_waits_no_longer_than_the_forward_timeout_in_all(peers):
    peers.timeout_seconds = 0.5
    queues, peers.held = CopyQueues(peers), 1
    first = queues.submit(1, copy_of(1))
    assert peers.arrived.wait(WAIT_SECONDS)
    behind = queues.submit(1, copy_of(2))
    time.sleep(1.0)  # the first request outlives every copy's time limit (a real call would have timed out)
    peers.gate.set()
    with pytest.raises(PeerError, match="no answer within 0.5 s"):
        behind.result(WAIT_SECONDS)
    assert first.result(WAIT_SECONDS) == "stored [1]" and peers.requests == [(1, [1])]  # the late copy: never sent


def test_copies_that_waited_are_sent_with_what_is_left_of_their_time(peers):
    queues, peers.held = CopyQueues(peers), 1
    queues.submit(1, copy_of(1))
    assert peers.arrived.wait(WAIT_SECONDS)
    behind = queues.submit(1, copy_of(2))
    time.sleep(0.5)
    peers.gate.set()
    assert behind.result(WAIT_SECONDS) == "stored [2]"
    assert peers.limits[1] < 29.6


def test_copies_a_stopping_process_can_no_longer_send_fail_instead_of_waiting(peers):
    queues, peers.held = CopyQueues(peers), 1
    first = queues.submit(1, copy_of(1))
    assert peers.arrived.wait(WAIT_SECONDS)
    busy = [peers.pool.submit(peers.gate.wait) for _ in range(3)]  # the pool's other threads: a drain must queue
    queued = queues.submit(2, copy_of(2))  # its drain waits for a free thread of the pool
    peers.pool.shutdown(wait=False, cancel_futures=True)  # as PeerClient.close() does when the worker exits
    with pytest.raises(PeerError, match="stopping"):
        queued.result(WAIT_SECONDS)
    with pytest.raises(PeerError, match="stopping"):
        queues.submit(2, copy_of(3)).result(WAIT_SECONDS)  # after the shutdown: nothing can send it
    peers.gate.set()
    assert first.result(WAIT_SECONDS) == "stored [1]" and all(thread.result(WAIT_SECONDS) for thread in busy)
