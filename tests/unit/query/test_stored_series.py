"""The one-series fast path (query/stored_series.py, issue 4) on real Flusher- and Compactor-written blocks:
it answers exactly what the general visible-points SQL answers, with shadows, deletes and compaction in play,
and it steps aside (None) whenever it can't vouch for the answer."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from countdb.catalog.db import connect
from countdb.catalog.migrate import migrate
from countdb.catalog.tombstones import add_tombstone
from countdb.datadir import DataDir
from countdb.ingest.flush import Flusher
from countdb.model import RemotePoints, YearMonth
from countdb.query.aggregations import parse_aggregation
from countdb.query.buckets import Fill
from countdb.query.engine import QueryEngine, Snapshot
from countdb.query.range import Downsample, query_aggregate, query_range, stored_points
from countdb.query import stored_series as stored_series_module
from countdb.query.stored_series import StoredSeriesReader
from countdb.storage import encoding
from countdb.storage.compact import Compactor
from countdb.wal.record import SERIES_TYPE, Columns, records_to_table

from support.flushing import flush

FEB = YearMonth(2024, 2).start_ms()
SERIES = ["a", 'cpu{host="x"}', 'cpu{host="y"}', "zé"]
TINY_ROW_GROUPS = 3  # so that a series' rows span row groups, and a row group holds several series


@pytest.fixture(scope="module", autouse=True, params=["decoded per read", "kept decoded"])
def small_groups(request):
    """Every test twice: row groups decoded for each read (as large ones are), and kept decoded (small ones)."""
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "decoded per read":
            patch.setattr(stored_series_module, "SMALL_GROUP_ROWS", 0)
        yield request.param


class GeneralPathOnly(StoredSeriesReader):
    """Never vouches for an answer: the queries of an engine holding it all take the general path."""

    def read(self, files, series, start_ms, end_ms, with_seq=False) -> None:
        return None


@contextmanager
def node():
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(encoding, "ROW_GROUP_ROWS", TINY_ROW_GROUPS):
        datadir = DataDir(Path(tmp) / "data").create()
        migrate(datadir.catalog_path)
        flusher = Flusher(datadir, connect(datadir.catalog_path))
        fast, general = QueryEngine(datadir, memory_limit_mb=128), QueryEngine(datadir, memory_limit_mb=128)
        general.stored_series = GeneralPathOnly()
        try:
            yield datadir, flusher, fast, general
        finally:
            for engine in (fast, general):
                engine.close()
            flusher.close()
            flusher.catalog.close()


def answers(engine: QueryEngine, series: str, start_ms: int, end_ms: int, remote: RemotePoints | None = None) -> tuple:
    step = Downsample(4, parse_aggregation("mean"), Fill("none"))
    return (query_range(engine, series, start_ms, end_ms, remote=remote).read_all().to_pylist(),
            query_range(engine, series, start_ms, end_ms, step, remote).read_all().to_pylist(),
            query_aggregate(engine, series, start_ms, end_ms, parse_aggregation("last"), remote).read_all().to_pylist())


points = st.tuples(st.sampled_from(SERIES), st.integers(FEB - 4, FEB + 4), st.integers(-5, 5).map(float))
batches = st.lists(st.lists(points, min_size=1, max_size=12), min_size=2, max_size=4)  # rewrites: shadows
windows = st.tuples(st.sampled_from(SERIES), st.integers(FEB - 6, FEB + 4), st.integers(0, 12))


@settings(max_examples=20, deadline=None, database=None)
@given(batches, st.booleans(), st.one_of(st.none(), st.tuples(st.sampled_from(SERIES), st.integers(FEB - 6, FEB))),
       st.lists(windows, min_size=1, max_size=6))
def test_fast_path_answers_what_the_general_path_answers(written, compacted, delete, queries):
    with node() as (datadir, flusher, fast, general):
        for seq, batch in enumerate(written, start=1):
            flush(flusher, seq, batch)
        if delete is not None:
            add_tombstone(flusher.catalog, delete[0], delete[1], delete[1] + 4, seq=len(written) + 1)
        if compacted:
            compactor = Compactor(datadir, 0, 3600.0)
            compactor.run(force=True)
            compactor.close()
        for series, start_ms, length in [*queries, *((s, FEB - 4, 8) for s in SERIES)]:
            assert answers(fast, series, start_ms, start_ms + length) == \
                answers(general, series, start_ms, start_ms + length)


# NOTE: a copy's stamp is older (0) or newer (5, 6) than every local write (1-4), or it is a copy of a local
# write itself: one stamp is one write, so two copies of a stamp never differ in value.
copies = st.lists(st.tuples(st.integers(FEB - 4, FEB + 4), st.integers(-5, 5).map(float), st.sampled_from([0, 5, 6])),
                  max_size=10)


@settings(max_examples=20, deadline=None, database=None)
@given(batches, copies, st.booleans(), st.sampled_from(SERIES), st.integers(FEB - 6, FEB + 4), st.integers(0, 12))
def test_other_owners_copies_merge_with_stored_points_as_the_general_path_merges_them(written, copied, echoed, series,
                                                                                        start_ms, length):
    """A cluster owner's read (RemotePoints "merge"): the last write of each ts wins, whichever node holds it."""
    with node() as (_, flusher, fast, general):
        for seq, batch in enumerate(written, start=1):
            flush(flusher, seq, batch)
        if echoed:  # the other owner holds the same writes (each batch's last point of a ts is the one kept)
            last = {ts: (value, seq) for seq, batch in enumerate(written, start=1) for key, ts, value in batch
                    if key == series}
            copied = copied + [(ts, value, seq) for ts, (value, seq) in last.items()]
        remote = RemotePoints(pa.table({
            "series": pa.array([series] * len(copied)).dictionary_encode().cast(SERIES_TYPE),
            "ts": pa.array([ts for ts, _, _ in copied], pa.int64()), "value": [value for _, value, _ in copied],
            "seq": pa.array([seq for _, _, seq in copied], pa.int64())}), "merge")
        assert answers(fast, series, start_ms, start_ms + length, remote) == \
            answers(general, series, start_ms, start_ms + length, remote)


