"""Back-pressure: unflushed points are bounded; writes wait for a flush to make room, then give up with 503."""

from __future__ import annotations

import threading

import pytest

from countdb.datadir import DataDir
from countdb.errors import StorageError, Unavailable
from countdb.ingest import writer as writer_module
from countdb.ingest.flush import FlushResult
from countdb.ingest.writer import Writer
from countdb.wal.log import WriteAheadLog
from countdb.wal.record import Columns

BUFFER_POINTS = 2
BOUND = writer_module.MAX_UNFLUSHED_FACTOR * BUFFER_POINTS


class GatedFlusher:
    """A flusher that publishes nothing until the test opens its gate, or fails while `failing`."""

    def __init__(self, failing: bool = False):
        self.gate = threading.Event()
        self.failing = failing
        self.flushed_points = 0

    def flush(self, points, segments):
        self.gate.wait(10)
        if self.failing:
            raise StorageError("disk says no", path="test")
        self.flushed_points += points.num_rows
        return FlushResult([], points.num_rows, 0.0)


def points(count: int) -> Columns:
    return Columns(["s"] * count, list(range(count)), [1.0] * count)


@pytest.fixture
def make_writer(tmp_path):
    writers = []

    def make(flusher) -> Writer:
        datadir = DataDir(tmp_path / "data").create()
        writer = Writer(WriteAheadLog(datadir.wal), flusher, BUFFER_POINTS, fsync_always=False)
        writers.append(writer)
        return writer

    yield make
    for writer in writers:
        writer.wal.close()


def test_a_write_past_the_bound_waits_for_a_flush_then_succeeds(make_writer):
    flusher = GatedFlusher()
    writer = make_writer(flusher)
    writer.write([points(BOUND + 1)])
    flushing = threading.Thread(target=writer.flush)
    flushing.start()
    waiting_result = []
    waiting = threading.Thread(target=lambda: waiting_result.append(writer.write([points(1)])))
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive(), "the write should wait while unflushed points exceed the bound"
    flusher.gate.set()
    flushing.join(5)
    waiting.join(5)
    assert waiting_result == [1]
    assert flusher.flushed_points == BOUND + 1


def test_a_write_gets_unavailable_when_flushes_keep_failing(make_writer, monkeypatch):
    monkeypatch.setattr(writer_module, "BACKPRESSURE_WAIT_SECONDS", 0.2)
    flusher = GatedFlusher(failing=True)
    flusher.gate.set()
    writer = make_writer(flusher)
    writer.write([points(BOUND + 1)])
    assert writer.flush() == 0
    with pytest.raises(Unavailable, match="flushes are behind"):
        writer.write([points(1)])
    assert writer.buffered_points == BOUND + 1
