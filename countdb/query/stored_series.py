"""StoredSeriesReader: one series' stored points in a time range, read straight from the few Parquet row groups
that hold them (issue 4: the one-series range path, without SQL planning).

Invariant: it answers only what the general path (query/visible.py) would: the caller uses it only when no
shadow row or tombstone can touch the series in the range, so stored points are unique and visible as they are
(query/range.py merges the unflushed ones in); anything it can't vouch for (a file not sorted by series, too many
rows) answers None.
"""

from __future__ import annotations

import sys
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from countdb.storage.statistics import min_max

MAX_ROWS_READ = 8 * 131_072  # beyond this the general path streams the answer instead of holding it whole
CACHED_FILES = 4096
CACHED_SERIES_RUNS = 1_000_000  # series runs over every cached row group: ~24 MB at most
POINTS_SCHEMA = pa.schema([("timestamp", pa.int64()), ("value", pa.float64())])
STAMPED_POINTS_SCHEMA = POINTS_SCHEMA.append(pa.field("seq", pa.int64()))
READ_BATCH_ROWS = 8192  # decoding granularity: a read stops at most this many rows past what it needs
# NOTE: opening a file and setting up a row group's column readers costs pyarrow ~0.2 ms however few rows it
# decodes, and a flush writes a file of every series it holds: a query over a series being written meets one
# small file per flush not yet compacted, and a dashboard asks the same latest hour again and again. Row groups
# of at most SMALL_GROUP_ROWS rows are therefore kept decoded, SMALL_GROUPS_BYTES of them per worker.
SMALL_GROUP_ROWS = 16_384
SMALL_GROUPS_BYTES = 16 * 1024 * 1024
SMALL_GROUP_COLUMNS = ["ts", "value", "seq"]


@dataclass(frozen=True)
class RowGroupStats:
    """What a row group's statistics say it may hold; None where they say nothing (absent or dropped)."""

    series_min: str | None
    series_max: str | None
    ts_min: int | None
    ts_max: int | None
    rows: int
    in_time_order: bool
    """The file declares its rows sorted by (series, ts): a run can be read up to the range's end and no further."""

    def may_hold(self, series: str, start_ms: int, end_ms: int) -> bool:
        return ((self.series_min is None or self.series_min <= series) and
                (self.series_max is None or series <= self.series_max) and
                (self.ts_min is None or self.ts_min <= end_ms) and (self.ts_max is None or start_ms <= self.ts_max))


@dataclass(frozen=True)
class FileLayout:
    """A block file's row group statistics (its footer itself is not kept: ~40 kB in memory per file)."""

    row_groups: tuple[RowGroupStats, ...]
    series_bounds: tuple[list[str], list[str]] | None
    """Each row group's smallest and largest series when they are known and in order (a file sorted by series):
    binary searches then find a series' row groups among hundreds; None means every row group is checked."""

    def candidates(self, series: str, start_ms: int, end_ms: int) -> list[int]:
        """The row groups whose statistics say they may hold rows of `series` in [start_ms, end_ms]."""
        groups = range(len(self.row_groups))
        if self.series_bounds is not None:
            minima, maxima = self.series_bounds
            groups = range(bisect_left(maxima, series), bisect_right(minima, series))
        return [group for group in groups if self.row_groups[group].may_hold(series, start_ms, end_ms)]


@dataclass(frozen=True)
class SeriesRuns:
    """A row group's series in ascending order, the row after each one's last, and each one's first timestamp:
    24 bytes a series."""

    names: tuple[str, ...]
    ends: array
    first_ts: array

    def find(self, series: str) -> tuple[int, int, int] | None:
        """(first row, row after its last, first row's timestamp) of `series`, None if it has no rows here."""
        at = bisect_left(self.names, series)
        if at == len(self.names) or self.names[at] != series:
            return None
        return (self.ends[at - 1] if at else 0), self.ends[at], self.first_ts[at]


