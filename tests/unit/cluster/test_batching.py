"""CopyBatcher: copies that queue while a message is on the wire share the next one, each with its own stamp."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pytest

from countdb.cluster import batching
from countdb.cluster.batching import CopyBatcher
from countdb.cluster.peers import PeerError
from countdb.cluster.wire import decode_stream
from countdb.wal.record import SERIES_TYPE


def copy(seq: int, rows: int = 1) -> pa.Table:
    return pa.table({"series": pa.array([f"s{seq}"] * rows).dictionary_encode().cast(SERIES_TYPE),
                     "ts": pa.array(range(rows), pa.int64()), "value": pa.array([float(seq)] * rows),
                     "seq": pa.array([seq] * rows, pa.int64())})


class HeldPeer:
    """Records each message's stamps; holds the first message until released, or fails as told."""

    def __init__(self, failure: Exception | None = None):
        self.messages: list[list[int]] = []
        self.first_arrived, self.release = threading.Event(), threading.Event()
        self.failure = failure

    def send(self, node: int, body: bytes, timeout_seconds: float) -> str:
        assert timeout_seconds > 0
        self.messages.append(decode_stream(body)["seq"].to_pylist())
        number = len(self.messages)
        if number == 1:
            self.first_arrived.set()
            assert self.release.wait(10)
        if self.failure:
            raise self.failure
        return f"message {number}"


@pytest.fixture
def pool(monkeypatch):
    monkeypatch.setattr(batching, "QUEUE_BEHIND_SECONDS", 60)  # a held message stays young enough to queue behind
    with ThreadPoolExecutor(4) as executor:
        yield executor


def batcher_for(peer: HeldPeer, pool, timeout_seconds: float = 30) -> CopyBatcher:
    return CopyBatcher(peer.send, pool, timeout_seconds, lambda node: f"127.0.0.1:{node}")


def test_copies_queued_behind_a_message_share_the_next_one_each_with_its_stamp(pool):
    peer = HeldPeer()
    batcher = batcher_for(peer, pool)
    first = batcher.submit(2, copy(1))
    assert peer.first_arrived.wait(10)
    queued = [batcher.submit(2, copy(seq, rows=2)) for seq in (2, 3, 4)]
    peer.release.set()
    assert first.result(10) == "message 1"
    assert [future.result(10) for future in queued] == ["message 2"] * 3
    assert peer.messages == [[1], [2, 2, 3, 3, 4, 4]]


def test_a_copy_for_an_idle_peer_leaves_at_once(pool):
    peer = HeldPeer()
    peer.release.set()
    batcher = batcher_for(peer, pool)
    assert batcher.submit(1, copy(7)).result(10) == "message 1"
    assert batcher.submit(1, copy(8)).result(10) == "message 2"
    assert peer.messages == [[7], [8]]


def test_a_message_holds_at_most_message_rows_unless_one_copy_is_larger(pool, monkeypatch):
    monkeypatch.setattr(batching, "MESSAGE_ROWS", 4)
    peer = HeldPeer()
    batcher = batcher_for(peer, pool)
    batcher.submit(2, copy(1))
    assert peer.first_arrived.wait(10)
    queued = [batcher.submit(2, copy(seq, rows)) for seq, rows in ((2, 3), (3, 1), (4, 2), (5, 6))]
    peer.release.set()
    [future.result(10) for future in queued]
    assert peer.messages == [[1], [2, 2, 2, 3], [4, 4], [5] * 6]


def test_when_the_peer_does_not_answer_the_copies_queued_behind_fail_with_it(pool):
    peer = HeldPeer(PeerError(2, "127.0.0.1:1", "no answer within 2 s"))
    batcher = batcher_for(peer, pool)
    first = batcher.submit(2, copy(1))
    assert peer.first_arrived.wait(10)
    queued = [batcher.submit(2, copy(seq)) for seq in (2, 3)]
    peer.release.set()
    for future in [first, *queued]:
        with pytest.raises(PeerError, match="no answer"):
            future.result(10)
    assert peer.messages == [[1]]


def test_a_refusal_fails_only_the_message_it_answers(pool):
    peer = HeldPeer(PeerError(2, "127.0.0.1:1", "HTTP 507: disk full", status=507))
    batcher = batcher_for(peer, pool)
    first = batcher.submit(2, copy(1))
    assert peer.first_arrived.wait(10)
    queued = batcher.submit(2, copy(2))
    peer.release.set()
    for future in (first, queued):
        with pytest.raises(PeerError, match="507"):
            future.result(10)
    assert peer.messages == [[1], [2]]


def test_a_copy_does_not_queue_behind_a_message_older_than_queue_behind_seconds(pool, monkeypatch):
    monkeypatch.setattr(batching, "QUEUE_BEHIND_SECONDS", 0.01)
    peer = HeldPeer()
    batcher = batcher_for(peer, pool)
    first = batcher.submit(2, copy(1))
    assert peer.first_arrived.wait(10)
    time.sleep(0.05)
    assert batcher.submit(2, copy(2)).result(10) == "message 2"  # sent beside the held one, not after it
    peer.release.set()
    assert first.result(10) == "message 1"


def test_a_queued_copy_fails_when_its_timeout_passes_before_it_could_leave(pool):
    peer = HeldPeer()
    batcher = batcher_for(peer, pool, timeout_seconds=0.2)
    first = batcher.submit(2, copy(1))
    assert peer.first_arrived.wait(10)
    queued = batcher.submit(2, copy(2))
    time.sleep(0.3)
    peer.release.set()
    assert first.result(10) == "message 1"
    with pytest.raises(PeerError, match="no answer within 0.2 s"):
        queued.result(10)
    assert peer.messages == [[1]]