def test_a_series_across_row_groups_and_files_is_read_whole_in_time_order():
    with node() as (_, flusher, fast, general):
        flush(flusher, 1, [(s, FEB + 2 * i, float(i)) for s in SERIES for i in range(7)])
        flush(flusher, 2, [(s, FEB + 2 * i + 1, -float(i)) for s in SERIES for i in range(7)])
        points = stored_points(fast, fast.snapshot(), 'cpu{host="x"}', FEB + 1, FEB + 12)
        assert points is not None
        assert points["timestamp"].to_pylist() == list(range(FEB + 1, FEB + 13))
        assert answers(fast, 'cpu{host="x"}', FEB + 1, FEB + 12) == answers(general, 'cpu{host="x"}', FEB + 1,
                                                                              FEB + 12)


def test_a_shadow_or_delete_touching_the_series_sends_the_query_to_the_general_path():
    with node() as (_, flusher, fast, _general):
        flush(flusher, 1, [("a", FEB + i, 1.0) for i in range(5)] + [("b", FEB + i, 1.0) for i in range(5)])
        flush(flusher, 2, [("a", FEB + 2, 2.0)])  # replaces a stored point: a shadow row for "a"
        assert stored_points(fast, fast.snapshot(), "a", FEB, FEB + 4) is None
        assert stored_points(fast, fast.snapshot(), "b", FEB, FEB + 4) is not None
        assert stored_points(fast, fast.snapshot(), "a", FEB + 3, FEB + 4) is not None  # outside the shadow's rows
        assert query_range(fast, "a", FEB, FEB + 4).read_all()["value"].to_pylist() == [1.0, 1.0, 2.0, 1.0, 1.0]
        add_tombstone(flusher.catalog, "b", FEB, FEB + 1, seq=3)
        assert stored_points(fast, fast.snapshot(), "b", FEB, FEB + 4) is None
        assert query_range(fast, "b", FEB, FEB + 4).read_all()["timestamp"].to_pylist() == [FEB + 2, FEB + 3, FEB + 4]


