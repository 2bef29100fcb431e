"""CompactionLoop: the background compaction thread of the node's compactor process (compaction_process.py). The
node-wide compaction lock makes it wait its turn while `countdb compact` or a cluster handoff compacts.
Errors are logged and the next round retries; the thread never dies of them. Each round that did something (or
failed) is recorded node-wide in node_state/last_compaction.json, which GET /status and the console show.

When rounds come: the first a few seconds after the process starts, then one every interval while there is
nothing to do, and while a backlog lasts (a round did work, so more may be left: one round merges at most
CompactionPolicy.max_merge_rows) the next one after a pause as long as the round took. A node restarted after a
big ingest, or one whose flushes outpace one round an interval, so works its backlog off at about half of one
core instead of one round an interval (issue 17: 141 flush files of 10 M points took over two minutes to merge;
one-series queries over them were up to 5.6x slower than over the merged files)."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import orjson

from countdb.storage.compact import CompactionReport, Compactor

log = logging.getLogger(__name__)

STOP_WAIT_SECONDS = 10.0
FIRST_ROUND_SECONDS = 5.0  # after the process starts (its interval, if shorter): start-up goes first
MIN_BACKLOG_PAUSE_SECONDS = 1.0


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
        record = self.compactor.datadir.last_compaction_path
        pause = min(self.interval_seconds, FIRST_ROUND_SECONDS)
        while not self._stop.wait(pause):
            pause = self.interval_seconds
            try:
                report = self.compactor.run()
            except Exception as error:  # noqa: BLE001 - a background thread must survive anything and say so
                if self._stop.is_set():
                    return
                log.exception("compaction failed; retrying in %.0fs", self.interval_seconds)
                record_compaction(record, None, f"{type(error).__name__}: {error}")
            else:
                # None: another compaction held the lock; a run with nothing to do is worth a record only when it
                # ends a run of failures (/health stops reporting them)
                if report is not None and (report.jobs or report.deleted_files or _failing(record)):
                    record_compaction(record, report)
                if report is not None and report.jobs:  # a backlog: pause as long as the round took
                    pause = min(self.interval_seconds, max(report.seconds, MIN_BACKLOG_PAUSE_SECONDS))


def record_compaction(path: Path, report: CompactionReport | None, error: str | None = None) -> None:
    """Replace the record of the last compaction (atomically: a reader sees the old one or the new one). A failure
    keeps the time of the first of consecutive failures in `failing_since` (GET /health reports it). Best effort: a
    full disk must not stop compaction, which frees space."""
    finished = time.time()
    document = {"finished": finished, "error": error}
    if error is not None:
        previous = last_compaction(path) or {}
        failing_since = previous.get("failing_since") if previous.get("error") else None
        document["failing_since"] = failing_since or finished
    if report is not None:
        document.update(seconds=report.seconds, jobs=len(report.jobs), deleted_files=report.deleted_files,
                        months=sorted({job["month"] for job in report.jobs}))
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        temporary.write_bytes(orjson.dumps(document))
        os.replace(temporary, path)
    except OSError as failure:
        temporary.unlink(missing_ok=True)  # a full disk may have let it be created and not written
        log.warning("could not record the last compaction in %s: %s", path, failure)


def last_compaction(path: Path) -> dict | None:
    """The record record_compaction() wrote last, or None before the node's first compaction."""
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None


def _failing(path: Path) -> bool:
    return bool((last_compaction(path) or {}).get("error"))
