"""Compactor on real files: Flusher-written blocks in, fewer sorted blocks out, the same visible points;
shadows, tombstones and retention applied; replaced files kept until their grace period ends."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import duckdb
import pytest

from countdb.catalog.blocks import snapshot
from countdb.catalog.db import connect
from countdb.catalog.migrate import migrate
from countdb.catalog.tombstones import add_tombstone
from countdb.datadir import DataDir, try_exclusive_lock
from countdb.ingest.flush import Flusher
from countdb.model import YearMonth
from countdb.query.engine import QueryEngine
from countdb.storage.compact import Compactor, clean_at_start, pending_compaction
from countdb.storage.compact_plan import CompactionPolicy

from support.flushing import flush
from support.query import series_points

JAN = YearMonth(2024, 1).start_ms()
FEB = YearMonth(2024, 2).start_ms()


@pytest.fixture
def node(tmp_path):
    datadir = DataDir(tmp_path / "data").create()
    migrate(datadir.catalog_path)
    flusher = Flusher(datadir, connect(datadir.catalog_path))
    engine = QueryEngine(datadir, memory_limit_mb=256)
    yield datadir, flusher, engine
    engine.close()
    flusher.close()
    flusher.catalog.close()


def blocks_of(datadir: DataDir, kind: str = "points") -> list:
    catalog = connect(datadir.catalog_path)
    try:
        return [b for b in snapshot(catalog).blocks if b.kind == kind]
    finally:
        catalog.close()


def compactor(datadir: DataDir, retention_days: int = 0, grace_seconds: float = 3600.0, now=None,
              policy: CompactionPolicy = CompactionPolicy(), settled=None) -> Compactor:
    return Compactor(datadir, retention_days, grace_seconds, policy, **({"clock": now} if now else {}),
                     settled=settled)


def test_small_blocks_merge_into_one_sorted_block_with_the_same_points(node):
    datadir, flusher, engine = node
    for n in range(6):
        flush(flusher, n + 1, [(f"s{n % 3}", JAN + 1000 * n + i, float(n * 100 + i)) for i in range(50)])
    before = {s: series_points(engine, s, JAN, FEB) for s in ("s0", "s1", "s2")}
    c = compactor(datadir)
    report = c.run(force=True)
    c.close()
    assert len(blocks_of(datadir)) == 1 and report.jobs[0]["blocks_in"] == 6
    assert {s: series_points(engine, s, JAN, FEB) for s in ("s0", "s1", "s2")} == before
    (block,) = blocks_of(datadir)
    rows = duckdb.sql(f"SELECT series, ts FROM read_parquet('{datadir.root / block.path}')").fetchall()
    assert rows == sorted(rows) and len(rows) == 300


def test_merge_applies_shadows_so_the_last_write_wins_and_the_shadows_go(node):
    datadir, flusher, engine = node
    flush(flusher, 1, [("lww", JAN + i, 1.0) for i in range(10)])
    flush(flusher, 2, [("lww", JAN + i, 2.0) for i in range(0, 10, 2)])
    flush(flusher, 3, [("lww", JAN, 3.0)])
    assert len(blocks_of(datadir, "shadow")) == 2
    c = compactor(datadir)
    c.run(force=True)
    c.close()
    assert blocks_of(datadir, "shadow") == []
    (block,) = blocks_of(datadir)
    assert block.rows == 10
    assert series_points(engine, "lww", JAN, JAN + 9) == [(JAN, 3.0)] + [
        (JAN + i, 2.0 if i % 2 == 0 else 1.0) for i in range(1, 10)]


def test_merged_shadow_blocks_still_hide_what_each_one_hid(node):
    datadir, flusher, engine = node
    flush(flusher, 1, [("sh", JAN + i, 1.0) for i in range(8)] + [("big", JAN + i, 0.0) for i in range(600)])
    for n in range(4):
        flush(flusher, 10 + n, [("sh", JAN + n, 10.0 + n), ("sh", JAN + 4 + n, 20.0 + n)])
    assert len(blocks_of(datadir, "shadow")) == 4
    expected = series_points(engine, "sh", JAN, FEB)
    c = compactor(datadir, policy=CompactionPolicy(tier_min_blocks=4, full_block_rows=1000))
    (job,) = c.run().jobs
    c.close()
    assert "merge shadow blocks" in job["reasons"] and len(blocks_of(datadir, "shadow")) == 1
    assert series_points(engine, "sh", JAN, FEB) == expected == [(JAN + n, 10.0 + n) for n in range(4)] + [
        (JAN + 4 + n, 20.0 + n) for n in range(4)]


def test_points_sent_again_leave_no_shadow_once_the_background_compactor_has_run(node):
    """Full blocks are not merged by size: the shadows a re-sent day leaves are applied to each block alone."""
    datadir, flusher, engine = node
    policy = CompactionPolicy(tier_min_blocks=4, full_block_rows=400)
    for n in range(2):
        flush(flusher, 1 + n, [(f"s{n}", JAN + i, float(i)) for i in range(300)])  # two full blocks
    c = compactor(datadir, policy=policy)
    assert c.run().jobs == []
    flush(flusher, 5, [("s1", JAN + i, float(i)) for i in range(40)])  # 41 shadow rows * 16 >= 641 points rows
    flush(flusher, 6, [("s0", JAN + 7, -1.0)])
    expected = {s: series_points(engine, s, JAN, FEB) for s in ("s0", "s1")}
    assert len(blocks_of(datadir, "shadow")) == 2
    (job,) = c.run().jobs
    c.close()
    assert "apply shadows" in job["reasons"] and blocks_of(datadir, "shadow") == []
    assert {s: series_points(engine, s, JAN, FEB) for s in ("s0", "s1")} == expected
    assert expected["s0"][7] == (JAN + 7, -1.0) and len(expected["s1"]) == 300
    assert sum(b.rows for b in blocks_of(datadir)) == 600


def test_tombstoned_rows_are_dropped_but_a_later_write_is_kept(node):
    datadir, flusher, engine = node
    flush(flusher, 10, [("gone", JAN + i, float(i)) for i in range(10)])
    catalog = connect(datadir.catalog_path)
    add_tombstone(catalog, "gone", JAN + 2, JAN + 5, seq=20)
    catalog.close()
    flush(flusher, 30, [("gone", JAN + 3, 33.0)])
    expected = [(JAN + i, float(i)) for i in (0, 1, 6, 7, 8, 9)] + [(JAN + 3, 33.0)]
    assert series_points(engine, "gone", JAN, FEB) == sorted(expected)
    c = compactor(datadir)
    c.run(force=True)
    c.close()
    assert sum(b.rows for b in blocks_of(datadir)) == 7
    assert series_points(engine, "gone", JAN, FEB) == sorted(expected)


def test_retention_drops_expired_months_and_trims_the_boundary_month(node):
    datadir, flusher, engine = node
    flush(flusher, 1, [("r", JAN + 5, 1.0), ("r", FEB - 1, 2.0)])  # January
    flush(flusher, 2, [("r", FEB, 3.0), ("r", FEB + 3 * 86_400_000, 4.0)])  # February
    now = FEB + 2 * 86_400_000 + 10 * 86_400_000  # floor = now - 10 days = FEB + 2 days
    c = compactor(datadir, retention_days=10, now=lambda: now / 1000)
    report = c.run(force=True)
    c.close()
    assert {job["month"] for job in report.jobs} == {"2024-01", "2024-02"}
    remaining = blocks_of(datadir)
    assert [(b.month, b.rows) for b in remaining] == [("2024-02", 1)]


def test_replaced_files_stay_until_the_grace_period_has_passed(node):
    datadir, flusher, engine = node
    for n in range(3):
        flush(flusher, n + 1, [("g", JAN + n, 1.0)])
    old_files = [datadir.root / b.path for b in blocks_of(datadir)]
    clock = [1_000_000.0]
    c = compactor(datadir, grace_seconds=60, now=lambda: clock[0])
    c.run(force=True)
    assert all(path.exists() for path in old_files)
    clock[0] += 61
    assert c.run().deleted_files == 3
    c.close()
    assert not any(path.exists() for path in old_files)
    assert series_points(engine, "g", JAN, FEB) == [(JAN + n, 1.0) for n in range(3)]


def test_start_up_deletes_retired_files_at_once(node):
    datadir, flusher, engine = node
    for n in range(2):
        flush(flusher, n + 1, [("u", JAN + n, 1.0)])
    old_files = [datadir.root / b.path for b in blocks_of(datadir)]
    c = compactor(datadir)
    c.run(force=True)
    c.close()
    assert all(path.exists() for path in old_files)
    assert clean_at_start(datadir) == 2
    assert not any(path.exists() for path in old_files)


def test_a_big_merge_is_split_into_files_of_the_policy_size(node):
    datadir, flusher, engine = node
    for n in range(8):  # blocks of 500 rows: small for a policy of 1,500-row files
        flush(flusher, n + 1, [(f"b{i % 7}", JAN + n * 500 + i, 1.0) for i in range(500)])
    c = compactor(datadir, policy=CompactionPolicy(full_block_rows=1500))
    c.run(force=True)
    c.close()
    assert sorted(b.rows for b in blocks_of(datadir)) == [1000, 1500, 1500]


def test_a_compactor_whose_merges_spill_to_disk_keeps_working_run_after_run(node):
    """Each run deletes its staging area, spill files included; the DuckDB connection that had spilled there then
    failed every later spill ("Cannot open file …duckdb_temp…"), so compaction stopped for good (the soak found it)."""
    datadir, flusher, engine = node
    rng = random.Random(1)
    c = Compactor(datadir, 0, 3600.0, CompactionPolicy(), memory_limit_mb=32)  # a merge of 400 k rows spills
    rows = 0
    for run in range(3):
        for n in range(4):
            points = {(f"s{rng.randrange(2000)}", JAN + run * 10**9 + rng.randrange(10**9)) for _ in range(100_000)}
            flush(flusher, run * 10 + n + 1, [(series, ts, 1.0) for series, ts in points])
            rows += len(points)
        assert c.run(force=True).jobs
    c.close()
    assert sum(b.rows for b in blocks_of(datadir)) == rows
    assert not datadir.compaction_staging.exists()


def stamps_of(datadir: DataDir) -> dict[str, set[int]]:
    """Each stored series' set of row stamps, over every points block."""
    files = [str(datadir.root / b.path) for b in blocks_of(datadir)]
    rows = duckdb.sql("SELECT series, list(DISTINCT seq ORDER BY seq) FROM read_parquet($files) GROUP BY series",
                      params={"files": files}).fetchall()
    return {series: set(stamps) for series, stamps in rows}


