"""WriteAheadLog: one writer's folder of segments under wal/<writer-id>/, locked by that writer.

Invariant: only the process holding <writer-id>/lock appends to its segments; a folder whose lock can be
taken belongs to a dead writer and may be replayed and removed by whoever took the lock.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import secrets
import shutil
import threading
from pathlib import Path

from countdb.datadir import fsync_dir
from countdb.wal.segment import MAGIC, SegmentWriter, encode_frame, first_stamp

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".wal"
OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)
LOCK_NAME = "lock"


def segment_name(number: int) -> str:
    return f"{number:08d}{SEGMENT_SUFFIX}"


def segment_paths(writer_dir: Path) -> list[Path]:
    """The segments of one writer folder, oldest first."""
    try:
        return sorted(p for p in writer_dir.iterdir() if p.name.endswith(SEGMENT_SUFFIX))
    except FileNotFoundError:
        return []


def writer_dirs(wal_root: Path) -> list[Path]:
    """Every writer folder, live or dead (hidden folders are writers still being born)."""
    try:
        return sorted(p for p in wal_root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except FileNotFoundError:
        return []


def all_segment_paths(wal_root: Path) -> list[Path]:
    """Every segment of every writer, live or dead."""
    return [segment for writer in writer_dirs(wal_root) for segment in segment_paths(writer)]


def oldest_unflushed_stamp(wal_root: Path) -> int | None:
    """The oldest write stamp in any segment still on disk, live or dead (None: no frame anywhere).

    A flush or a recovery deletes a segment only after publishing its points, so each unflushed write is, at any
    moment, in a segment this finds or already in the catalog."""
    stamps = [stamp for path in all_segment_paths(wal_root) if (stamp := first_stamp(path)) is not None]
    return min(stamps, default=None)


class WriterLock:
    """An flock on <writer-dir>/lock; the kernel drops it when the holder dies, however it dies."""

    def __init__(self, writer_dir: Path):
        self.writer_dir = writer_dir
        self._fd = os.open(writer_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            self.release()
            return False

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def claim_dead_writers(wal_root: Path, own_dir: Path | None = None) -> list[WriterLock]:
    """Lock every writer folder whose owner is gone. The caller replays it, then calls remove_writer_dir."""
    claimed = []
    for writer_dir in writer_dirs(wal_root):
        if writer_dir == own_dir:
            continue
        try:
            lock = WriterLock(writer_dir)
        except FileNotFoundError:
            continue  # removed by another claimant a moment ago
        if lock.try_acquire():
            claimed.append(lock)
    return claimed


def any_live_writer(wal_root: Path) -> bool:
    """Whether some writer folder's lock is held: a worker process of this node is running."""
    for writer_dir in writer_dirs(wal_root):
        try:
            lock = WriterLock(writer_dir)
        except FileNotFoundError:
            continue
        if not lock.try_acquire():
            return True
        lock.release()
    return False


def remove_writer_dir(lock: WriterLock) -> None:
    """Delete a claimed, fully replayed writer folder, then release its lock."""
    shutil.rmtree(lock.writer_dir, ignore_errors=True)
    fsync_dir(lock.writer_dir.parent)
    lock.release()


class WriteAheadLog:
    """Appends frames for one writer process; rotates segments; fsyncs on demand or in groups.

    `append_unsynced` returns once the frame is in the kernel (survives kill -9, not power loss).
    `append` returns once it is on disk; concurrent callers share one fsync (group commit).
    """

    def __init__(self, wal_root: Path, writer_id: str | None = None):
        self.root = wal_root
        self.writer_id = writer_id or f"{os.getpid()}-{secrets.token_hex(4)}"
        self.dir = wal_root / self.writer_id
        self._lock: WriterLock | None = None
        self._number = 0
        self._segment: SegmentWriter | None = None
        self._write_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._written_total = 0
        self._synced_total = 0
        try:
            self._open_first()
        except OSError as error:
            # NOTE: a worker starting on a full disk still serves queries; its first write makes the
            # folder and segment, or is refused as a full disk (issue 14).
            if error.errno not in OUT_OF_SPACE:
                raise
            log.warning("no space for a WAL segment in %s yet: it is made by the first write", wal_root)

    def _open_first(self) -> SegmentWriter:
        """This writer's folder (locked) and first segment, unless they exist; with _write_lock held or in
        __init__."""
        if self._lock is None:
            # NOTE: the folder is locked under a hidden name, then renamed, so no one can mistake it for a
            # dead writer's folder in the moment between mkdir and flock.
            hidden = self.root / f".{self.writer_id}.new"
            hidden.mkdir(parents=True, exist_ok=True)
            lock = WriterLock(hidden)
            lock.try_acquire()
            hidden.rename(self.dir)
            lock.writer_dir = self.dir
            self._lock = lock
            fsync_dir(self.root)
        if self._segment is None:
            self._segment = self._open_next()
        return self._segment

    @property
    def current_path(self) -> Path:
        return self._segment.path if self._segment else self.dir / segment_name(self._number + 1)

    def append_unsynced(self, record_type: int, seq: int, payload: bytes | memoryview) -> int:
        """Append one record; returns a position to pass to sync_to(). Durable against process death only.
        Raises OSError (ENOSPC: a full disk) with nothing appended."""
        return self.append_all_unsynced([(record_type, seq, payload)])

    def append_all_unsynced(self, records: list[tuple[int, int, bytes | memoryview]]) -> int:
        """Append (record_type, seq, payload) records with one system call, all or none of them (OSError); returns
        a position to pass to sync_to(). A delivered batch of hints is ~200 writes, each with its own stamp."""
        parts = tuple(part for record in records for part in encode_frame(*record))
        with self._write_lock:
            self._open_first().append_unsynced(parts)
            self._written_total += sum(len(part) for part in parts)
            return self._written_total

    def append(self, record_type: int, seq: int, payload: bytes | memoryview) -> None:
        """Append one record and return only after it is fsynced (group-committed)."""
        self.sync_to(self.append_unsynced(record_type, seq, payload))

    def sync_to(self, position: int) -> None:
        """Block until every byte up to `position` is on disk; one fsync serves every waiter behind it."""
        with self._sync_lock:
            if self._synced_total >= position:
                return
            with self._write_lock:
                target, segment = self._written_total, self._segment
            if segment is not None:
                segment.sync()
            self._synced_total = max(self._synced_total, target)

    def sync(self) -> None:
        """fsync whatever is written (the interval flusher calls this)."""
        self.sync_to(self._written_total)

    def rotate(self) -> Path:
        """Seal the current segment (fsynced) and start a new one; returns the sealed segment's path.
        Raises OSError (a full disk) with nothing changed: appends go on to the current segment."""
        with self._sync_lock, self._write_lock:
            self._open_first()
            fresh = self._open_next()
            sealed, self._segment = self._segment, fresh
            sealed.close()
            self._synced_total = self._written_total
        return sealed.path

    def close(self) -> None:
        """Seal the last segment; remove this writer's folder when no segment in it holds a record."""
        with self._sync_lock, self._write_lock:
            if self._lock is None:
                return  # never made: the disk was full for this writer's whole life
            if self._segment is not None:
                self._segment.close()
            if all(path.stat().st_size <= len(MAGIC) for path in segment_paths(self.dir)):
                shutil.rmtree(self.dir, ignore_errors=True)
                fsync_dir(self.dir.parent)
        self._lock.release()

    def _open_next(self) -> SegmentWriter:
        self._number += 1
        writer = SegmentWriter(self.dir / segment_name(self._number))
        fsync_dir(self.dir)
        return writer