def test_unflushed_points_of_the_series_are_merged_with_its_stored_ones_on_the_fast_path():
    with node() as (_, flusher, fast, _general):
        flush(flusher, 1, [("a", FEB + i, 1.0) for i in range(5)])
        stored = fast.snapshot()
        unflushed = records_to_table([(2, Columns(["a", "a", "b"], [FEB + 2, FEB + 9, FEB + 3], [2.0, 9.0, 3.0]))])
        live = Snapshot(stored.blocks_by_month, unflushed, stored.root, stored.tombstones, stored.floor_ms)
        points = stored_points(fast, live, "a", FEB, FEB + 9)
        assert points["timestamp"].to_pylist() == [FEB, FEB + 1, FEB + 2, FEB + 3, FEB + 4, FEB + 9]
        assert points["value"].to_pylist() == [1.0, 1.0, 2.0, 1.0, 1.0, 9.0]


# NOTE: stamps older than every stored write (0: a hint delivered late), equal to one (a tie the general path
# breaks by position) or newer; several unflushed writes may share a stamp and a timestamp.
unflushed_writes = st.lists(st.tuples(st.integers(0, 6), st.lists(points, min_size=1, max_size=8)), min_size=1,
                            max_size=4)


@settings(max_examples=25, deadline=None, database=None)
@given(batches, st.booleans(), unflushed_writes, copies, st.lists(windows, min_size=1, max_size=6))
def test_unflushed_points_and_copies_merge_with_stored_points_as_the_general_path_merges_them(
        written, compacted, unflushed, copied, queries):
    with node() as (datadir, flusher, fast, general):
        for seq, batch in enumerate(written, start=1):
            flush(flusher, seq, batch)
        if compacted:
            compactor = Compactor(datadir, 0, 3600.0)
            compactor.run(force=True)
            compactor.close()
        table = records_to_table([(seq, Columns(*map(list, zip(*batch)))) for seq, batch in unflushed])
        for series, start_ms, length in [*queries, *((s, FEB - 4, 8) for s in SERIES)]:
            remote = RemotePoints(pa.table({
                "series": pa.array([series] * len(copied)).dictionary_encode().cast(SERIES_TYPE),
                "ts": pa.array([ts for ts, _, _ in copied], pa.int64()), "value": [value for _, value, _ in copied],
                "seq": pa.array([seq for _, _, seq in copied], pa.int64())}), "merge")
            with mock.patch.object(fast._unflushed, "read", return_value=table), \
                    mock.patch.object(general._unflushed, "read", return_value=table):
                for merged in (None, remote):
                    assert answers(fast, series, start_ms, start_ms + length, merged) == \
                        answers(general, series, start_ms, start_ms + length, merged)


def test_a_block_file_gone_after_its_layout_was_cached_falls_back_to_the_general_path():
    with node() as (datadir, flusher, fast, _general):
        flush(flusher, 1, [("a", FEB + i, 1.0) for i in range(5)])
        assert stored_points(fast, fast.snapshot(), "a", FEB, FEB + 4) is not None
        fast.stored_series = StoredSeriesReader()
        fast.stored_series._layout(str(next((datadir.root / "time_blocks").rglob("*.parquet"))))
        for file in (datadir.root / "time_blocks").rglob("*.parquet"):
            file.unlink()
        assert stored_points(fast, fast.snapshot(), "a", FEB, FEB + 4) is None