def test_rows_stamped_below_the_settled_stamp_share_one_and_compare_as_before(node):
    """Issue 17: a merge stores settled - 1 for every row stamped below `settled`. The row that won stays the
    winner over the shadows of older writes (left in place here: they still hide rows of the unmerged big block),
    and a write stamped at or above `settled` still replaces it."""
    datadir, flusher, engine = node
    flush(flusher, 10, [("k", JAN, 1.0)] + [("big", JAN + i, 0.0) for i in range(600)])
    flush(flusher, 20, [("k", JAN, 2.0), ("other", JAN, 2.0)])  # a shadow at 20 hides the 1.0…
    flush(flusher, 30, [("k", JAN, 3.0)])  # …and one at 30 the 2.0
    flush(flusher, 200, [("fresh", JAN, 5.0)])
    c = compactor(datadir, policy=CompactionPolicy(tier_min_blocks=2, full_block_rows=1000), settled=lambda: 100)
    c.run()
    c.close()
    (shadow,) = blocks_of(datadir, "shadow")  # the two merged into one at 30: it still hides the big block's 1.0
    assert shadow.max_seq == 30 and len(blocks_of(datadir)) == 2  # the big block is not merged
    assert stamps_of(datadir) == {"big": {10}, "k": {10, 99}, "other": {99}, "fresh": {200}}
    assert series_points(engine, "k", JAN, FEB) == [(JAN, 3.0)]
    assert series_points(engine, "other", JAN, FEB) == [(JAN, 2.0)]
    flush(flusher, 100, [("k", JAN, 4.0)])
    assert series_points(engine, "k", JAN, FEB) == [(JAN, 4.0)]


