"""Flusher with real blocks: interleaved time ranges without shared timestamps skip the DuckDB clash join, shared
timestamps still get shadows (newer write) or are dropped (older write); flushes write at the cheap zstd level."""

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from countdb.catalog.blocks import snapshot
from countdb.catalog.db import connect
from countdb.catalog.migrate import migrate
from countdb.datadir import DataDir
from countdb.ingest.flush import Flusher, _shares_a_timestamp
from countdb.storage.compact import Compactor
from countdb.storage.encoding import FLUSH_ZSTD_LEVEL, ZSTD_LEVEL
from countdb.wal.record import Columns, records_to_table


@pytest.fixture
def flusher(tmp_path):
    datadir = DataDir(tmp_path / "data").create()
    migrate(datadir.catalog_path)
    flusher = Flusher(datadir, connect(datadir.catalog_path))
    yield flusher
    flusher.close()
    flusher.catalog.close()


def _flush(flusher, seq, keys, stamps, value):
    return flusher.flush(records_to_table([(seq, Columns(keys, stamps, [value] * len(stamps)))]), [])


def _stored(flusher):
    files = [str(flusher.datadir.root / b.path) for b in snapshot(flusher.catalog).blocks]
    return sorted(duckdb.sql(f"SELECT series, ts, value, seq FROM read_parquet({files}, union_by_name=true)").fetchall())


def test_interleaved_ranges_without_shared_timestamps_need_no_shadow(flusher):
    _flush(flusher, 1, ["a", "b", "a", "b"], [1000, 1000, 3000, 3000], 1.0)
    result = _flush(flusher, 2, ["a", "b"], [2000, 2000], 2.0)  # inside the stored block's time range
    assert [b.kind for b in result.blocks] == ["points"]
    assert _stored(flusher) == [("a", 1000, 1.0, 1), ("a", 2000, 2.0, 2), ("a", 3000, 1.0, 1),
                                ("b", 1000, 1.0, 1), ("b", 2000, 2.0, 2), ("b", 3000, 1.0, 1)]


def test_shared_timestamps_still_resolve_by_write_order(flusher):
    _flush(flusher, 5, ["a", "b"], [1000, 1000], 1.0)
    newer = _flush(flusher, 6, ["a", "c"], [1000, 1000], 2.0)  # a@1000 replaced; c@1000 only shares the ts
    assert sorted(b.kind for b in newer.blocks) == ["points", "shadow"]
    older = _flush(flusher, 4, ["b"], [1000], 3.0)  # a replayed older write of b@1000 loses
    assert older.blocks == []
    files = [str(flusher.datadir.root / b.path) for b in snapshot(flusher.catalog).blocks if b.kind == "shadow"]
    assert duckdb.sql(f"SELECT series, ts, seq FROM read_parquet({files})").fetchall() == [("a", 1000, 6)]


def test_shares_a_timestamp_reads_only_timestamps_and_says_yes_when_a_file_is_unreadable(flusher, tmp_path):
    _flush(flusher, 1, ["a"], [1000], 1.0)
    stored = [flusher.datadir.root / b.path for b in snapshot(flusher.catalog).blocks]
    ts = records_to_table([(2, Columns(["z"], [1000], [0.0]))])["ts"]
    assert _shares_a_timestamp(ts, stored, 1000, 1000)
    assert not _shares_a_timestamp(records_to_table([(2, Columns(["a"], [999], [0.0]))])["ts"], stored, 999, 999)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet")
    assert _shares_a_timestamp(ts, [broken], 1000, 1000)


def test_shares_a_timestamp_reads_only_the_row_groups_whose_times_reach_the_new_points(tmp_path):
    """A compacted block spans its month, sorted by series then time: the new points' times meet the last row
    groups of each series, and the check must not read the rest (it cost what the month holds, every flush)."""
    block = tmp_path / "block.parquet"
    pq.write_table(pa.table({"series": ["a"] * 100 + ["b"] * 100, "ts": list(range(100)) * 2}), block,
                   row_group_size=50)
    assert _shares_a_timestamp(pa.chunked_array([[75]]), [block], 75, 75)
    assert not _shares_a_timestamp(pa.chunked_array([[200]]), [block], 200, 200)


def test_a_flush_writes_at_the_cheap_zstd_level_and_compaction_at_the_high_one(flusher, monkeypatch):
    levels = []

    class Recording(pq.ParquetWriter):
        def __init__(self, where, schema, **options):
            if isinstance(where, Path):  # a block file, not a trial in memory
                levels.append(options["compression_level"])
            super().__init__(where, schema, **options)

    monkeypatch.setattr(pq, "ParquetWriter", Recording)
    _flush(flusher, 1, ["a"], [1000], 1.0)
    _flush(flusher, 2, ["a"], [2000], 1.0)
    assert levels == [FLUSH_ZSTD_LEVEL, FLUSH_ZSTD_LEVEL]
    compactor = Compactor(flusher.datadir, retention_days=0, retired_grace_seconds=0)
    compactor.run(force=True)
    compactor.close()
    assert levels[2:] == [ZSTD_LEVEL] and ZSTD_LEVEL > FLUSH_ZSTD_LEVEL
    assert _stored(flusher) == [("a", 1000, 1.0, 1), ("a", 2000, 1.0, 2)]


def test_a_flush_whose_points_partly_lose_to_stored_ones_publishes_only_the_winners(flusher):
    _flush(flusher, 5, ["a", "b"], [1000, 1000], 5.0)
    result = _flush(flusher, 3, ["a", "b", "c"], [1000, 2000, 1000], 3.0)  # a@1000 is older than the stored one
    assert [b.rows for b in result.blocks] == [2]
    assert _stored(flusher) == [("a", 1000, 5.0, 5), ("b", 1000, 5.0, 5), ("b", 2000, 3.0, 3), ("c", 1000, 3.0, 3)]
