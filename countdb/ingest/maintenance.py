"""Maintainer: the background thread of each worker — WAL fsync interval, flush by size or age or when asked
node-wide (DataDir.request_flush), adopting the WAL of dead workers. Errors are logged and retried at the next
tick; the thread never dies of them."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from countdb.datadir import DataDir
from countdb.ingest.recovery import recover_dead_writers
from countdb.ingest.writer import Writer
from countdb.obs.memory import release_free_memory

log = logging.getLogger(__name__)

ADOPT_EVERY_SECONDS = 5.0


class Maintainer:
    def __init__(self, writer: Writer, datadir: DataDir, flush_interval_seconds: float,
                 fsync_interval_seconds: float, strict_replay: bool):
        self.writer = writer
        self.datadir = datadir
        self.flush_interval_seconds = flush_interval_seconds
        self.tick_seconds = min(fsync_interval_seconds, 1.0, flush_interval_seconds / 4)
        self.strict_replay = strict_replay
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="count-maintainer", daemon=True)
        self._next_adoption = 0.0
        self._flush_requested = self._request_time()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.writer.flush_wanted.set()
        self._thread.join(timeout=30)

    def _request_time(self) -> float:
        try:
            return self.datadir.flush_request_path.stat().st_mtime
        except OSError:
            return 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.writer.flush_wanted.wait(self.tick_seconds)
            if self._stop.is_set():
                return
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - a background thread must survive anything and say so
                log.exception("maintenance tick failed; retrying at the next tick")

    def tick(self) -> None:
        self.writer.wal.sync()
        requested = self._request_time()
        if requested != self._flush_requested:
            self._flush_requested = requested
            self.writer.flush_wanted.set()
        if (self.writer.flush_wanted.is_set() or self.writer.has_unflushed_sealed
                or self.writer.oldest_age_seconds() >= self.flush_interval_seconds):
            if self.writer.flush():
                release_free_memory()  # NOTE: issue 2, worker RSS ≤ 300 MB; ~1 ms per flush
        if time.monotonic() >= self._next_adoption:
            self._next_adoption = time.monotonic() + ADOPT_EVERY_SECONDS
            own: Path = self.writer.wal.dir
            recover_dead_writers(self.datadir, self.writer.flusher, self.strict_replay, own_dir=own)
