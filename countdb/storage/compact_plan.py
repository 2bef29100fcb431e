"""plan_compaction: which blocks of which month to merge, trim or drop. Pure: catalog records in, jobs out.

Invariant: a job only rewrites or retires blocks of one month, never touches a block twice, and retires a
shadow block only when every points block it can hide a row in is rewritten or dropped by the same job.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from countdb.catalog.blocks import BlockRecord
from countdb.catalog.tombstones import Tombstone

DAY_MS = 86_400_000


@dataclass(frozen=True)
class CompactionPolicy:
    """When the background compactor acts; `countdb compact` uses `forced()`."""

    tier_min_blocks: int = 4  # small blocks of one size tier (rows within a factor of 4) that trigger a merge
    full_block_rows: int = 1_048_576  # rows per compacted file; a block of at least half this is not merged by size
    trim_slack_ms: int = DAY_MS  # a block is trimmed for retention once a day of its time range has expired
    force: bool = False  # merge every small block, trim at once, rewrite what shadows hide rows in
    max_merge_rows: int = 8 * 1_048_576  # rows one background merge may take (its sort must fit 128 MB)
    shadow_share: int = 16  # shadows are applied once their rows reach 1/shadow_share of the month's points rows

    def forced(self) -> "CompactionPolicy":
        return CompactionPolicy(2, self.full_block_rows, 0, True)


@dataclass(frozen=True)
class CompactionJob:
    """One month's work. `rewrite`: points blocks whose visible rows are merged into new sorted blocks;
    `unshadow`: points blocks each rewritten alone with only its visible rows (no sort across blocks, so a month
    of any size fits the compactor's memory); `merge_shadows`: shadow blocks merged into one; `retire`: blocks
    dropped without being read."""

    month: str
    rewrite: tuple[BlockRecord, ...]
    merge_shadows: tuple[BlockRecord, ...]
    retire: tuple[BlockRecord, ...]
    reasons: tuple[str, ...]
    unshadow: tuple[BlockRecord, ...] = ()

    @property
    def replaced(self) -> list[str]:
        return [b.path for b in (*self.rewrite, *self.unshadow, *self.merge_shadows, *self.retire)]


def plan_compaction(blocks: tuple[BlockRecord, ...] | list[BlockRecord], tombstones: tuple[Tombstone, ...],
                    tombstone_marks: dict[str, int], floor_ms: int, policy: CompactionPolicy,
                    months: set[str] | None = None) -> list[CompactionJob]:
    """Jobs for every month (of `months`, if given) with work to do, oldest month first.

    `floor_ms` is the retention floor (points with ts below it are expired; 0 keeps everything);
    `tombstone_marks` maps a compacted block to the newest tombstone id already applied to it.
    """
    by_month: dict[str, list[BlockRecord]] = defaultdict(list)
    for block in blocks:
        if months is None or block.month in months:
            by_month[block.month].append(block)
    jobs = []
    for month in sorted(by_month):
        job = _plan_month(month, by_month[month], tombstones, tombstone_marks, floor_ms, policy)
        if job is not None:
            jobs.append(job)
    return jobs


def _plan_month(month: str, blocks: list[BlockRecord], tombstones: tuple[Tombstone, ...],
                marks: dict[str, int], floor_ms: int, policy: CompactionPolicy) -> CompactionJob | None:
    expired = [b for b in blocks if b.max_ts < floor_ms]
    points = [b for b in blocks if b.kind == "points" and b.max_ts >= floor_ms]
    shadows = [b for b in blocks if b.kind == "shadow" and b.max_ts >= floor_ms]
    reasons = ["retention: whole blocks expired"] if expired else []
    rewrite: dict[str, BlockRecord] = {}  # by path, in the order chosen

    def add(chosen: list[BlockRecord], reason: str) -> None:
        fresh = [b for b in chosen if b.path not in rewrite]
        if fresh:
            rewrite.update((b.path, b) for b in fresh)
            reasons.append(reason)

    add([b for b in points if b.min_ts < floor_ms - policy.trim_slack_ms], "retention: trim expired rows")
    add([b for b in points if _has_unapplied_tombstone(b, tombstones, marks)], "deletes: drop tombstoned rows")
    add(_size_tier_merges(points, policy), "merge small blocks")
    targets = [b for b in points if b.path not in rewrite and any(_can_hide(s, b) for s in shadows)]
    unshadow: list[BlockRecord] = []
    if policy.force:  # `countdb compact`: merged with the rest, so that the month ends in full files
        add(targets, "apply shadows")
    elif targets and _shadows_cost(shadows, points, policy):
        unshadow = targets
        reasons.append("apply shadows")
    # expired points blocks need not be checked: every row a shadow could hide in them is expired anyway
    survivors = [b for b in points if b.path not in rewrite and b not in unshadow]
    cleared = [s for s in shadows if not any(_can_hide(s, b) for b in survivors)]
    left = [s for s in shadows if s not in cleared]
    merge_shadows = left if len(left) >= policy.tier_min_blocks else []
    if cleared:
        reasons.append("shadows: targets rewritten")
    if merge_shadows:
        reasons.append("merge shadow blocks")
    if not (rewrite or unshadow or expired or cleared or merge_shadows):
        return None
    return CompactionJob(month, tuple(rewrite.values()), tuple(merge_shadows), tuple(expired + cleared),
                         tuple(reasons), tuple(unshadow))


def _shadows_cost(shadows: list[BlockRecord], points: list[BlockRecord], policy: CompactionPolicy) -> bool:
    """Whether the month's shadow rows have grown worth a rewrite of the blocks they hide rows in.

    Why: every query of the month anti-joins its points with all their shadow rows. A client that sends a day
    again (an agent's retries, a re-run import) leaves a shadow row per point, and full blocks are never merged
    by size, so they stayed: 1.7 M shadow rows made a one-hour `GROUP BY` take 0.9 s, then need more than
    1 GB (measured on the soak's data). 1/shadow_share of the month's rows bounds the rewrite's cost per
    shadow row."""
    return sum(s.rows for s in shadows) * policy.shadow_share >= sum(p.rows for p in points)


def _size_tier_merges(points: list[BlockRecord], policy: CompactionPolicy) -> list[BlockRecord]:
    """Small blocks of a tier with at least `tier_min_blocks` members (forced: every small block, if two)."""
    small = [b for b in points if b.rows < policy.full_block_rows // 2]
    if policy.force:
        return small if len(small) >= 2 else []
    tiers: dict[int, list[BlockRecord]] = defaultdict(list)
    for block in small:
        tiers[(max(block.rows, 1).bit_length() - 1) // 2].append(block)
    # NOTE: a month of many small blocks (a big ingest) is merged over several runs, not in one job whose
    # sort would not fit the background compactor's memory (measured: 50 M rows fail in 128 MB).
    chosen, budget = [], policy.max_merge_rows
    for tier in sorted(tiers):
        members = tiers[tier]
        if len(members) < policy.tier_min_blocks:
            continue
        for block in members:
            if block.rows > budget and chosen:
                return chosen
            chosen.append(block)
            budget -= block.rows
    return chosen


def _has_unapplied_tombstone(block: BlockRecord, tombstones: tuple[Tombstone, ...], marks: dict[str, int]) -> bool:
    """A tombstone newer than the block's mark may hide rows in it (its series is not in the catalog)."""
    mark = marks.get(block.path, 0)
    return any(t.id > mark and t.seq > block.min_seq and t.overlaps(block.min_ts, block.max_ts) for t in tombstones)


def _can_hide(shadow: BlockRecord, points: BlockRecord) -> bool:
    """Whether a shadow block may hide a row of a points block: same times, an older write."""
    return points.min_seq < shadow.max_seq and points.min_ts <= shadow.max_ts and points.max_ts >= shadow.min_ts
