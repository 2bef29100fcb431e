"""When the background compactor's rounds come: the first soon after the worker starts, the next ones back to back
(a pause as long as the round took) while rounds find work, then one an interval."""

from __future__ import annotations

import time

from countdb.datadir import DataDir
from countdb.ingest import compaction
from countdb.ingest.compaction import CompactionLoop
from countdb.storage.compact import CompactionReport
from support.waiting import wait_for


def test_rounds_follow_each_other_while_they_find_work_then_wait_the_interval(tmp_path, monkeypatch):
    monkeypatch.setattr(compaction, "FIRST_ROUND_SECONDS", 0.2)
    monkeypatch.setattr(compaction, "MIN_BACKLOG_PAUSE_SECONDS", 0.1)
    datadir = DataDir(tmp_path).create()
    busy = [CompactionReport(jobs=[{"month": "2026-01"}], seconds=0.6),
            CompactionReport(jobs=[{"month": "2026-01"}], seconds=0.01)]
    began: list[float] = []

    class Scripted:
        def __init__(self):
            self.datadir = datadir

        def run(self):
            began.append(time.monotonic())
            return busy[len(began) - 1] if len(began) <= len(busy) else CompactionReport()

        def stop(self):
            pass

        def close(self):
            pass

    started = time.monotonic()
    loop = CompactionLoop(Scripted(), 30.0)
    loop.start()
    try:
        assert wait_for(lambda: len(began) >= 3, 10)
        time.sleep(1.0)  # a fourth round would need the 30 s interval: the third found nothing to do
    finally:
        loop.stop()
    assert len(began) == 3
    assert 0.2 <= began[0] - started < 5  # not an interval after the start
    assert 0.6 <= began[1] - began[0] < 5  # as long as the busy round took
    assert 0.1 <= began[2] - began[1] < 5  # at least the minimum pause after a quick one
