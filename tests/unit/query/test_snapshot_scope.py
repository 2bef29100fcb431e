"""Snapshot.scope picks the blocks a time range touches from the months that have blocks, in month order, for any
range: all of time (what anti-entropy's digests ask for), one month, a month without blocks, an empty range."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from countdb.catalog.blocks import BlockRecord
from countdb.model import MAX_TIMESTAMP_MS, YearMonth
from countdb.query.engine import Snapshot

JANUARY, MARCH = YearMonth(2026, 1), YearMonth(2026, 3)


def block(month: YearMonth, name: str, kind: str = "points") -> BlockRecord:
    return BlockRecord(f"time_blocks/{month}/{name}", kind, str(month), month.start_ms(), month.end_ms(), 1, 1, 1, 1,
                       "")


def snapshot() -> Snapshot:
    # NOTE: March first: the catalog's order is not month order
    return Snapshot({str(MARCH): [block(MARCH, "c.parquet")],
                     str(JANUARY): [block(JANUARY, "a.parquet"), block(JANUARY, "s.parquet", "shadow")]},
                    pa.table({"series": pa.array([], pa.string()), "ts": pa.array([], pa.int64())}), Path("/data"))


def test_all_of_time_lists_every_block_in_month_order():
    scope = snapshot().scope(0, MAX_TIMESTAMP_MS)
    assert scope.files == ["/data/time_blocks/2026-01/a.parquet", "/data/time_blocks/2026-03/c.parquet"]
    assert scope.shadows == ["/data/time_blocks/2026-01/s.parquet"]


def test_a_range_lists_only_the_blocks_it_touches():
    assert snapshot().scope(MARCH.start_ms(), MARCH.start_ms() + 1).files == ["/data/time_blocks/2026-03/c.parquet"]
    february = YearMonth(2026, 2)
    assert snapshot().scope(february.start_ms(), february.end_ms()).files == []
    assert snapshot().scope(JANUARY.end_ms(), MARCH.start_ms()).files == [
        "/data/time_blocks/2026-01/a.parquet", "/data/time_blocks/2026-03/c.parquet"]


def test_empty_and_out_of_range_ranges_list_nothing():
    assert snapshot().scope(MARCH.end_ms(), JANUARY.start_ms()).files == []
    assert snapshot().scope(-10, -1).files == []
    assert snapshot().scope(MAX_TIMESTAMP_MS + 1, MAX_TIMESTAMP_MS + 2).files == []
