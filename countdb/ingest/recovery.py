"""Recovery: replays the WAL folders of dead writers (killed workers, a crashed node) into blocks.

Invariant: a dead writer's folder is removed only after its points are published. A torn tail of a writer's
last segment (a record that was never acknowledged) is dropped and logged; other damage stops replay
(WAL_REPLAY=strict) or is cut off at its offset, the segment copied to node_state/quarantine/ and registered
in damaged_files (WAL_REPLAY=repair).
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from countdb.catalog.blocks import forget_retired, snapshot
from countdb.catalog.compaction import block_files_in_use
from countdb.catalog.damage import DamagedFile, record_damage
from countdb.catalog.db import transaction
from countdb.datadir import DataDir, exclusive_lock
from countdb.errors import CorruptSegment
from countdb.ingest.flush import Flusher
from countdb.storage.blocks import remove_unpublished
from countdb.storage.damage import copy_aside
from countdb.wal.log import claim_dead_writers, remove_writer_dir, segment_paths
from countdb.wal.record import decode_points, records_to_table
from countdb.wal.segment import read_segment

log = logging.getLogger(__name__)


def recover_dead_writers(datadir: DataDir, flusher: Flusher, strict: bool, own_dir: Path | None = None) -> int:
    """Publish every dead writer's points and remove its folder; returns how many points were replayed."""
    claimed = claim_dead_writers(datadir.wal, own_dir)
    if not claimed:
        return 0
    with exclusive_lock(datadir.flush_lock_path):
        # NOTE: retired blocks count as in use: a query may still read them (issue 7, compaction).
        remove_unpublished(datadir.root, block_files_in_use(flusher.catalog))
    replayed = 0
    for lock in claimed:
        retired = snapshot(flusher.catalog).retired_segments
        names = [str(p.relative_to(datadir.root)) for p in segment_paths(lock.writer_dir)]
        live = [datadir.root / name for name in names if name not in retired]
        records = [record for segment in live
                   for record in _replay(segment, datadir, flusher.catalog, strict, segment == live[-1])]
        result = flusher.flush(records_to_table(records), live)
        replayed += result.points
        log.warning("recovered %d points from dead writer %s (%d segments)", result.points,
                    lock.writer_dir.name, len(live))
        remove_writer_dir(lock)
        forget_retired(flusher.catalog, [name for name in names if name in retired])
    return replayed


def _replay(segment: Path, datadir: DataDir, catalog: sqlite3.Connection, strict: bool, last: bool) -> list:
    """The records of one segment. A torn tail is normal in a writer's last segment only (its last record was
    never acknowledged); anywhere else, and any other damage, acknowledged points were lost."""
    frames, end, problem = read_segment(segment)
    if problem is not None and problem.kind == "torn_tail" and last:
        log.warning("dropped torn tail of %s at offset %d (never acknowledged)", segment, problem.offset)
    elif problem is not None:
        if strict:
            raise CorruptSegment(f"WAL record is {problem.kind}", path=str(segment), offset=problem.offset)
        relative = str(segment.relative_to(datadir.root))
        copy = copy_aside(datadir, relative)
        detail = f"{problem.kind} at offset {problem.offset}: replayed the {len(frames)} records before it"
        with transaction(catalog):
            record_damage(catalog, DamagedFile(relative, "wal", problem.kind, detail, copy))
        log.error("WAL segment %s is %s at offset %d: kept %d records before it, copied the segment to %s",
                  segment, problem.kind, problem.offset, len(frames), copy)
    return [(frame.seq, decode_points(frame.record_type, frame.payload)) for frame in frames]
