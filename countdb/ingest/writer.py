"""Writer: validate → WAL append → buffer → acknowledge, and hand full or old buffers to the Flusher.

Invariant: the buffer holds exactly the records of the WAL's current segment; rotation and buffer swap
happen under one lock, so a flushed block replaces precisely the segment it retires.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pyarrow as pa

from countdb.errors import CountError, StorageError, Unavailable
from countdb.ingest.flush import Flusher
from countdb.obs import metrics
from countdb.storage.space import DiskSpace, is_out_of_space
from countdb.wal.log import WriteAheadLog
from countdb.wal.record import Columns, encode_points, records_to_table

log = logging.getLogger(__name__)

Points = Columns | pa.RecordBatch
# NOTE: 30, not 10: 100 k-point Arrow requests then overlap the background flush instead of waiting for it:
# 4.66 → 5.05-5.46 M points/s on 2 cores (issue 3), for a few MB more per worker (dictionary-encoded points).
MAX_UNFLUSHED_FACTOR = 30  # writes wait once unflushed points exceed this many buffers…
BACKPRESSURE_WAIT_SECONDS = 10.0  # …and get 503 if flushes have not made room by then
FLUSH_FAILURE_LOG_SECONDS = 30.0  # a flush failing again and again (a full disk) is logged this often


class SequenceClock:
    """Write sequence numbers: wall-clock nanoseconds, strictly increasing within the process, so the
    later of two writes to one (series, ts) wins across workers too. A stamp seen from another node's
    coordinator moves the clock past it, so a later write here still wins over it."""

    def __init__(self):
        self._last = 0

    def next(self) -> int:
        self._last = max(self._last + 1, time.time_ns())
        return self._last

    def witness(self, seq: int) -> int:
        self._last = max(self._last, seq)
        return seq


@dataclass
class Buffer:
    records: list[tuple[int, Points]] = field(default_factory=list)
    points: int = 0
    first_monotonic: float = 0.0

    def add(self, seq: int, points: Points) -> None:
        if not self.records:
            self.first_monotonic = time.monotonic()
        self.records.append((seq, points))
        self.points += len(points) if isinstance(points, Columns) else points.num_rows


@dataclass
class Sealed:
    records: list[tuple[int, Points]]
    segment: Path
    points: int


class Writer:
    """One per worker process. `write` returns once the points are acknowledged-durable:
    in the kernel (WAL_FSYNC=interval) or on disk (WAL_FSYNC=always, group-committed)."""

    def __init__(self, wal: WriteAheadLog, flusher: Flusher, buffer_points: int, fsync_always: bool,
                 space: DiskSpace | None = None):
        self.wal = wal
        self.flusher = flusher
        self.buffer_points = buffer_points
        self.fsync_always = fsync_always
        self.space = space or DiskSpace(wal.root, 0)
        self.flush_failing_since: float | None = None  # monotonic time of the first of consecutive failures
        self._failure_logged = 0.0
        self.flush_wanted = threading.Event()
        self._clock = SequenceClock()
        self._buffer = Buffer()
        self._pending: list[Sealed] = []
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._flush_lock = threading.Lock()
        self._closed = False

    def write(self, batches: list[Points], seq: int | None = None) -> int:
        """Append validated points to the WAL and the buffer; returns how many. Raises Unavailable (StorageFull
        when the disk is full: nothing of the request is written), StorageError.
        `seq` is the write's stamp when a cluster coordinator gave it one (every copy of a write carries the
        same stamp); by default this writer stamps it."""
        def stamps() -> list[int]:
            return [self._clock.next() if seq is None else self._clock.witness(seq)] * len(batches)
        return self._store(batches, stamps)

    def write_stamped(self, writes: list[tuple[int, Points]]) -> int:
        """Store several writes, each with the stamp its coordinator gave it (a delivered batch of hints: up to
        HINTS_PER_REQUEST writes), all or none, under one hold of the lock and with one WAL append; returns how many
        points. Raises as write()."""
        return self._store([points for _, points in writes], lambda: [self._clock.witness(seq) for seq, _ in writes])

    def _store(self, batches: list[Points], stamps: Callable[[], list[int]]) -> int:
        """Append `batches` to the WAL and the buffer, with the stamps `stamps()` gives them under the lock.
        NOTE: one append for them all, cut off whole if it fails: a record per append let a disk that filled in the
        middle of an Arrow request keep its first batches while the client was told nothing was written."""
        if not batches:
            return 0
        encoded = [encode_points(points) for points in batches]
        count = sum(len(p) if isinstance(p, Columns) else p.num_rows for p in batches)
        self._check_space(count)
        with self._lock:
            self._await_room(count)
            if self._closed:
                metrics.reject_points("unavailable", count)
                raise Unavailable("node is shutting down")
            seqs = stamps()
            try:
                position = self.wal.append_all_unsynced(
                    [(record_type, seq, payload) for (record_type, payload), seq in zip(encoded, seqs)])
            except OSError as error:
                metrics.reject_points("storage", count)
                if is_out_of_space(error):
                    raise self.space.full() from None
                raise StorageError(f"WAL append failed: {error.strerror}", path=str(self.wal.current_path)) from None
            for seq, points in zip(seqs, batches):
                self._buffer.add(seq, points)
            full = self._buffer.points >= self.buffer_points
            metrics.BUFFERED_POINTS.set(self.buffered_points)
        if self.fsync_always:
            self.wal.sync_to(position)
        if full:
            self.flush_wanted.set()
        return count

    def wait_for_room(self) -> None:
        """Wait (up to BACKPRESSURE_WAIT_SECONDS) until flushes leave room; raises Unavailable otherwise.

        Called before a request's body is parsed, so waiting requests hold raw bytes, not parsed points.
        Raises StorageFull at once while the disk is full."""
        self._check_space(0)
        with self._lock:
            self._await_room(0)

    def _check_space(self, points: int) -> None:
        try:
            self.space.check()
        except Unavailable:
            metrics.reject_points("storage", points)
            raise

    def _await_room(self, points: int) -> None:
        """With the lock held: wait for room, else count `points` as rejected and raise Unavailable."""
        # NOTE: back-pressure by waiting, then 503: this bounds worker memory (issue 2: ≤ 300 MB RSS).
        if not self._room.wait_for(self._has_room, BACKPRESSURE_WAIT_SECONDS):
            metrics.reject_points("unavailable", points)
            raise Unavailable("flushes are behind ingest (or failing); refusing writes until they catch up")

    def _has_room(self) -> bool:
        unflushed = self._buffer.points + sum(s.points for s in self._pending)
        return self._closed or unflushed <= MAX_UNFLUSHED_FACTOR * self.buffer_points

    def next_seq(self) -> int:
        """A sequence number later than every write this worker acknowledged (deletes use it)."""
        with self._lock:
            return self._clock.next()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def buffered_points(self) -> int:
        return self._buffer.points + sum(s.points for s in self._pending)

    def oldest_age_seconds(self) -> float:
        with self._lock:
            return time.monotonic() - self._buffer.first_monotonic if self._buffer.records else 0.0

    def flush(self) -> int:
        """Seal the current segment and publish everything unflushed; returns points published.
        On failure the points stay in their sealed segments (still served) and are retried next time."""
        with self._flush_lock:
            with self._lock:
                self.flush_wanted.clear()
                if self._buffer.records:
                    try:
                        segment = self.wal.rotate()
                    except OSError as error:  # no room for a new segment: the buffer stays as it is
                        metrics.FLUSHES.labels("error").inc()
                        self._log_flush_failure(self._buffer.points, error)
                        return 0
                    self._pending.append(Sealed(self._buffer.records, segment, self._buffer.points))
                    self._buffer = Buffer()
                pending = list(self._pending)
            if not pending:
                return 0
            records = [record for sealed in pending for record in sealed.records]
            try:
                result = self.flusher.flush(records_to_table(records), [s.segment for s in pending])
            except (CountError, OSError) as error:
                metrics.FLUSHES.labels("error").inc()
                self._log_flush_failure(sum(s.points for s in pending), error)
                return 0
            if self.flush_failing_since is not None:
                log.warning("flushes work again after failing for %.0fs", time.monotonic() - self.flush_failing_since)
                self.flush_failing_since = None
            with self._lock:
                self._pending = self._pending[len(pending):]
                self._room.notify_all()
                metrics.BUFFERED_POINTS.set(self.buffered_points)
            log.info("flushed %d points into %d blocks in %.3fs", result.points, len(result.blocks), result.seconds)
            return result.points

    @property
    def has_unflushed_sealed(self) -> bool:
        """Whether sealed segments wait for a flush that failed (the maintainer retries them every tick)."""
        return bool(self._pending)

    def _log_flush_failure(self, points: int, error: Exception) -> None:
        """Log the first failure of a run, then one line every FLUSH_FAILURE_LOG_SECONDS (a full disk
        must not fill the log too)."""
        now = time.monotonic()
        if self.flush_failing_since is None:
            self.flush_failing_since = now
        elif now - self._failure_logged < FLUSH_FAILURE_LOG_SECONDS:
            return
        self._failure_logged = now
        log.error("flush of %d points failed (failing for %.0fs), will retry: %s", points,
                  now - self.flush_failing_since, error)

    def close(self) -> None:
        """Refuse new writes, flush everything, release the WAL (its folder is removed when empty)."""
        with self._lock:
            self._closed = True
            self._room.notify_all()
        self.flush()
        self.wal.close()
