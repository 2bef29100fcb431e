"""The WAL half of `countdb verify`: every live segment of every writer reads to its end and decodes.

A torn tail of a writer's last segment is a note (that record was never acknowledged); any other damage is
a problem. Repair touches dead writers only: it copies the segment into the quarantine and cuts it where
the damage starts, as replay would, so the records before it stay.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from pathlib import Path

import pyarrow as pa

from countdb.admin.findings import Finding
from countdb.catalog.damage import DamagedFile, record_damage
from countdb.catalog.db import transaction
from countdb.datadir import DataDir
from countdb.storage.damage import copy_aside
from countdb.wal.log import WriterLock, segment_paths, writer_dirs
from countdb.wal.record import decode_points
from countdb.wal.segment import read_segment


def check_wal(datadir: DataDir, catalog: sqlite3.Connection, retired: frozenset[str],
              repair: bool) -> tuple[list[Finding], int]:
    """Findings about the WAL, and how many live segments were read."""
    findings, checked = [], 0
    for writer_dir in writer_dirs(datadir.wal):
        live = [s for s in segment_paths(writer_dir) if str(s.relative_to(datadir.root)) not in retired]
        for segment in live:
            checked += 1
            damage = _damage_in(segment)
            if damage is None:
                continue
            kind, offset, detail = damage
            relative = str(segment.relative_to(datadir.root))
            if kind == "torn_tail" and segment == live[-1]:
                findings.append(Finding("note", "wal:torn_tail", relative, f"{detail}; that record was never "
                                        "acknowledged and is dropped at replay"))
                continue
            action = _cut_at_damage(datadir, catalog, segment, kind, offset, detail) if repair else ""
            findings.append(Finding("problem", f"wal:{kind}", relative, detail, action))
    return findings, checked


def _damage_in(segment: Path) -> tuple[str, int, str] | None:
    """(kind, offset, detail) of the first unreadable byte of a segment, or None when it reads to its end."""
    try:
        frames, _, problem = read_segment(segment)
    except FileNotFoundError:
        return None  # retired and deleted since it was listed: a flush published it
    for frame in frames:
        try:
            decode_points(frame.record_type, frame.payload)
        except (ValueError, struct.error, pa.ArrowException) as error:
            return "undecodable", frame.offset, f"the record at offset {frame.offset} does not decode: {error}"
    if problem is None:
        return None
    return problem.kind, problem.offset, f"{problem.kind} at offset {problem.offset}; the {len(frames)} " \
                                         "records before it are readable"


def _cut_at_damage(datadir: DataDir, catalog: sqlite3.Connection, segment: Path, kind: str, offset: int,
                   detail: str) -> str:
    try:
        lock = WriterLock(segment.parent)
    except FileNotFoundError:
        return "not repaired: a running worker replayed this folder meanwhile"
    if not lock.try_acquire():
        return "not repaired: its worker is running (it flushes these points from memory)"
    try:
        relative = str(segment.relative_to(datadir.root))
        kept = copy_aside(datadir, relative)
        os.truncate(segment, offset)
        with open(segment, "rb+") as handle:
            os.fsync(handle.fileno())
        with transaction(catalog):
            record_damage(catalog, DamagedFile(relative, "wal", kind, detail, kept))
    finally:
        lock.release()
    return f"copied to {kept}; cut at offset {offset}"
