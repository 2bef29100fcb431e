"""CompactionLoop: the background compaction thread of each worker. Every worker runs one, and the
node-wide compaction lock lets exactly one of them compact at a time, whatever the number of workers.
Errors are logged and the next round retries; the thread never dies of them."""

from __future__ import annotations

import logging
import threading

from countdb.storage.compact import Compactor

log = logging.getLogger(__name__)

STOP_WAIT_SECONDS = 10.0


class CompactionLoop:
    def __init__(self, compactor: Compactor, interval_seconds: float):
        """`interval_seconds` between attempts; 0 turns background compaction off (`countdb compact` only)."""
        self.compactor = compactor
        self.interval_seconds = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="count-compactor", daemon=True)

    def start(self) -> None:
        if self.interval_seconds > 0:
            self._thread.start()

    def stop(self) -> None:
        """End the thread (a running compaction is interrupted and publishes nothing), then release files."""
        self._stop.set()
        if self._thread.is_alive():
            self.compactor.stop()
            self._thread.join(STOP_WAIT_SECONDS)
        if not self._thread.is_alive():
            self.compactor.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            try:
                self.compactor.run()
            except Exception:  # noqa: BLE001 - a background thread must survive anything and say so
                if self._stop.is_set():
                    return
                log.exception("compaction failed; retrying in %.0fs", self.interval_seconds)
