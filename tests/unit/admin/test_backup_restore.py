"""backup() and restore() in-process, with flushes and a compaction interleaved at the backup's steps:
every point written before the backup is restored exactly once; damaged inputs are refused."""

from __future__ import annotations

import json
import shutil
import tarfile

import pytest

from countdb.admin.backup import backup
from countdb.admin.restore import restore
from countdb.api.services import prepare_node
from countdb.catalog.db import connect, transaction
from countdb.catalog.migrate import migrate
from countdb.config import Settings
from countdb.datadir import DataDir
from countdb.errors import StorageError, Unavailable
from countdb.ingest.flush import Flusher
from countdb.ingest.writer import Writer
from countdb.query.engine import QueryEngine
from countdb.storage.paths import BlockPath
from countdb.wal.log import WriteAheadLog
from countdb.wal.record import Columns

from support.query import series_points

SERIES = "backup.unit"


class Node:
    """A one-worker node in this process: a writer with its WAL, a flusher, a catalog."""

    def __init__(self, root):
        self.datadir = DataDir(root).create()
        migrate(self.datadir.catalog_path)
        self.catalog = connect(self.datadir.catalog_path)
        self.writer = Writer(WriteAheadLog(self.datadir.wal), Flusher(self.datadir, self.catalog), 10**6, False)

    def write(self, first_ts: int, count: int) -> list[tuple[int, float]]:
        points = [(first_ts + i, float(first_ts + i)) for i in range(count)]
        self.writer.write([Columns([SERIES] * count, [p[0] for p in points], [p[1] for p in points])])
        return points

    def close(self) -> None:
        self.writer.close()
        self.writer.flusher.close()
        self.catalog.close()


@pytest.fixture
def node(tmp_path):
    started = Node(tmp_path / "data")
    yield started
    started.close()


def restored_points(backup_path, root) -> list[tuple[int, float]]:
    datadir = DataDir(root)
    restore(backup_path, datadir)
    prepare_node(Settings.for_tests(root))  # replays the restored WAL, as a starting node does
    engine = QueryEngine(datadir, 256)
    try:
        return series_points(engine, SERIES, 0, 10**12)
    finally:
        engine.close()


def compact_one_block(node: Node) -> None:
    """What a compaction does to a block: a new file with its rows replaces it, the old file is deleted."""
    path, kind, month = node.catalog.execute("SELECT path, kind, month FROM blocks LIMIT 1").fetchone()
    old = BlockPath.parse(path)
    new = BlockPath.new(old.month, old.kind, old.max_seq)
    shutil.copy(old.under(node.datadir.root), new.under(node.datadir.root))
    with transaction(node.catalog):
        node.catalog.execute("UPDATE blocks SET path = ? WHERE path = ?", (new.relative, path))
    old.under(node.datadir.root).unlink()


@pytest.mark.parametrize("name", ["backup", "backup.tar.gz"])
@pytest.mark.parametrize("flush_at", [None, "segments-opened", "catalog-copied"])
def test_points_written_before_the_backup_are_restored_once_whatever_a_flush_does_meanwhile(
        node, tmp_path, name, flush_at):
    written = node.write(1_000, 50)
    node.writer.flush()  # a block
    written += node.write(2_000, 30)  # only in the WAL
    written += node.write(1_010, 5)  # overwrites of stored points: the flush writes a shadow block

    def step(current: str) -> None:
        if current == flush_at:
            node.writer.flush()

    report = backup(node.datadir, tmp_path / name, on_step=step)
    # The segment is backed up in every case: read through the handle the backup holds though a flush
    # deleted the file. Flushed before the catalog copy, its points are in the copy's blocks too, and
    # replay must drop them rather than restore them twice.
    assert report.segments == 1 and report.attempts == 1
    expected = dict(written)  # later writes of a timestamp win
    assert restored_points(tmp_path / name, tmp_path / "restored") == sorted(expected.items())


def test_a_block_replaced_by_compaction_during_the_backup_makes_it_start_again(node, tmp_path):
    written = node.write(1_000, 20)
    node.writer.flush()
    attempts = []

    def step(current: str) -> None:
        if current == "catalog-copied":
            attempts.append(current)
            if len(attempts) == 1:
                compact_one_block(node)

    report = backup(node.datadir, tmp_path / "backup", on_step=step)
    assert report.attempts == 2
    assert restored_points(tmp_path / "backup", tmp_path / "restored") == written


