"""plan_compaction never loses or overlaps a block: each published block is in at most one job, only in its
own month's job, and a shadow block is retired only when nothing it can hide a row in survives the job."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from countdb.catalog.blocks import BlockRecord
from countdb.catalog.tombstones import Tombstone
from countdb.model import YearMonth
from countdb.storage.compact_plan import CompactionPolicy, plan_compaction

MONTHS = [YearMonth(2024, m) for m in (1, 2, 3)]
PROPERTY = settings(max_examples=300, deadline=None, database=None)


@st.composite
def blocks(draw) -> list[BlockRecord]:
    made = []
    for n in range(draw(st.integers(0, 14))):
        month = draw(st.sampled_from(MONTHS))
        low = draw(st.integers(month.start_ms(), month.end_ms()))
        high = draw(st.integers(low, month.end_ms()))
        min_seq = draw(st.integers(1, 100))
        kind = draw(st.sampled_from(["points", "points", "shadow"]))
        made.append(BlockRecord(f"time_blocks/{month}/{kind}-{n:020d}-0000abcd.parquet", kind, str(month), low, high,
                                min_seq, draw(st.integers(min_seq, 120)), draw(st.integers(1, 3000)), 1, "0" * 64))
    return made


tombstones = st.lists(st.builds(lambda i, start, length, seq: Tombstone(i, "s", start, start + length, seq),
                                st.integers(1, 5), st.integers(MONTHS[0].start_ms(), MONTHS[-1].end_ms()),
                                st.integers(0, 40 * 86_400_000), st.integers(1, 120)), max_size=3)
floors = st.one_of(st.just(0), st.integers(MONTHS[0].start_ms(), MONTHS[-1].end_ms()))
policies = st.builds(CompactionPolicy, st.integers(2, 5), st.integers(100, 4000), st.integers(0, 86_400_000),
                     st.booleans())


@PROPERTY
@given(blocks(), tombstones, floors, policies)
def test_no_block_is_lost_or_planned_twice(published, deletes, floor_ms, policy):
    jobs = plan_compaction(published, tuple(deletes), {}, floor_ms, policy)
    planned = [path for job in jobs for path in job.replaced]
    assert len(planned) == len(set(planned))
    by_path = {b.path: b for b in published}
    assert set(planned) <= set(by_path)
    for job in jobs:
        assert all(by_path[path].month == job.month for path in job.replaced)
        assert all(b.kind == "points" for b in (*job.rewrite, *job.unshadow))
        assert all(b.kind == "shadow" for b in job.merge_shadows)
        assert all(b.max_ts < floor_ms or b.kind == "shadow" for b in job.retire)
    assert len({job.month for job in jobs}) == len(jobs)


@PROPERTY
@given(blocks(), floors, policies)
def test_a_retired_shadow_leaves_nothing_it_could_hide(published, floor_ms, policy):
    for job in plan_compaction(published, (), {}, floor_ms, policy):
        gone = set(job.replaced)
        for shadow in (b for b in job.retire if b.kind == "shadow" and b.max_ts >= floor_ms):
            survivors = [b for b in published if b.month == job.month and b.kind == "points" and b.path not in gone
                         and b.min_seq < shadow.max_seq and b.min_ts <= shadow.max_ts and b.max_ts >= shadow.min_ts]
            assert survivors == []
