"""QueryEngine: per-worker DuckDB connection and consistent snapshots of what is visible.

Invariant: a snapshot lists WAL segments *before* reading the catalog, so a segment that is retired in
between is seen either as a block or (its file still open) as a segment, never as neither; a segment that
vanishes before it is opened makes the snapshot start again. A damaged block fails no query for long:
run_query quarantines it and runs the query again over the rest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from countdb.catalog.blocks import BlockRecord, snapshot
from countdb.catalog.damage import DamagedFile, damaged_file_count, damaged_files
from countdb.catalog.db import connect, data_version
from countdb.catalog.tombstones import Tombstone
from countdb.datadir import DataDir
from countdb.errors import Unavailable
from countdb.model import MAX_TIMESTAMP_MS, RemotePoints, month_of
from countdb.query.deadlines import Deadlines
from countdb.query.series_index import SeriesIndex
from countdb.query.stored_series import StoredSeriesReader
from countdb.storage.damage import find_damaged, may_be_damage, quarantine_block
from countdb.storage.hiding import retention_floor_ms
from countdb.storage.renewing_duckdb import RenewingDatabase
from countdb.wal.log import all_segment_paths
from countdb.wal.record import UNFLUSHED_SCHEMA
from countdb.wal.unflushed import SegmentVanished, UnflushedReader

log = logging.getLogger(__name__)

SNAPSHOT_ATTEMPTS = 10
DAMAGE_ATTEMPTS = 8
T = TypeVar("T")


@dataclass(frozen=True)
class Scope:
    """What one query reads: block files (absolute paths), the matching unflushed points, the deletes that
    may hide some of them, and the retention floor (no point older than `floor_ms` is visible)."""

    files: list[str]
    shadows: list[str]
    unflushed: pa.Table
    tombstones: tuple[Tombstone, ...] = ()
    floor_ms: int = 0
    foreign: pa.Table | None = None
    """Points of series this node does not hold (other cluster nodes'): added as they are, never merged."""


@dataclass(frozen=True)
class Snapshot:
    blocks_by_month: dict[str, list[BlockRecord]]
    unflushed: pa.Table
    root: Path
    tombstones: tuple[Tombstone, ...] = ()
    floor_ms: int = 0
    foreign: pa.Table | None = None
    remote_only: bool = False
    """The points are other nodes' alone (RemotePoints "only"), one copy per (series, ts), no deletes to apply."""
    scoped: list[BlockRecord] = field(default_factory=list, compare=False, repr=False)
    """Every block a scope() of this snapshot handed out: where run_query looks for a damaged file."""

    def scope(self, start_ms: int, end_ms: int, series: str | None = None) -> Scope:
        """Blocks overlapping [start_ms, end_ms] and unflushed points inside it (of `series` if given),
        never older than the retention floor."""
        start_ms = max(start_ms, self.floor_ms)
        tombstones = tuple(t for t in self.tombstones
                           if t.overlaps(start_ms, end_ms) and (series is None or t.series == series))
        files, shadows = [], []
        root = str(self.root)  # NOTE: string joins, not pathlib: this runs for every block of every query
        for month in self._months_touched(start_ms, end_ms):
            for block in self.blocks_by_month[month]:
                if block.max_ts >= start_ms and block.min_ts <= end_ms:
                    (files if block.kind == "points" else shadows).append(f"{root}/{block.path}")
                    self.scoped.append(block)
        return Scope(files, shadows, _within(self.unflushed, start_ms, end_ms, series), tombstones, self.floor_ms,
                     None if self.foreign is None else _within(self.foreign, start_ms, end_ms, series))

    def _months_touched(self, start_ms: int, end_ms: int) -> list[str]:
        """The months with blocks that [start_ms, end_ms] touches, in order. NOTE: from the months that have
        blocks, not every month of the range: anti-entropy's digests ask for all of time (96,000 months), and
        listing those took most of a loaded cluster worker's time."""
        if start_ms > end_ms or start_ms > MAX_TIMESTAMP_MS or end_ms < 0:
            return []
        first, last = str(month_of(max(start_ms, 0))), str(month_of(min(end_ms, MAX_TIMESTAMP_MS)))
        return sorted(month for month in self.blocks_by_month if first <= month <= last)

    def series_tables(self) -> list[pa.Table]:
        """The tables of points not in this node's blocks (unflushed, then other nodes'): where discovery finds
        series the catalog does not list yet."""
        return [self.unflushed] + ([self.foreign] if self.foreign is not None else [])


def _within(table: pa.Table, start_ms: int, end_ms: int, series: str | None) -> pa.Table:
    if table.num_rows == 0:
        return table
    mask = pc.and_(pc.greater_equal(table["ts"], start_ms), pc.less_equal(table["ts"], end_ms))
    if series is not None:
        mask = pc.and_(mask, pc.equal(table["series"], series))
    return table.filter(mask)


def as_unflushed(stamped: pa.Table) -> pa.Table:
    """Other nodes' stamped points in UNFLUSHED_SCHEMA, ranked below every local point of the same stamp (pos -1:
    the same write, so either copy is right; local points have pos >= 0)."""
    stamped = stamped.select(["series", "ts", "value", "seq"])
    stamped = stamped.append_column("pos", pa.repeat(pa.scalar(-1, pa.int64()), stamped.num_rows))
    if not pa.types.is_dictionary(stamped.schema.field("series").type):
        stamped = stamped.set_column(0, "series", pc.dictionary_encode(stamped["series"]))
    return stamped.cast(UNFLUSHED_SCHEMA)


def _open_database(datadir: DataDir, memory_limit_mb: int, threads: int) -> duckdb.DuckDBPyConnection:
    duck = duckdb.connect(config={
        "memory_limit": f"{memory_limit_mb}MB",
        "threads": threads,
        "temp_directory": str(datadir.duckdb_temp_dir("query")),
    })
    duck.execute("SET enable_progress_bar = false")
    duck.execute("SET parquet_metadata_cache = true")
    return duck


class QueryEngine:
    """Thread-safe: every query gets its own DuckDB cursor on the worker's query database (renewed now and then:
    storage/renewing_duckdb.py)."""

    def __init__(self, datadir: DataDir, memory_limit_mb: int, threads: int = 2, retention_days: int = 0,
                 timeout_seconds: float = 30.0):
        self.datadir = datadir
        self.retention_days = retention_days
        self.deadlines = Deadlines(timeout_seconds)
        self.database = RenewingDatabase(lambda: _open_database(datadir, memory_limit_mb, threads))
        self._catalog = connect(datadir.catalog_path)
        self._catalog_lock = threading.Lock()
        self._catalog_version = -1
        self._blocks: dict[str, list[BlockRecord]] = {}
        self._retired: frozenset[str] = frozenset()
        self._tombstones: tuple[Tombstone, ...] = ()
        self._unflushed = UnflushedReader(datadir.root)
        self.series_index = SeriesIndex(datadir.catalog_path)
        self.stored_series = StoredSeriesReader()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self.database.cursor()

    def snapshot(self, remote: RemotePoints | None = None) -> Snapshot:
        """Published blocks plus every point in a live WAL segment, and the deletes, as of now; with `remote`,
        points other cluster nodes hold, joined as their mode says (model.RemotePoints)."""
        root = self.datadir.root
        floor = retention_floor_ms(self.retention_days, time.time_ns() // 1_000_000)
        if remote is not None and remote.mode == "only":
            return Snapshot({}, as_unflushed(remote.table), root, (), floor, remote_only=True)
        for _ in range(SNAPSHOT_ATTEMPTS):
            listed = [str(path.relative_to(root)) for path in all_segment_paths(self.datadir.wal)]
            blocks, retired, tombstones = self._catalog_state()
            try:
                unflushed = self._unflushed.read([path for path in listed if path not in retired])
            except SegmentVanished:
                continue
            if remote is not None and remote.mode == "merge":
                unflushed = pa.concat_tables([unflushed, as_unflushed(remote.table)]).unify_dictionaries()
            foreign = remote.table if remote is not None and remote.mode == "add" else None
            return Snapshot(blocks, unflushed, root, tombstones, floor, foreign)
        raise Unavailable("the WAL changed too fast to take a consistent snapshot; retry")

    def run_query(self, work: Callable[[Snapshot], T], remote: RemotePoints | None = None) -> T:
        """`work(snapshot)` over a fresh snapshot (with `remote` points, as in snapshot()). When DuckDB fails on a damaged block file (missing, truncated,
        corrupt), that file is quarantined and `work` runs again over the rest (issue 7: one bad file costs its
        own points, not the query). Any other error propagates unchanged."""
        for _ in range(DAMAGE_ATTEMPTS):
            current = self.snapshot(remote)
            try:
                return work(current)
            except duckdb.Error as error:
                if not may_be_damage(error) or not self._set_aside_damaged(current, str(error)):
                    raise
        raise Unavailable("too many damaged block files in one query; see /health and run `countdb verify`")

    def _set_aside_damaged(self, current: Snapshot, error: str) -> bool:
        """Quarantine the damaged files among the blocks the failed query read; False if none is damaged."""
        suspects = current.scoped or [block for blocks in current.blocks_by_month.values() for block in blocks
                                      if block.path in error]
        problems = find_damaged(self.datadir.root, suspects)
        with self._catalog_lock:
            for problem in problems:
                quarantine_block(self.datadir, self._catalog, problem)
            self._catalog_version = -1  # our own commits leave PRAGMA data_version as it was
        return bool(problems)

    def damaged_files(self, limit: int | None = None) -> tuple[int, list[DamagedFile]]:
        """How many files are registered as damaged, and the newest `limit` of them (for /health)."""
        with self._catalog_lock:
            return damaged_file_count(self._catalog), damaged_files(self._catalog, limit)

    def _catalog_state(self) -> tuple[dict[str, list[BlockRecord]], frozenset[str], tuple[Tombstone, ...]]:
        with self._catalog_lock:
            version = data_version(self._catalog)
            if version != self._catalog_version:
                current = snapshot(self._catalog)
                by_month: dict[str, list[BlockRecord]] = defaultdict(list)
                for block in current.blocks:
                    by_month[block.month].append(block)
                self._blocks, self._retired, self._catalog_version = dict(by_month), current.retired_segments, version
                self._tombstones = current.tombstones
                root = str(self.datadir.root)
                self.stored_series.forget_all_but({f"{root}/{block.path}" for block in current.blocks})
            return self._blocks, self._retired, self._tombstones

    def close(self) -> None:
        self._unflushed.close()
        self.series_index.close()
        self._catalog.close()
        self.database.close()