def test_a_torn_tail_is_not_backed_up(node, tmp_path):
    written = node.write(1_000, 10)
    with open(node.writer.wal.current_path, "ab") as segment:
        segment.write(b"\x40\x00\x00\x00half a frame")
    report = backup(node.datadir, tmp_path / "backup")
    (copied,) = (tmp_path / "backup" / "wal").glob("*/*.wal")
    assert copied.stat().st_size == node.writer.wal.current_path.stat().st_size - 16
    assert report.wal_records == 1 and report.warnings == []
    assert restored_points(tmp_path / "backup", tmp_path / "restored") == written


def test_a_damaged_block_fails_the_backup_and_leaves_nothing_behind(node, tmp_path):
    node.write(1_000, 20)
    node.writer.flush()
    (block,) = node.datadir.time_blocks.glob("*/*.parquet")
    data = bytearray(block.read_bytes())
    data[100] ^= 1
    block.write_bytes(bytes(data))
    with pytest.raises(StorageError, match="countdb verify --repair"):
        backup(node.datadir, tmp_path / "backups" / "b.tar.gz")
    assert list((tmp_path / "backups").iterdir()) == []


def test_a_backup_never_overwrites(node, tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(StorageError, match="already exists"):
        backup(node.datadir, tmp_path / "taken")


def test_restore_checks_every_file_against_the_manifest(node, tmp_path):
    node.write(1_000, 20)
    node.writer.flush()
    backup(node.datadir, tmp_path / "backup")
    (block,) = (tmp_path / "backup" / "time_blocks").glob("*/*.parquet")
    block.write_bytes(block.read_bytes()[:-1] + b"\x00")
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep-me").write_text("old")
    with pytest.raises(StorageError, match="damaged"):
        restore(tmp_path / "backup", DataDir(target))
    assert [p.name for p in target.iterdir()] == ["keep-me"]  # untouched, no staging left


def test_restore_refuses_a_tarball_with_a_file_its_manifest_does_not_list(node, tmp_path):
    node.write(1_000, 5)
    backup(node.datadir, tmp_path / "backup.tar.gz")
    with tarfile.open(tmp_path / "backup.tar.gz") as original, \
            tarfile.open(tmp_path / "evil.tar.gz", "w:gz") as evil:
        for member in original.getmembers():
            evil.addfile(member, original.extractfile(member))
        extra = tarfile.TarInfo("../../etc/cron.d/x")
        evil.addfile(extra)
    with pytest.raises(StorageError, match="does not list"):
        restore(tmp_path / "evil.tar.gz", DataDir(tmp_path / "target"))
    assert not (tmp_path / "etc").exists()


def test_restore_refuses_a_manifest_naming_a_path_outside_the_data_files(node, tmp_path):
    backup(node.datadir, tmp_path / "backup")
    manifest = json.loads((tmp_path / "backup" / "backup.json").read_text())
    manifest["files"].append({"path": "../outside", "bytes": 0, "sha256": ""})
    (tmp_path / "backup" / "backup.json").write_text(json.dumps(manifest))
    with pytest.raises(StorageError, match="not a Count data file"):
        restore(tmp_path / "backup", DataDir(tmp_path / "target"))


def test_restore_moves_what_the_directory_held_aside(node, tmp_path):
    written = node.write(1_000, 5)
    backup(node.datadir, tmp_path / "backup")
    target = tmp_path / "target"
    old = Node(target)
    old.write(5_000, 3)
    old.close()
    report = restore(tmp_path / "backup", DataDir(target))
    assert report.moved_aside is not None and (report.moved_aside / "series_index" / "catalog.sqlite").exists()
    prepare_node(Settings.for_tests(target))
    engine = QueryEngine(DataDir(target), 256)
    assert series_points(engine, SERIES, 0, 10**12) == written
    engine.close()


def test_restore_refuses_a_directory_a_node_runs_on(node, tmp_path):
    backup(node.datadir, tmp_path / "backup")
    with pytest.raises(Unavailable, match="stop it first"):
        restore(tmp_path / "backup", node.datadir)
