"""plan_compaction: what triggers a merge, a trim, a drop, and when a shadow block may go."""

from __future__ import annotations

import itertools

from countdb.catalog.blocks import BlockRecord
from countdb.catalog.tombstones import Tombstone
from countdb.model import YearMonth
from countdb.storage.compact_plan import DAY_MS, CompactionPolicy, plan_compaction

JAN = YearMonth(2024, 1)
FEB = YearMonth(2024, 2)
POLICY = CompactionPolicy(tier_min_blocks=4, full_block_rows=1000, trim_slack_ms=DAY_MS)
_ids = itertools.count()


def block(month: YearMonth = JAN, rows: int = 10, kind: str = "points", min_ts: int | None = None,
          max_ts: int | None = None, min_seq: int = 1, max_seq: int = 1) -> BlockRecord:
    n = next(_ids)
    return BlockRecord(f"time_blocks/{month}/{kind}-{n:020d}-0000abcd.parquet", kind, str(month),
                       month.start_ms() if min_ts is None else min_ts, month.end_ms() if max_ts is None else max_ts,
                       min_seq, max_seq, rows, rows * 10, "0" * 64)


def test_nothing_to_do_below_the_tier_threshold():
    assert plan_compaction([block() for _ in range(3)], (), {}, 0, POLICY) == []


def test_enough_blocks_of_one_size_tier_are_merged_but_not_other_tiers():
    tiny = [block(rows=10) for _ in range(4)]
    bigger = [block(rows=200) for _ in range(3)]
    (job,) = plan_compaction(tiny + bigger, (), {}, 0, POLICY)
    assert set(job.rewrite) == set(tiny) and job.retire == () and job.month == "2024-01"


def test_full_blocks_are_never_merged_by_size():
    assert plan_compaction([block(rows=600) for _ in range(8)], (), {}, 0, POLICY) == []


def test_forced_merges_every_small_block_of_each_month_separately():
    jan, feb = [block(JAN, rows=10), block(JAN, rows=300)], [block(FEB, rows=20), block(FEB, rows=30)]
    jobs = plan_compaction(jan + feb + [block(FEB, rows=900)], (), {}, 0, POLICY.forced())
    assert [(job.month, set(job.rewrite)) for job in jobs] == [("2024-01", set(jan)), ("2024-02", set(feb))]


def test_a_month_wholly_past_retention_is_retired_without_reading():
    jan = [block(JAN), block(JAN, kind="shadow"), block(JAN, rows=900)]
    feb = [block(FEB)]
    (job,) = plan_compaction(jan + feb, (), {}, FEB.start_ms() + 5, POLICY)
    assert job.month == "2024-01" and set(job.retire) == set(jan) and job.rewrite == ()


def test_a_block_is_trimmed_once_a_day_of_it_has_expired_or_at_once_when_forced():
    partly = block(FEB, min_ts=FEB.start_ms(), max_ts=FEB.end_ms())
    assert plan_compaction([partly], (), {}, FEB.start_ms() + DAY_MS // 2, POLICY) == []
    (job,) = plan_compaction([partly], (), {}, FEB.start_ms() + 2 * DAY_MS, POLICY)
    assert job.rewrite == (partly,)
    (job,) = plan_compaction([partly], (), {}, FEB.start_ms() + 1, POLICY.forced())
    assert job.rewrite == (partly,)


def test_a_tombstone_rewrites_the_blocks_it_may_hide_rows_in_until_applied():
    target = block(min_ts=100, max_ts=200, min_seq=5)
    newer = block(min_ts=100, max_ts=200, min_seq=50)
    elsewhere = block(min_ts=300, max_ts=400, min_seq=5)
    tombstone = Tombstone(7, "s", 150, 160, seq=10)
    (job,) = plan_compaction([target, newer, elsewhere], (tombstone,), {}, 0, POLICY)
    assert job.rewrite == (target,)
    assert plan_compaction([target, newer, elsewhere], (tombstone,), {target.path: 7}, 0, POLICY) == []


def test_a_shadow_is_retired_only_when_every_block_it_can_hide_rows_in_is_rewritten():
    old_a, old_b = block(rows=900, min_seq=1), block(rows=900, min_seq=2)
    later = block(rows=900, min_seq=100)
    shadow = block(kind="shadow", min_seq=50, max_seq=50)
    (job,) = plan_compaction([old_a, old_b, later, shadow], (), {}, 0, POLICY.forced())
    assert set(job.rewrite) == {old_a, old_b} and job.retire == (shadow,)


def test_a_shadow_that_can_hide_nothing_any_more_is_retired():
    shadow = block(kind="shadow", min_seq=50, max_seq=50)
    (job,) = plan_compaction([block(min_seq=100), shadow], (), {}, 0, POLICY)
    assert job.retire == (shadow,) and job.rewrite == ()


def test_many_shadow_blocks_are_merged_when_their_targets_stay():
    target = block(rows=900, min_seq=1)
    shadows = [block(kind="shadow", min_seq=50, max_seq=50) for _ in range(4)]
    policy = CompactionPolicy(tier_min_blocks=4, full_block_rows=1000)
    (job,) = plan_compaction([target, *shadows], (), {}, 0, policy)
    assert job.rewrite == () and job.retire == () and set(job.merge_shadows) == set(shadows)
    assert plan_compaction([target, *shadows[:3]], (), {}, 0, policy) == []


def test_shadows_worth_a_sixteenth_of_the_month_are_applied_to_each_target_alone():
    """A client that sends points again leaves a shadow row per point; full blocks are not merged by size, so
    the background compactor rewrites each block the shadows can hide rows in, alone, and retires them."""
    targets = [block(rows=900, min_seq=1) for _ in range(3)]
    later = block(rows=900, min_seq=100)
    shadows = [block(kind="shadow", rows=120, min_seq=50, max_seq=50) for _ in range(2)]
    policy = CompactionPolicy(tier_min_blocks=4, full_block_rows=1000, shadow_share=16)
    (job,) = plan_compaction([*targets, later, *shadows], (), {}, 0, policy)
    assert job.rewrite == () and set(job.unshadow) == set(targets) and set(job.retire) == set(shadows)
    assert job.reasons == ("apply shadows", "shadows: targets rewritten")
    fewer = [block(kind="shadow", rows=112, min_seq=50, max_seq=50) for _ in range(2)]  # 224 * 16 < 3,600
    assert plan_compaction([*targets, later, *fewer], (), {}, 0, policy) == []


def test_months_filter_limits_the_plan():
    blocks = [block(JAN) for _ in range(4)] + [block(FEB) for _ in range(4)]
    assert [job.month for job in plan_compaction(blocks, (), {}, 0, POLICY, months={"2024-02"})] == ["2024-02"]


def test_a_background_merge_takes_at_most_max_merge_rows():
    policy = CompactionPolicy(tier_min_blocks=4, full_block_rows=1000, trim_slack_ms=DAY_MS, max_merge_rows=250)
    many = [block(rows=40) for _ in range(20)]
    (job,) = plan_compaction(many, (), {}, 0, policy)
    assert len(job.rewrite) == 6 and sum(b.rows for b in job.rewrite) <= 250
    forced = plan_compaction(many, (), {}, 0, policy.forced())
    assert len(forced[0].rewrite) == 20