class StoredSeriesReader:
    """Thread-safe. Caches, per worker, each block file's row group statistics and series runs: published
    block files never change (a new name for every write), so nothing cached goes stale."""

    def __init__(self):
        self._layouts = _LruCache(CACHED_FILES, lambda layout: 1, path_of=lambda path: path)
        self._runs = _LruCache(CACHED_SERIES_RUNS, lambda runs: len(runs.names) if runs else 0)
        self._small_groups = _LruCache(SMALL_GROUPS_BYTES, lambda decoded: decoded.nbytes)

    def forget_all_but(self, files: set[str]) -> None:
        """Drop what is cached about files not in `files` (the published ones).
        NOTE: the caches are bounded by count, and a file that compaction replaced is never asked for again:
        without this, a node that flushes and compacts all day filled them with dead files (up to ~25 MB of
        series runs and ~6 MB of layouts per worker) before the LRU order let any go."""
        for cache in (self._layouts, self._runs, self._small_groups):
            cache.forget_all_but(files)

    def may_hold(self, files: list[str], series: str, start_ms: int, end_ms: int) -> bool:
        """Whether any row group of `files` may have a row of `series` in [start_ms, end_ms] (from statistics)."""
        return any(self._layout(path).candidates(series, start_ms, end_ms) for path in files)

    def read(self, files: list[str], series: str, start_ms: int, end_ms: int,
             with_seq: bool = False) -> pa.Table | None:
        """(timestamp, value) of every row of `series` in [start_ms, end_ms] in `files` (points blocks), in time
        order, and each row's write stamp `seq` with `with_seq`; None when a file isn't laid out as
        docs/format/blocks.md says or more than MAX_ROWS_READ rows would be read. Raises pyarrow's errors
        (OSError, ArrowInvalid) for an unreadable file."""
        schema = STAMPED_POINTS_SCHEMA if with_seq else POINTS_SCHEMA
        wanted: list[tuple[str, int, RowGroupStats]] = []
        rows = 0
        for path in files:
            layout = self._layout(path)
            for group in layout.candidates(series, start_ms, end_ms):
                wanted.append((path, group, layout.row_groups[group]))
                rows += layout.row_groups[group].rows
        if rows > MAX_ROWS_READ:
            return None
        found = []
        for path, group, stats in wanted:
            runs = self._series_runs(path, group)
            if runs is None:
                return None
            run = runs.find(series)
            if run is not None:
                found.append((path, group, run, stats))
        pieces = []
        for index, (path, group, (first, stop, first_ts), stats) in enumerate(found):
            if stats.in_time_order and (first_ts > end_ms or _continued_by(found, index, start_ms)):
                continue
            if stats.rows <= SMALL_GROUP_ROWS:
                pieces.append(_rows_in_range(self._small_group(path, group).slice(first, stop - first), start_ms,
                                             end_ms).select(["ts", *schema.names[1:]]))
            else:
                pieces += _read_run(path, group, (first, stop), start_ms, end_ms, stats.in_time_order, schema)
        return _in_time_order(pieces, schema)

    def _small_group(self, path: str, group: int) -> pa.RecordBatch:
        """A small row group's SMALL_GROUP_COLUMNS, decoded once (a row group that holds a run has rows)."""
        return self._small_groups.get_or_load((path, group), lambda: _read_small_group(path, group))

    def _layout(self, path: str) -> FileLayout:
        return self._layouts.get_or_load(path, lambda: _read_layout(path))

    def _series_runs(self, path: str, group: int) -> SeriesRuns | None:
        return self._runs.get_or_load((path, group), lambda: _read_series_runs(path, group))


class _LruCache:
    """Thread-safe. Entries loaded outside the lock (two threads may both load one; the first kept wins), the least
    recently used dropped once the entries' weights add up past `limit` (the last one always stays)."""

    def __init__(self, limit: int, weight: Callable[[Any], int], path_of: Callable[[Any], str] = itemgetter(0)):
        self.limit, self.weight = limit, 0
        self._weight_of, self._path_of = weight, path_of
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get_or_load(self, key, load: Callable[[], Any]):
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        value = load()
        with self._lock:
            if key not in self._entries:
                self._entries[key] = value
                self.weight += self._weight_of(value)
            while self.weight > self.limit and len(self._entries) > 1:
                self.weight -= self._weight_of(self._entries.popitem(last=False)[1])
        return value

    def forget_all_but(self, files: set[str]) -> None:
        with self._lock:
            for key in [key for key in self._entries if self._path_of(key) not in files]:
                self.weight -= self._weight_of(self._entries.pop(key))

    def entries(self) -> dict:
        """A copy of the entries, least recently used first."""
        with self._lock:
            return dict(self._entries)


