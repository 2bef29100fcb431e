"""Damaged WAL at start-up in repair mode: the node starts, keeps every record it can read (later segments
too), quarantines a copy and registers the damage; a segment replayed twice adds no point twice."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from countdb.api.services import prepare_node
from countdb.catalog.damage import damaged_files
from countdb.catalog.db import connect
from countdb.config import Settings
from countdb.datadir import DataDir
from countdb.errors import CorruptSegment
from countdb.wal.log import WriteAheadLog
from countdb.wal.record import Columns, encode_points
from countdb.wal.segment import HEADER, read_segment

PER_SEGMENT = 4


def dead_writer(tmp_path, segments: int):
    """A dead writer's folder: sealed segments and its current one, PER_SEGMENT records each; record n is
    ts 1000+n, value n."""
    datadir = DataDir(tmp_path / "data").create()
    wal = WriteAheadLog(datadir.wal)
    paths = []
    for n in range(segments * PER_SEGMENT):
        if n and n % PER_SEGMENT == 0:
            paths.append(wal.rotate())
        record_type, payload = encode_points(Columns(["wal.damage"], [1000 + n], [float(n)]))
        wal.append_unsynced(record_type, n + 1, payload)
    paths.append(wal.current_path)  # the segment the writer was appending to when it died
    wal._lock.release()
    return datadir, paths


def stored_ts(datadir: DataDir) -> list[int]:
    catalog = connect(datadir.catalog_path)
    files = [str(datadir.root / p) for (p,) in catalog.execute("SELECT path FROM blocks WHERE kind = 'points'")]
    catalog.close()
    return [ts for (ts,) in duckdb.sql(f"SELECT ts FROM read_parquet({files}) ORDER BY ts").fetchall()]


def registered(datadir: DataDir):
    catalog = connect(datadir.catalog_path)
    try:
        return damaged_files(catalog)
    finally:
        catalog.close()


def corrupt_record(segment, index: int) -> None:
    frames, _, _ = read_segment(segment)
    data = bytearray(segment.read_bytes())
    data[frames[index].offset + HEADER.size + 2] ^= 0xFF
    segment.write_bytes(bytes(data))


def test_a_corrupt_segment_in_the_middle_is_quarantined_registered_and_the_later_ones_replayed(tmp_path):
    datadir, segments = dead_writer(tmp_path, 3)
    corrupt_record(segments[1], 1)
    assert prepare_node(Settings.for_tests(datadir.root, wal_replay="repair")) == 3 * PER_SEGMENT - 3
    assert stored_ts(datadir) == [1000 + n for n in range(3 * PER_SEGMENT) if not 5 <= n <= 7]
    (damage,) = registered(datadir)
    relative = str(segments[1].relative_to(datadir.root))
    assert (damage.path, damage.kind, damage.problem) == (relative, "wal", "bad_crc")
    assert (datadir.root / damage.quarantined_as).read_bytes()[:8] == b"CNTWAL01"


def test_a_torn_segment_before_the_last_is_damage_not_a_torn_tail(tmp_path):
    datadir, segments = dead_writer(tmp_path, 2)
    segments[0].write_bytes(segments[0].read_bytes()[:-3])
    assert prepare_node(Settings.for_tests(datadir.root, wal_replay="repair")) == 2 * PER_SEGMENT - 1
    assert [(d.kind, d.problem) for d in registered(datadir)] == [("wal", "torn_tail")]


def test_a_torn_segment_before_the_last_stops_strict_replay(tmp_path):
    datadir, segments = dead_writer(tmp_path, 2)
    segments[0].write_bytes(segments[0].read_bytes()[:-3])
    with pytest.raises(CorruptSegment):
        prepare_node(Settings.for_tests(datadir.root, wal_replay="strict"))


def test_a_torn_tail_of_the_last_segment_is_not_registered_as_damage(tmp_path):
    datadir, segments = dead_writer(tmp_path, 2)
    segments[1].write_bytes(segments[1].read_bytes()[:-3])
    assert prepare_node(Settings.for_tests(datadir.root)) == 2 * PER_SEGMENT - 1
    assert registered(datadir) == []


def test_replaying_a_segment_whose_points_are_already_stored_adds_none(tmp_path):
    """A restored WAL segment may hold writes a block already has (same seq): replay keeps one of each."""
    datadir, segments = dead_writer(tmp_path, 2)
    kept = tmp_path / "kept"
    shutil.copytree(datadir.wal, kept)
    prepare_node(Settings.for_tests(datadir.root))
    shutil.copytree(kept, datadir.wal, dirs_exist_ok=True)  # the same writer folder, back again
    prepare_node(Settings.for_tests(datadir.root))
    assert stored_ts(datadir) == [1000 + n for n in range(2 * PER_SEGMENT)]
