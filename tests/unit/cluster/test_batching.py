"""CopyBatcher: copies that queue while a message is on the wire share the next one, each with its own stamp."""

import threading
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

    def send(self, node: int, body: bytes) -> str:
        self.messages.append(decode_stream(body)["seq"].to_pylist())
        if len(self.messages) == 1:
            self.first_arrived.set()
            assert self.release.wait(10)
        if self.failure:
            raise self.failure
        return f"message {len(self.messages)}"


@pytest.fixture
def pool():
    with ThreadPoolExecutor(4) as executor:
        yield executor


def test_copies_queued_behind_a_message_share_the_next_one_each_with_its_stamp(pool):
    peer = HeldPeer()
    batcher = CopyBatcher(peer.send, pool)
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
    batcher = CopyBatcher(peer.send, pool)
    assert batcher.submit(1, copy(7)).result(10) == "message 1"
    assert batcher.submit(1, copy(8)).result(10) == "message 2"
    assert peer.messages == [[7], [8]]


def test_a_message_holds_at_most_message_rows_unless_one_copy_is_larger(pool, monkeypatch):
    monkeypatch.setattr(batching, "MESSAGE_ROWS", 4)
    peer = HeldPeer()
    batcher = CopyBatcher(peer.send, pool)
    batcher.submit(2, copy(1))
    assert peer.first_arrived.wait(10)
    queued = [batcher.submit(2, copy(seq, rows)) for seq, rows in ((2, 3), (3, 1), (4, 2), (5, 6))]
    peer.release.set()
    [future.result(10) for future in queued]
    assert peer.messages == [[1], [2, 2, 2, 3], [4, 4], [5] * 6]


def test_when_the_peer_does_not_answer_the_copies_queued_behind_fail_with_it(pool):
    peer = HeldPeer(PeerError(2, "127.0.0.1:1", "no answer within 2 s"))
    batcher = CopyBatcher(peer.send, pool)
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
    batcher = CopyBatcher(peer.send, pool)
    first = batcher.submit(2, copy(1))
    assert peer.first_arrived.wait(10)
    queued = batcher.submit(2, copy(2))
    peer.release.set()
    for future in (first, queued):
        with pytest.raises(PeerError, match="507"):
            future.result(10)
    assert peer.messages == [[1], [2]]