def test_without_a_settled_stamp_a_merge_keeps_every_stamp_as_written(node):
    """A cluster node's compactor has none: copies may still come with older stamps (ingest/settled.py)."""
    datadir, flusher, engine = node
    for n in range(3):
        flush(flusher, 10 + n, [(f"s{n}", JAN + i, 1.0) for i in range(5)])
    c = compactor(datadir)
    c.run(force=True)
    c.close()
    assert stamps_of(datadir) == {"s0": {10}, "s1": {11}, "s2": {12}}


def test_only_one_compactor_runs_per_node_and_countdb_compact_waits_its_turn(node):
    datadir, flusher, engine = node
    c = compactor(datadir)
    with try_exclusive_lock(datadir.compaction_lock_path) as held:  # as another worker's compactor would
        assert held
        assert c.run() is None  # the background kind gives up at once
    assert c.run(wait=True) is not None
    c.close()


def test_countdb_compact_out_of_memory_is_one_line_and_swaps_nothing(node):
    datadir, flusher, _ = node
    for n in range(4):
        flush(flusher, n + 1, [(f"s{i % 50}", JAN + n * 100_000 + i, float(i)) for i in range(50_000)])
    before = blocks_of(datadir)
    done = subprocess.run([sys.executable, "-m", "countdb", "compact", "--memory-limit-mb", "1"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DATA_DIR": str(datadir.root)})
    assert done.returncode == 1, done.stdout
    assert "out of memory" in done.stderr and "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1
    assert blocks_of(datadir) == before


def test_pending_compaction_lists_the_months_with_work_and_their_reasons_until_it_is_done(node):
    datadir, flusher, _ = node

    def pending() -> dict[str, list[str]]:
        catalog = connect(datadir.catalog_path)
        try:
            return {job.month: list(job.reasons) for job in pending_compaction(catalog, 0, FEB)}
        finally:
            catalog.close()

    for n in range(4):
        flush(flusher, n + 1, [("p", JAN + 1000 * n + i, 1.0) for i in range(10)])
    flush(flusher, 5, [("p", FEB, 1.0)])
    assert pending() == {"2024-01": ["merge small blocks"]}
    worker = compactor(datadir)
    worker.run()
    worker.close()
    assert pending() == {}