def test_what_is_cached_about_files_compaction_replaced_is_dropped_at_the_next_query():
    with node() as (datadir, flusher, fast, _general):
        flush(flusher, 1, [(s, FEB + i, 1.0) for s in SERIES for i in range(4)])
        flush(flusher, 2, [(s, FEB + 10 + i, 2.0) for s in SERIES for i in range(4)])
        flushed = {str(path) for path in (datadir.root / "time_blocks").rglob("*.parquet")}
        assert stored_points(fast, fast.snapshot(), "a", FEB, FEB + 20) is not None
        assert {path for path, _ in fast.stored_series._runs.entries()} == flushed
        compactor = Compactor(datadir, 0, 3600.0)
        compactor.run(force=True)
        compactor.close()
        points = stored_points(fast, fast.snapshot(), "a", FEB, FEB + 20)
        assert points["value"].to_pylist() == [1.0] * 4 + [2.0] * 4
        reader = fast.stored_series
        runs, small_groups = reader._runs.entries(), reader._small_groups.entries()
        cached = set(reader._layouts.entries()) | {path for path, _ in [*runs, *small_groups]}
        assert cached and not cached & flushed
        assert reader._runs.weight == sum(len(entry.names) for entry in runs.values())
        assert reader._small_groups.weight == sum(group.nbytes for group in small_groups.values())


def _only_kept_decoded(small_groups: str) -> None:
    if small_groups == "decoded per read":
        pytest.skip("about row groups kept decoded")


def test_a_small_row_group_is_decoded_once_and_read_again_from_memory(tmp_path, small_groups):
    _only_kept_decoded(small_groups)
    path = tmp_path / "points.parquet"
    pq.write_table(pa.table({"series": ["a"] * 4 + ["b"] * 2, "ts": [1, 2, 3, 4, 1, 2], "value": [1.0] * 6,
                             "seq": [7] * 6}), path, sorting_columns=[pq.SortingColumn(0), pq.SortingColumn(1)])
    reader = StoredSeriesReader()
    assert reader.read([str(path)], "a", 2, 3)["timestamp"].to_pylist() == [2, 3]
    path.unlink()  # published blocks never change: what was decoded answers every later read
    assert reader.read([str(path)], "a", 1, 4, with_seq=True).to_pydict() == \
        {"timestamp": [1, 2, 3, 4], "value": [1.0] * 4, "seq": [7] * 4}
    assert reader.read([str(path)], "b", 0, 9)["timestamp"].to_pylist() == [1, 2]


def test_row_groups_kept_decoded_are_bounded_by_bytes_and_by_size(tmp_path, monkeypatch, small_groups):
    _only_kept_decoded(small_groups)
    paths = []
    for number in range(3):
        paths.append(str(tmp_path / f"points-{number}.parquet"))
        pq.write_table(pa.table({"series": ["a"] * 100, "ts": range(number * 100, number * 100 + 100),
                                 "value": [1.0] * 100, "seq": [1] * 100}), paths[-1])
    one_group = StoredSeriesReader()._small_group(paths[0], 0).nbytes
    monkeypatch.setattr(stored_series_module, "SMALL_GROUPS_BYTES", 2 * one_group)
    reader = StoredSeriesReader()
    assert reader.read(paths, "a", 0, 299).num_rows == 300
    assert list(reader._small_groups.entries()) == [(paths[1], 0), (paths[2], 0)]  # the least recently used went
    assert reader._small_groups.weight == 2 * one_group
    monkeypatch.setattr(stored_series_module, "SMALL_GROUP_ROWS", 99)
    reader = StoredSeriesReader()
    assert reader.read(paths, "a", 0, 299).num_rows == 300
    assert not reader._small_groups.entries()  # a larger group is decoded for each read, never kept


def test_a_file_not_sorted_by_series_is_refused(tmp_path):
    path = tmp_path / "unsorted.parquet"
    pq.write_table(pa.table({"series": ["a", "b", "a"], "ts": [1, 2, 3], "value": [1.0, 2.0, 3.0],
                             "seq": [1, 1, 1]}), path)
    assert StoredSeriesReader().read([str(path)], "a", 0, 10) is None


