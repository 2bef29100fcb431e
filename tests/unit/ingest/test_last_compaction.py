"""The node-wide record of the last background compaction (GET /status, the console's Node view): written whole,
read back, a failure recorded with its error and when failures began, and nothing (not an error) before the first
run or if unreadable."""

from __future__ import annotations

import time

from countdb.datadir import DataDir
from countdb.ingest.compaction import CompactionLoop, last_compaction, record_compaction
from countdb.storage.compact import CompactionReport
from support.waiting import wait_for


def test_a_run_is_recorded_and_read_back(tmp_path):
    path = tmp_path / "last_compaction.json"
    assert last_compaction(path) is None
    report = CompactionReport(jobs=[{"month": "2026-02"}, {"month": "2026-01"}, {"month": "2026-02"}], deleted_files=3,
                              seconds=1.25)
    before = time.time()
    record_compaction(path, report)
    recorded = last_compaction(path)
    assert before <= recorded.pop("finished") <= time.time()
    assert recorded == {"error": None, "seconds": 1.25, "jobs": 3, "deleted_files": 3, "months": ["2026-01", "2026-02"]}
    assert [p.name for p in tmp_path.iterdir()] == ["last_compaction.json"]  # no temporary file left


def test_a_failure_replaces_the_record_with_its_error(tmp_path):
    path = tmp_path / "last_compaction.json"
    record_compaction(path, CompactionReport(jobs=[{"month": "2026-01"}]))
    record_compaction(path, None, "StorageError: No space left on device")
    recorded = last_compaction(path)
    assert recorded["error"] == "StorageError: No space left on device" and "jobs" not in recorded


def test_an_unreadable_record_reads_as_none(tmp_path):
    path = tmp_path / "last_compaction.json"
    path.write_bytes(b"{half")
    assert last_compaction(path) is None
    record_compaction(tmp_path / "missing" / "last_compaction.json", CompactionReport())  # logged, not raised


def test_a_record_that_cannot_be_written_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "last_compaction.json"

    def full(self, data):
        self.touch()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(path), "write_bytes", full)
    record_compaction(path, CompactionReport())
    assert list(tmp_path.iterdir()) == []


def test_consecutive_failures_keep_when_they_began_and_a_success_ends_them(tmp_path):
    path = tmp_path / "last_compaction.json"
    record_compaction(path, None, "OSError: first")
    began = last_compaction(path)["failing_since"]
    time.sleep(0.01)
    record_compaction(path, None, "OSError: second")
    again = last_compaction(path)
    assert again["error"] == "OSError: second" and again["failing_since"] == began < again["finished"]
    record_compaction(path, CompactionReport())
    assert last_compaction(path)["error"] is None and "failing_since" not in last_compaction(path)
    record_compaction(path, None, "OSError: third")
    assert last_compaction(path)["failing_since"] > began


def test_the_loop_records_a_quiet_success_only_when_it_ends_failures(tmp_path):
    datadir = DataDir(tmp_path).create()
    outcomes = [CompactionReport(), RuntimeError("staging area gone"), CompactionReport(), CompactionReport()]
    seen = []  # the record as each run began

    class Scripted:
        def __init__(self):
            self.datadir = datadir

        def run(self):
            seen.append(last_compaction(datadir.last_compaction_path))
            outcome = outcomes[min(len(seen), len(outcomes)) - 1]
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

        def stop(self):
            pass

        def close(self):
            pass

    loop = CompactionLoop(Scripted(), 0.01)
    loop.start()
    try:
        assert wait_for(lambda: len(seen) >= 4, 10)
    finally:
        loop.stop()
    assert seen[0] is None and seen[1] is None  # nothing to do: no record
    assert seen[2]["error"] == "RuntimeError: staging area gone"
    assert seen[3]["error"] is None  # the quiet run after the failure ended it
