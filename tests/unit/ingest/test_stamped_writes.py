"""Several batches stored at once, all or none: an Arrow request's batches, or writes stamped by their
coordinators (a delivered batch of hints), each keeping its own stamp in the WAL and the buffer; all are appended
with one system call, and a disk that fills in the middle stores none of them."""

from __future__ import annotations

import errno
import os

import pyarrow.parquet as pq
import pytest

from countdb.catalog.db import connect
from countdb.catalog.migrate import migrate
from countdb.datadir import DataDir
from countdb.errors import StorageFull
from countdb.ingest.flush import Flusher
from countdb.ingest.writer import Writer
from countdb.wal.log import WriteAheadLog, all_segment_paths
from countdb.wal.record import Columns, encode_points
from countdb.wal.segment import HEADER, read_segment

STAMPS = [5_000, 9_000, 7_000]  # as delivered: hints in their holder's order, not in stamp order


@pytest.fixture
def writer(tmp_path):
    datadir = DataDir(tmp_path / "data").create()
    migrate(datadir.catalog_path)
    writer = Writer(WriteAheadLog(datadir.wal), Flusher(datadir, connect(datadir.catalog_path)), 1_000,
                    fsync_always=False)
    yield writer
    writer.close()


def stamped() -> list[tuple[int, Columns]]:
    return [(stamp, Columns([f"s{i}", f"s{i}"], [1, 2], [float(i), float(i)])) for i, stamp in enumerate(STAMPS)]


def stored_stamps(writer: Writer) -> list[int]:
    return [frame.seq for path in all_segment_paths(writer.wal.root) for frame in read_segment(path)[0]]


def test_each_write_keeps_its_own_stamp_and_a_later_local_write_is_stamped_after_all(writer):
    assert writer.write_stamped(stamped()) == 6
    assert stored_stamps(writer) == STAMPS
    assert writer.next_seq() > max(STAMPS)


def test_the_later_stamp_wins_whatever_the_order_of_delivery(writer, tmp_path):
    writer.write_stamped([(9_000, Columns(["s"], [1], [2.0])), (5_000, Columns(["s"], [1], [1.0]))])
    assert writer.flush() == 1  # the two copies of one point are one point
    (block,) = (tmp_path / "data" / "time_blocks").rglob("*.parquet")
    assert pq.read_table(block, columns=["series", "value"]).to_pylist() == [{"series": "s", "value": 2.0}]


def test_the_writes_are_appended_with_one_system_call(writer, monkeypatch):
    writer.write([Columns(["first"], [1], [1.0])])  # the segment and its magic bytes first
    calls = []
    real_writev = os.writev
    monkeypatch.setattr(os, "writev", lambda fd, views: calls.append(fd) or real_writev(fd, views))
    writer.write_stamped(stamped())
    assert len(calls) == 1


@pytest.mark.parametrize("how", ["one request's batches", "stamped writes"])
def test_a_disk_that_fills_in_the_middle_stores_none_of_them(writer, monkeypatch, how):
    first, second = Columns(["a"] * 50, list(range(50)), [1.0] * 50), Columns(["b"] * 50, list(range(50)), [2.0] * 50)
    writer.write([Columns(["first"], [1], [1.0])])
    room = HEADER.size + len(encode_points(first)[1]) + 10  # the first batch fits, the second does not
    real_writev = os.writev

    def small_disk(fd, views):
        nonlocal room
        data = b"".join(bytes(view) for view in views)
        if not room:
            raise OSError(errno.ENOSPC, "No space left on device")
        written = real_writev(fd, [data[:room]])
        room -= written
        return written

    monkeypatch.setattr(os, "writev", small_disk)
    with pytest.raises(StorageFull):
        if how == "stamped writes":
            writer.write_stamped([(5_000, first), (7_000, second)])
        else:
            writer.write([first, second])
    monkeypatch.setattr(os, "writev", real_writev)
    assert writer.buffered_points == 1
    assert len(stored_stamps(writer)) == 1
