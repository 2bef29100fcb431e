"""UnflushedReader: the points in live WAL segments, of every writer process, as one Arrow table.

Queries read not-yet-flushed points through this, never through a writer's memory: gunicorn workers
share no memory, but they share files. Each segment is tailed incrementally (only new bytes are decoded).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pyarrow as pa

from countdb.wal.record import UNFLUSHED_SCHEMA, decode_points, records_to_table
from countdb.wal.segment import MAGIC, parse_frames

log = logging.getLogger(__name__)

MAX_CHUNKS_PER_SEGMENT = 32


class SegmentVanished(Exception):
    """A segment listed as live was deleted before it could be opened: its points are now in a block."""


class SegmentTail:
    """Follows one segment file as its writer appends; keeps the decoded points."""

    def __init__(self, path: Path):
        try:
            self._fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise SegmentVanished(str(path)) from None
        self.path = path
        self._offset = len(MAGIC)
        self._next_pos = 0
        self._chunks: list[pa.Table] = []
        self._reported = False

    def refresh(self) -> list[pa.Table]:
        """Decode whatever whole frames were appended since the last call; returns every chunk so far."""
        size = os.fstat(self._fd).st_size
        if size > self._offset:
            data = os.pread(self._fd, size - self._offset, self._offset)
            frames, self._offset, problem = parse_frames(data, self._offset)
            if problem is not None and problem.kind != "torn_tail" and not self._reported:
                self._reported = True
                log.error("WAL segment %s unreadable at offset %d (%s); later points in it are not served",
                          self.path, problem.offset, problem.kind)
            if frames:
                table = records_to_table([(f.seq, decode_points(f.record_type, f.payload)) for f in frames],
                                         self._next_pos)
                self._next_pos += table.num_rows
                self._chunks.append(table)
                if len(self._chunks) > MAX_CHUNKS_PER_SEGMENT:
                    self._chunks = [pa.concat_tables(self._chunks).combine_chunks()]
        return self._chunks

    @property
    def offset(self) -> int:
        """Bytes of the segment decoded so far."""
        return self._offset

    def close(self) -> None:
        os.close(self._fd)


class UnflushedReader:
    """Points of the live segments named by a catalog snapshot. Thread-safe."""

    def __init__(self, root: Path):
        self.root = root
        self._tails: dict[str, SegmentTail] = {}
        self._lock = threading.Lock()
        self._last: tuple[tuple, pa.Table] = ((), UNFLUSHED_SCHEMA.empty_table())

    def read(self, live_segments: list[str]) -> pa.Table:
        """Every point in `live_segments` (paths relative to DATA_DIR). Raises SegmentVanished when one is
        gone: the caller takes a new catalog snapshot, which will list the block that replaced it."""
        with self._lock:
            wanted = set(live_segments)
            for gone in [path for path in self._tails if path not in wanted]:
                self._tails.pop(gone).close()
            chunks: list[pa.Table] = []
            state = []
            for relative in live_segments:
                tail = self._tails.get(relative)
                if tail is None:
                    tail = self._tails[relative] = SegmentTail(self.root / relative)
                chunks.extend(tail.refresh())
                state.append((relative, tail.offset))
            # NOTE: an unchanged WAL answers the same table object: no concat per query, and callers may cache
            # what they derive from it by identity (issue 4: query overhead).
            if tuple(state) != self._last[0]:
                # one series dictionary for every chunk, so group-bys and joins over the table work
                table = pa.concat_tables(chunks).unify_dictionaries() if chunks else UNFLUSHED_SCHEMA.empty_table()
                self._last = (tuple(state), table)
            return self._last[1]

    def close(self) -> None:
        with self._lock:
            for tail in self._tails.values():
                tail.close()
            self._tails.clear()
