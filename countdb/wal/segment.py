"""Segment files: bytes, frames, CRCs and fsync. Knows nothing of what a record means.

Invariant: a frame is appended with one write() of header+payload, so a killed process leaves either
the whole frame or a torn tail, never a frame followed by garbage.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"CNTWAL01"
HEADER = struct.Struct("<IIBq")  # payload length, crc32(type|seq|payload), record type, write sequence
MAX_PAYLOAD_BYTES = 512 * 1024 * 1024
IOV_MAX = os.sysconf("SC_IOV_MAX")  # buffers one writev may take (1,024 on Linux)


@dataclass(frozen=True)
class Frame:
    offset: int
    record_type: int
    seq: int
    payload: bytes


@dataclass(frozen=True)
class ReadProblem:
    """Why reading stopped before the end of the file. `torn` tails are normal after a crash."""

    kind: str  # "torn_tail" | "bad_crc" | "bad_length" | "bad_magic"
    offset: int


def encode_frame(record_type: int, seq: int, payload: bytes | memoryview) -> tuple[bytes, bytes | memoryview]:
    """A frame as (header, payload): written with one writev, so a large payload is never copied."""
    meta = struct.pack("<Bq", record_type, seq)
    crc = zlib.crc32(payload, zlib.crc32(meta))
    return HEADER.pack(len(payload), crc, record_type, seq), payload


class SegmentWriter:
    """Appends frames to one new segment file. Single writer; callers serialise appends."""

    def __init__(self, path: Path):
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self.size = 0
        try:
            self._write_all((MAGIC,))
        except OSError:  # a full disk: leave no segment cut inside its magic
            os.close(self._fd)
            path.unlink(missing_ok=True)
            raise

    def append_unsynced(self, frames: tuple[bytes | memoryview, ...]) -> int:
        """Write encoded frames (their parts, in order); returns the file size after them. In the kernel, not yet
        on disk.

        A failed write (disk full) is cut off again, so the frames appended after it stay readable."""
        start = self.size
        try:
            self._write_all(frames)
        except OSError:
            os.ftruncate(self._fd, start)
            self.size = start
            raise
        return self.size

    def sync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    def _write_all(self, parts: tuple[bytes | memoryview, ...]) -> None:
        views = [memoryview(part).cast("B") for part in parts if len(part)]
        while views:
            written = os.writev(self._fd, views[:IOV_MAX])
            self.size += written
            while views and written >= len(views[0]):
                written -= len(views.pop(0))
            if views:
                views[0] = views[0][written:]


def parse_frames(data: bytes | memoryview, base_offset: int) -> tuple[list[Frame], int, ReadProblem | None]:
    """Decode whole frames from `data` (which starts at file offset `base_offset`).

    Returns the frames, the file offset just after the last good frame, and why decoding stopped early
    (None when every byte was used). An incomplete frame at the end is a `torn_tail`.
    """
    frames: list[Frame] = []
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < HEADER.size:
            return frames, base_offset + pos, ReadProblem("torn_tail", base_offset + pos)
        length, crc, record_type, seq = HEADER.unpack_from(data, pos)
        if length > MAX_PAYLOAD_BYTES:
            return frames, base_offset + pos, ReadProblem("bad_length", base_offset + pos)
        start, stop = pos + HEADER.size, pos + HEADER.size + length
        if stop > end:
            return frames, base_offset + pos, ReadProblem("torn_tail", base_offset + pos)
        payload = bytes(data[start:stop])
        if zlib.crc32(payload, zlib.crc32(struct.pack("<Bq", record_type, seq))) != crc:
            kind = "torn_tail" if stop == end else "bad_crc"
            return frames, base_offset + pos, ReadProblem(kind, base_offset + pos)
        frames.append(Frame(base_offset + pos, record_type, seq, payload))
        pos = stop
    return frames, base_offset + pos, None


def first_stamp(path: Path) -> int | None:
    """The write stamp in the header of a segment's first frame: its oldest outside a cluster, where each writer
    stamps and appends under one lock. None when it has no whole header (yet), is not a segment, or is gone."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(MAGIC) + HEADER.size)
    except FileNotFoundError:
        return None
    if len(head) < len(MAGIC) + HEADER.size or head[: len(MAGIC)] != MAGIC:
        return None
    return HEADER.unpack_from(head, len(MAGIC))[3]


def read_segment(path: Path) -> tuple[list[Frame], int, ReadProblem | None]:
    """Every whole frame of a segment file, the offset after the last, and the problem that stopped it."""
    data = path.read_bytes()
    if len(data) < len(MAGIC):
        return [], 0, ReadProblem("torn_tail", 0) if data else None
    if data[: len(MAGIC)] != MAGIC:
        return [], 0, ReadProblem("bad_magic", 0)
    return parse_frames(memoryview(data)[len(MAGIC):], len(MAGIC))