def test_more_rows_than_the_limit_are_left_to_the_general_path(tmp_path, monkeypatch):
    path = tmp_path / "points.parquet"
    pq.write_table(pa.table({"series": ["a"] * 10, "ts": list(range(10)), "value": [1.0] * 10, "seq": [1] * 10}),
                   path, row_group_size=4)
    reader = StoredSeriesReader()
    assert reader.read([str(path)], "a", 0, 9)["timestamp"].to_pylist() == list(range(10))
    monkeypatch.setattr("countdb.query.stored_series.MAX_ROWS_READ", 8)
    assert reader.read([str(path)], "a", 0, 9) is None
    assert reader.read([str(path)], "a", 0, 3) is not None


@pytest.mark.parametrize("series", ["", "a", "b", "c"])
def test_statistics_pick_only_the_row_groups_that_may_hold_the_series(tmp_path, series):
    path = tmp_path / "points.parquet"
    keys = ["a"] * 3 + ["b"] * 6 + ["c"] * 3
    pq.write_table(pa.table({"series": keys, "ts": list(range(12)), "value": [0.0] * 12, "seq": [1] * 12}),
                   path, row_group_size=3)
    read = StoredSeriesReader().read([str(path)], series, 0, 100)
    assert read["timestamp"].to_pylist() == [i for i, key in enumerate(keys) if key == series]


@pytest.mark.parametrize("declared_sorted", [True, False])
def test_a_run_is_read_in_batches_up_to_the_range_end_only_when_the_file_declares_its_order(
        tmp_path, monkeypatch, declared_sorted):
    path = tmp_path / "points.parquet"
    ts = list(range(40)) if declared_sorted else [5, 6, 7, 30, 31, 32, 1, 2, 3, 8] * 4  # unsorted: order not declared
    sorting = [pq.SortingColumn(0), pq.SortingColumn(1)] if declared_sorted else None
    pq.write_table(pa.table({"series": ["a"] * 40 + ["b"] * 5, "ts": ts + list(range(5)),
                             "value": [float(t) for t in ts] + [0.0] * 5, "seq": [1] * 45}),
                   path, row_group_size=45, sorting_columns=sorting)
    monkeypatch.setattr("countdb.query.stored_series.READ_BATCH_ROWS", 4)
    read = StoredSeriesReader().read([str(path)], "a", 3, 9)
    expected = sorted(t for t in ts if 3 <= t <= 9)
    assert read["timestamp"].to_pylist() == expected and read["value"].to_pylist() == [float(t) for t in expected]


@pytest.mark.parametrize("start, end, groups_read", [(7, 8, [1]), (0, 1, [0]), (3, 7, [0, 1]), (12, 20, [2, 3])])
def test_in_a_sorted_file_only_the_row_groups_whose_part_of_the_run_may_be_in_range_are_decoded(
        tmp_path, monkeypatch, start, end, groups_read):
    """Series `a` spans row groups 0-3 (3 rows each, the last shared with `b`): its first timestamp in each
    row group says which of them can hold [start, end]; the others are not decoded."""
    path = tmp_path / "points.parquet"
    ts = list(range(0, 22, 2))  # a: 11 rows over row groups 0..3
    pq.write_table(pa.table({"series": ["a"] * 11 + ["b"], "ts": ts + [0], "value": [float(t) for t in ts] + [0.0],
                             "seq": [1] * 12}), path, row_group_size=3,
                   sorting_columns=[pq.SortingColumn(0), pq.SortingColumn(1)])
    decoded = []
    real_read_run, real_small_group = stored_series_module._read_run, StoredSeriesReader._small_group
    monkeypatch.setattr(stored_series_module, "_read_run",
                        lambda path, group, *rest: decoded.append(group) or real_read_run(path, group, *rest))
    monkeypatch.setattr(StoredSeriesReader, "_small_group",
                        lambda reader, path, group: decoded.append(group) or real_small_group(reader, path, group))
    read = StoredSeriesReader().read([str(path)], "a", start, end)
    assert read["timestamp"].to_pylist() == [t for t in ts if start <= t <= end]
    assert decoded == groups_read
