"""Writes on a full disk: below MIN_FREE_DISK_MB nothing is appended and StorageFull is raised; a WAL that
cannot make a segment (ENOSPC) still lets its worker start, and a rotation that fails changes nothing."""

from __future__ import annotations

import errno
import os

import pytest

from countdb.catalog.db import connect
from countdb.catalog.migrate import migrate
from countdb.datadir import DataDir
from countdb.errors import StorageFull
from countdb.ingest.flush import Flusher
from countdb.ingest.writer import Writer
from countdb.storage.space import DiskSpace
from countdb.wal.log import WriteAheadLog, all_segment_paths
from countdb.wal.record import Columns
from countdb.wal.segment import read_segment


def points(count: int) -> Columns:
    return Columns(["s"] * count, list(range(count)), [1.0] * count)


@pytest.fixture
def datadir(tmp_path):
    datadir = DataDir(tmp_path / "data").create()
    migrate(datadir.catalog_path)
    return datadir


def make_writer(datadir: DataDir, min_free_bytes: int) -> Writer:
    flusher = Flusher(datadir, connect(datadir.catalog_path))
    return Writer(WriteAheadLog(datadir.wal), flusher, 100, fsync_always=False,
                  space=DiskSpace(datadir.root, min_free_bytes))


def test_below_the_reserve_writes_are_refused_before_anything_is_written(datadir):
    free, _ = DiskSpace(datadir.root, 0).usage()
    writer = make_writer(datadir, free + 2**30)  # a reserve larger than what is free: the disk counts as full
    with pytest.raises(StorageFull) as refused:
        writer.wait_for_room()
    with pytest.raises(StorageFull):
        writer.write([points(5)])
    assert refused.value.free_bytes > 0 and "full" in refused.value.message
    assert writer.buffered_points == 0
    assert all(not read_segment(path)[0] for path in all_segment_paths(datadir.wal))
    writer.space.min_free_bytes = 0  # space is back: the next write goes through
    assert writer.write([points(5)]) == 5
    writer.close()


def disk_full(fd, views):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_wal_made_on_a_full_disk_makes_its_segment_at_the_first_write(tmp_path, monkeypatch):
    real_writev = os.writev
    monkeypatch.setattr(os, "writev", disk_full)
    wal = WriteAheadLog(tmp_path / "wal")  # the worker starts anyway
    with pytest.raises(OSError):
        wal.append_unsynced(1, 1, b"payload")
    assert not list(wal.dir.glob("*.wal"))  # no segment cut inside its magic bytes
    monkeypatch.setattr(os, "writev", real_writev)
    wal.append_unsynced(1, 2, b"payload")
    path = wal.current_path
    wal.close()
    frames, _, problem = read_segment(path)
    assert problem is None and [f.seq for f in frames] == [2]


def test_a_rotation_that_fails_for_space_keeps_appending_to_the_current_segment(tmp_path, monkeypatch):
    wal = WriteAheadLog(tmp_path / "wal")
    wal.append_unsynced(1, 1, b"one")
    current = wal.current_path
    real_writev = os.writev
    monkeypatch.setattr(os, "writev", disk_full)
    with pytest.raises(OSError):
        wal.rotate()
    monkeypatch.setattr(os, "writev", real_writev)
    wal.append_unsynced(1, 2, b"two")
    assert wal.current_path == current
    assert wal.rotate() == current
    wal.close()
    assert [f.seq for f in read_segment(current)[0]] == [1, 2]


def test_a_writer_whose_segment_cannot_rotate_keeps_its_points_for_the_next_flush(datadir, monkeypatch):
    writer = make_writer(datadir, 0)
    writer.write([points(5)])
    real_writev = os.writev
    monkeypatch.setattr(os, "writev", disk_full)
    assert writer.flush() == 0 and writer.flush_failing_since is not None
    monkeypatch.setattr(os, "writev", real_writev)
    assert writer.buffered_points == 5
    assert writer.flush() == 5 and writer.flush_failing_since is None
    writer.close()


def test_a_flush_that_cannot_publish_leaves_no_block_file_behind(datadir):
    writer = make_writer(datadir, 0)
    writer.write([points(5)])
    catalog = connect(datadir.catalog_path)  # the catalog refuses the publish, as a full disk makes SQLite do
    catalog.execute("CREATE TRIGGER refuse BEFORE INSERT ON blocks BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    assert writer.flush() == 0
    assert not list(datadir.time_blocks.rglob("*.parquet"))
    catalog.execute("DROP TRIGGER refuse")
    catalog.close()
    assert writer.flush() == 5 and len(list(datadir.time_blocks.rglob("*.parquet"))) == 1
    writer.close()
