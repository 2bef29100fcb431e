"""Replaying a dead writer's WAL: torn tails are dropped, other damage is strict or repaired."""

from __future__ import annotations

import pytest

from countdb.api.services import prepare_node
from countdb.catalog.db import connect
from countdb.config import Settings
from countdb.datadir import DataDir
from countdb.errors import CorruptSegment
from countdb.wal.log import WriteAheadLog
from countdb.wal.record import Columns, encode_points
from countdb.wal.segment import HEADER, read_segment


def dead_writer_with(tmp_path, count: int):
    """A WAL folder whose writer died without closing (its lock is released, as the kernel would)."""
    datadir = DataDir(tmp_path / "data").create()
    wal = WriteAheadLog(datadir.wal)
    for i in range(count):
        record_type, payload = encode_points(Columns(["dead"], [1000 + i], [float(i)]))
        wal.append_unsynced(record_type, i + 1, payload)
    wal._lock.release()
    return datadir, wal.current_path


def stored_count(datadir: DataDir) -> int:
    catalog = connect(datadir.catalog_path)
    try:
        return catalog.execute("SELECT coalesce(sum(rows), 0) FROM blocks WHERE kind = 'points'").fetchone()[0]
    finally:
        catalog.close()


def test_dead_writer_points_are_published_and_its_folder_removed(tmp_path):
    datadir, segment = dead_writer_with(tmp_path, 5)
    assert prepare_node(Settings.for_tests(datadir.root)) == 5
    assert stored_count(datadir) == 5
    assert not segment.parent.exists()


def test_a_torn_tail_is_dropped_and_the_rest_replayed(tmp_path):
    datadir, segment = dead_writer_with(tmp_path, 5)
    segment.write_bytes(segment.read_bytes()[:-4])
    assert prepare_node(Settings.for_tests(datadir.root)) == 4


def _corrupt_middle(segment):
    frames, _, _ = read_segment(segment)
    data = bytearray(segment.read_bytes())
    data[frames[2].offset + HEADER.size + 2] ^= 0xFF
    segment.write_bytes(bytes(data))


def test_strict_replay_refuses_a_corrupt_segment(tmp_path):
    datadir, segment = dead_writer_with(tmp_path, 5)
    _corrupt_middle(segment)
    with pytest.raises(CorruptSegment) as raised:
        prepare_node(Settings.for_tests(datadir.root, wal_replay="strict"))
    assert raised.value.path == str(segment) and raised.value.offset > 0
    assert stored_count(datadir) == 0 and segment.exists()


def test_repair_replay_keeps_what_precedes_the_damage_and_quarantines_a_copy(tmp_path):
    datadir, segment = dead_writer_with(tmp_path, 5)
    _corrupt_middle(segment)
    assert prepare_node(Settings.for_tests(datadir.root, wal_replay="repair")) == 2
    assert list(datadir.quarantine.iterdir())