def _read_layout(path: str) -> FileLayout:
    metadata = pq.read_metadata(path)
    names = [metadata.schema.column(i).name for i in range(metadata.num_columns)]
    series_column, ts_column = names.index("series"), names.index("ts")
    groups = []
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        series_min, series_max = min_max(row_group.column(series_column).statistics)
        ts_min, ts_max = min_max(row_group.column(ts_column).statistics)
        in_time_order = [(c.column_index, c.descending) for c in row_group.sorting_columns[:2]] == \
            [(series_column, False), (ts_column, False)]
        groups.append(RowGroupStats(series_min, series_max, ts_min, ts_max, row_group.num_rows, in_time_order))
    maxima = [group.series_max for group in groups]
    minima = [group.series_min for group in groups]
    in_order = None not in maxima and None not in minima and maxima == sorted(maxima) and minima == sorted(minima)
    return FileLayout(tuple(groups), (minima, maxima) if in_order else None)


def _continued_by(found: list, index: int, start_ms: int) -> bool:
    """Whether a later row group of the same file (sorted by series, ts) holds the series from start_ms or
    earlier on: then every row of found[index]'s run is older than start_ms ((series, ts) is unique in a file).
    NOTE: a series spanning two row groups is common in compacted files, and each read decodes from a row
    group's start (issue 4)."""
    path, group, _, _ = found[index]
    return any(later_path == path and later_group > group and run[2] <= start_ms
               for later_path, later_group, run, _ in found[index + 1:])


def _read_series_runs(path: str, group: int) -> SeriesRuns | None:
    """The series runs of one row group; None if its series are not in ascending order (each in one run)."""
    with pq.ParquetFile(path, read_dictionary=["series"]) as file:
        table = file.read_row_group(group, columns=["series", "ts"], use_threads=False)
    column = table.column("series")
    names: list[str] = []
    ends: list[int] = []
    offset = 0
    for chunk in column.chunks:
        if not pa.types.is_dictionary(chunk.type):
            chunk = pc.dictionary_encode(chunk)
        encoded = pc.run_end_encode(chunk.indices)
        for name, end in zip(chunk.dictionary.take(encoded.values).to_pylist(), encoded.run_ends.to_pylist()):
            if names and name == names[-1]:  # a run going on across chunks
                ends[-1] = offset + end
            elif names and name < names[-1]:
                return None
            else:
                names.append(sys.intern(name))  # one copy of a key for every row group that holds it
                ends.append(offset + end)
        offset += len(chunk)
    starts = pa.array([0, *ends[:-1]] if ends else [], pa.int64())
    return SeriesRuns(tuple(names), array("q", ends), array("q", table.column("ts").take(starts).to_pylist()))


def _read_small_group(path: str, group: int) -> pa.RecordBatch:
    with pq.ParquetFile(path) as file:
        decoded = file.read_row_group(group, columns=SMALL_GROUP_COLUMNS, use_threads=False)
    return decoded.combine_chunks().to_batches()[0]


def _read_run(path: str, group: int, run: tuple[int, int], start_ms: int, end_ms: int,
              in_time_order: bool, schema: pa.Schema) -> list[pa.RecordBatch]:
    """The rows of one series run in [start_ms, end_ms]. Batches are decoded in order and reading stops at the
    run's end, or, in a file sorted by (series, ts), at the range's end: on average half a row group decoded."""
    first, stop = run
    pieces, row = [], 0
    with pq.ParquetFile(path) as file:
        columns = ["ts", *schema.names[1:]]
        for batch in file.iter_batches(READ_BATCH_ROWS, row_groups=[group], columns=columns, use_threads=False):
            low, high = max(first - row, 0), min(stop - row, batch.num_rows)
            row += batch.num_rows
            if low >= high:
                continue
            part = batch.slice(low, high - low)
            pieces.append(_rows_in_range(part, start_ms, end_ms))
            if row >= stop or (in_time_order and part.column(0)[-1].as_py() > end_ms):
                break
    return pieces


def _rows_in_range(rows: pa.RecordBatch, start_ms: int, end_ms: int) -> pa.RecordBatch:
    ts = rows.column("ts")
    return rows.filter(pc.and_(pc.greater_equal(ts, start_ms), pc.less_equal(ts, end_ms)))


def _in_time_order(pieces: list[pa.RecordBatch], schema: pa.Schema) -> pa.Table:
    # NOTE: a run is in time order already (blocks are sorted by series, ts); sorting costs little and
    # keeps the answer right whatever the pieces' order.
    columns = [pa.chunked_array([piece.column(i) for piece in pieces], field.type)
               for i, field in enumerate(schema)]
    return pa.table(columns, schema=schema).sort_by("timestamp")
