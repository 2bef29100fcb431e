"""backup(): a consistent copy of a data directory while its node keeps ingesting and flushing.

Invariant: every point acknowledged before the backup started is restored exactly once. Live WAL segments
are opened *before* the catalog is copied (SQLite's backup API, one read transaction), and read through
those handles even if a flush deletes the files meanwhile. A segment the copy lists as retired is skipped
(its points are in the copy's blocks). One flushed while the copy was being made may be in the copy's blocks
without being listed as retired (a flush forgets retired rows once the files are gone): it is kept, and
replay drops every point a block already holds with the same write sequence. Only whole frames are copied;
a block deleted before it is copied (compaction replaced it) makes the backup start again.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import sqlite3
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Callable

from countdb import __version__
from countdb.admin.archive import BackupWriter, open_backup_writer
from countdb.admin.progress import Progress
from countdb.catalog.blocks import BlockRecord, snapshot
from countdb.catalog.db import connect_read_only
from countdb.datadir import DataDir
from countdb.errors import StorageError
from countdb.storage.integrity import file_sha256
from countdb.wal.log import all_segment_paths
from countdb.wal.segment import MAGIC, parse_frames

log = logging.getLogger(__name__)

MANIFEST = "backup.json"
FORMAT = "count-backup/1"
CATALOG = "series_index/catalog.sqlite"
ATTEMPTS = 5


@dataclass
class BackupReport:
    destination: Path
    blocks: int = 0
    block_rows: int = 0
    segments: int = 0
    wal_records: int = 0
    bytes_written: int = 0
    attempts: int = 1
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


class Raced(Exception):
    """A block the catalog copy lists was deleted before it could be copied."""


@dataclass(frozen=True)
class _Segment:
    relative: str
    data: bytes  # whole frames only
    records: int


def backup(datadir: DataDir, destination: Path, progress: Progress | None = None,
           on_step: Callable[[str], None] | None = None) -> BackupReport:
    """Write a backup of `datadir` to `destination` (a folder, or a file ending .tar.gz/.tgz) that must not
    exist. Reads `datadir` only. `on_step` is told "segments-opened" and "catalog-copied" (tests interleave
    flushes there). Raises StorageError (a damaged block, an unreadable catalog, blocks vanishing repeatedly)."""
    progress = progress or Progress()
    started = time.monotonic()
    for attempt in range(1, ATTEMPTS + 1):
        writer = open_backup_writer(destination, progress)
        try:
            report = _write_backup(datadir, writer, progress, on_step or (lambda step: None))
        except Raced as race:
            writer.abort()
            log.warning("%s during the backup; starting again", race)
            continue
        except BaseException:
            writer.abort()
            raise
        finally:
            progress.finish()
        writer.commit()
        report.attempts, report.seconds = attempt, time.monotonic() - started
        return report
    raise StorageError(f"blocks kept vanishing during {ATTEMPTS} attempts; retry when compaction is quieter")


def _write_backup(datadir: DataDir, writer: BackupWriter, progress: Progress,
                  on_step: Callable[[str], None]) -> BackupReport:
    report = BackupReport(writer.destination)
    with ExitStack() as stack:
        opened = _open_live_segments(datadir, stack)
        on_step("segments-opened")
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=".count-backup-",
                                                                       dir=writer.destination.parent)))
        blocks, retired = _copy_catalog(datadir.catalog_path, scratch / "catalog.sqlite")
        on_step("catalog-copied")
        segments = [_whole_frames(relative, handle, report) for relative, handle in opened.items()
                    if relative not in retired]
        segments = [segment for segment in segments if segment.records]
        catalog_copy = scratch / "catalog.sqlite"
        files = [{"path": b.path, "bytes": b.bytes, "sha256": b.sha256} for b in blocks]
        files += [{"path": s.relative, "bytes": len(s.data), "sha256": hashlib.sha256(s.data).hexdigest()}
                  for s in segments]
        files.append({"path": CATALOG, "bytes": catalog_copy.stat().st_size, "sha256": file_sha256(catalog_copy)})
        manifest = _manifest(datadir, blocks, segments, files)
        progress.start("backup", sum(f["bytes"] for f in files) + len(manifest))
        writer.add(MANIFEST, io.BytesIO(manifest), len(manifest))
        for block in blocks:
            _copy_block(datadir, writer, block)
        for segment in segments:
            writer.add(segment.relative, io.BytesIO(segment.data), len(segment.data))
        with open(catalog_copy, "rb") as handle:
            writer.add(CATALOG, handle, catalog_copy.stat().st_size)
    report.blocks, report.block_rows = len(blocks), sum(b.rows for b in blocks)
    report.segments, report.wal_records = len(segments), sum(s.records for s in segments)
    report.bytes_written = sum(f["bytes"] for f in files) + len(manifest)
    return report


def _open_live_segments(datadir: DataDir, stack: ExitStack) -> dict[str, BinaryIO]:
    """Open every WAL segment now; one deleted before we open it was published, so the catalog copy has it."""
    opened = {}
    for path in all_segment_paths(datadir.wal):
        try:
            opened[str(path.relative_to(datadir.root))] = stack.enter_context(open(path, "rb"))
        except FileNotFoundError:
            continue
    return opened


def _copy_catalog(source_path: Path, target_path: Path) -> tuple[list[BlockRecord], frozenset[str]]:
    """Copy the catalog with SQLite's backup API in one step (one read transaction: a consistent state),
    then make the copy self-contained: no retired segments (none are in the backup), rollback journal."""
    source = connect_read_only(source_path)
    target = sqlite3.connect(target_path, isolation_level=None)
    try:
        source.backup(target)
        current = snapshot(target)
        target.execute("DELETE FROM retired_segments")
        target.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error as error:
        raise StorageError(f"cannot copy the catalog {source_path}: {error}", path=str(source_path)) from None
    finally:
        target.close()
        source.close()
    return list(current.blocks), current.retired_segments


def _whole_frames(relative: str, handle: BinaryIO, report: BackupReport) -> _Segment:
    """The segment's bytes up to the end of its last whole frame: a torn tail was never acknowledged."""
    data = handle.read()
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        return _Segment(relative, b"", 0)
    frames, end, problem = parse_frames(memoryview(data)[len(MAGIC):], len(MAGIC))
    if problem is not None and problem.kind != "torn_tail":
        report.warnings.append(f"{relative} is {problem.kind} at offset {problem.offset}: backed up the "
                               f"{len(frames)} records before it (run `countdb verify`)")
    return _Segment(relative, data[:end], len(frames))


def _copy_block(datadir: DataDir, writer: BackupWriter, block: BlockRecord) -> None:
    try:
        handle = open(datadir.root / block.path, "rb")
    except FileNotFoundError:
        raise Raced(f"block {block.path} was deleted (compaction replaced it)") from None
    with handle:
        digest = writer.add(block.path, handle, block.bytes)
        if handle.read(1):
            digest = "longer than the catalog says"
    if digest != block.sha256:
        raise StorageError(f"block {block.path} is damaged ({digest} is not the catalog's sha256 {block.sha256}); "
                           "run `countdb verify --repair`, then back up again", path=block.path)


def _manifest(datadir: DataDir, blocks: list[BlockRecord], segments: list[_Segment], files: list[dict]) -> bytes:
    """backup.json (docs/format/backup.md): what the backup holds, each file with its size and sha256."""
    return json.dumps({
        "format": FORMAT,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "count_version": __version__,
        "source": str(datadir.root.resolve()),
        "blocks": len(blocks),
        "block_rows": sum(b.rows for b in blocks),
        "wal_segments": len(segments),
        "wal_records": sum(s.records for s in segments),
        "files": files,
    }, indent=1).encode() + b"\n"
