"""Compactor: carries out plan_compaction's jobs (merge, trim, drop) and deletes retired block files once
no query can still read them. One compaction at a time per node (node_state/compaction.lock).

Invariant: input blocks are immutable, new blocks are written aside (node_state/compaction/) and moved into
time_blocks/ and swapped in the catalog under the node flush lock, in one transaction: a query sees every
old block or every new one, and both hold the same visible points.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from countdb.catalog.blocks import BlockRecord, CatalogSnapshot, snapshot
from countdb.catalog.compaction import (block_files_in_use, forget_retired_blocks, retired_before, swap_blocks,
                                        tombstone_marks)
from countdb.catalog.db import connect
from countdb.catalog.tombstones import drop_tombstones_before
from countdb.datadir import DataDir, exclusive_lock, fsync_dir, try_exclusive_lock
from countdb.model import YearMonth
from countdb.storage.blocks import remove_unpublished, write_block
from countdb.storage.compact_plan import CompactionJob, CompactionPolicy, plan_compaction
from countdb.storage.hiding import hide_deleted, hide_shadowed, retention_floor_ms, tombstone_table
from countdb.storage.paths import TIME_BLOCKS, BlockPath

log = logging.getLogger(__name__)

BACKGROUND_MEMORY_LIMIT_MB = 128  # DuckDB spills the sort beyond this (measured: ~300 MB peak RSS per job)
BATCH_ROWS = 16_384


@dataclass
class CompactionReport:
    """What one run did; `jobs` lists per month: reasons, blocks and rows in and out, bytes in and out."""

    jobs: list[dict] = field(default_factory=list)
    deleted_files: int = 0
    dropped_tombstones: int = 0
    seconds: float = 0.0


class Compactor:
    """Not thread-safe: one run at a time per instance (the node lock serialises instances)."""

    def __init__(self, datadir: DataDir, retention_days: int, retired_grace_seconds: float,
                 policy: CompactionPolicy = CompactionPolicy(), clock: Callable[[], float] = time.time,
                 memory_limit_mb: int = BACKGROUND_MEMORY_LIMIT_MB, settled: Callable[[], int] | None = None):
        """`settled` gives the stamp below which no write or delete can still arrive (ingest/settled.py): merged
        rows stamped below it are stored with one stamp just under it. None keeps every stamp as written."""
        self.datadir = datadir
        self._settled = settled
        self.retention_days = retention_days
        self.retired_grace_ms = int(retired_grace_seconds * 1000)
        self.policy = policy
        self._clock = clock
        self._stop = threading.Event()
        self.catalog: sqlite3.Connection = connect(datadir.catalog_path)
        self.memory_limit_mb = memory_limit_mb
        self._duck: duckdb.DuckDBPyConnection | None = None  # the running compaction's (_staged)

    def run(self, force: bool = False, months: set[str] | None = None, wait: bool = False) -> CompactionReport | None:
        """Compact what the policy (or, forced, everything worth it) asks for; None when another process
        holds the node's compaction lock and `wait` is false. Raises StorageError/CatalogError; a failed
        job publishes nothing and leaves its inputs in place."""
        if wait:
            with exclusive_lock(self.datadir.compaction_lock_path):
                return self._run_locked(force, months)
        with try_exclusive_lock(self.datadir.compaction_lock_path) as held:
            return self._run_locked(force, months) if held else None

    def stop(self) -> None:
        """Ask a running compaction to end soon (between files; a running DuckDB query is interrupted)."""
        self._stop.set()
        running = self._duck
        if running is not None:
            with suppress(duckdb.Error):  # closed meanwhile: the run has ended
                running.interrupt()

    def close(self) -> None:
        self.catalog.close()

    @contextmanager
    def _staged(self) -> Iterator[None]:
        """An empty staging area, and a DuckDB connection (self._duck) that spills into it, for one locked run;
        both gone afterwards. NOTE: the staging area goes after every run, so a failed job's blocks and spill
        files do not keep a full disk full (issue 14); a connection that outlived its spill files failed every
        later spill with "Cannot open file …duckdb_temp…", which stopped compaction for good (found by the
        30-minute soak: small blocks piled up and queries slowed 3x), so each run has its own connection."""
        staging = self.datadir.compaction_staging
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        duck = duckdb.connect(config={"threads": 1, "memory_limit": f"{self.memory_limit_mb}MB"})
        try:
            duck.execute("SET enable_progress_bar = false")
            spill = str(staging / "spill").replace("'", "''")
            duck.execute(f"SET temp_directory = '{spill}'")
            self._duck = duck
            yield
        finally:
            self._duck = None
            duck.close()
            shutil.rmtree(staging, ignore_errors=True)

    def _run_locked(self, force: bool, months: set[str] | None) -> CompactionReport:
        started = time.monotonic()
        now_ms = int(self._clock() * 1000)
        floor_ms = retention_floor_ms(self.retention_days, now_ms)
        report = CompactionReport(
            deleted_files=delete_retired_files(self.datadir, self.catalog, now_ms - self.retired_grace_ms))
        settled = self._settled() if self._settled else None  # before the snapshot: see ingest/settled.py
        state = snapshot(self.catalog)
        policy = self.policy.forced() if force else self.policy
        with self._staged():
            for job in plan_compaction(state.blocks, state.tombstones, tombstone_marks(self.catalog), floor_ms,
                                       policy, months):
                if self._stop.is_set():
                    break
                report.jobs.append(self._do(job, state, floor_ms, settled))
        if floor_ms:
            report.dropped_tombstones = drop_tombstones_before(self.catalog, floor_ms)
        report.seconds = round(time.monotonic() - started, 3)
        return report

    def drop_series(self, gone: Callable[[str], bool]) -> int:
        """Rewrite each month's points blocks without the series `gone` picks (series a cluster node gave to
        other nodes); returns how many stored points it dropped. Rows are kept as they are (stamps, shadows and
        deletes still apply), so what the node answers for its other series does not change. Waits its turn
        for the node's compaction lock."""
        with exclusive_lock(self.datadir.compaction_lock_path), self._staged():
            state, marks = snapshot(self.catalog), tombstone_marks(self.catalog)
            dropped = 0
            for month in sorted({b.month for b in state.blocks if b.kind == "points"}):
                blocks = tuple(b for b in state.blocks if b.kind == "points" and b.month == month)
                files = [str(self.datadir.root / b.path) for b in blocks]
                keys = self._duck.sql("SELECT DISTINCT series FROM read_parquet($files)",
                                      params={"files": files}).fetchall()
                leaving = [key for key, in keys if gone(key)]
                if not leaving:
                    continue
                self._duck.register("leaving", pa.table({"series": pa.array(leaving, pa.string())}))
                try:
                    kept = self._duck.sql("SELECT series, ts, value, seq FROM read_parquet($files) "
                                          "WHERE series NOT IN (SELECT series FROM leaving) ORDER BY series, ts",
                                          params={"files": files})
                    written = self._write_sorted(YearMonth.parse(month), "points", kept)
                finally:
                    self._duck.unregister("leaving")
                job = CompactionJob(month, blocks, (), (), ("series given to other nodes",))
                self._swap(job, written, min(marks.get(b.path, 0) for b in blocks))
                count = sum(b.rows for b in blocks) - sum(b.rows for b in written)
                log.info("dropped %d points of %d series this node no longer owns from %s", count, len(leaving), month)
                dropped += count
            return dropped

    def _do(self, job: CompactionJob, state: CatalogSnapshot, floor_ms: int, settled: int | None) -> dict:
        began = time.monotonic()
        month = YearMonth.parse(job.month)
        written: list[BlockRecord] = []
        shadows = [b for b in state.blocks if b.kind == "shadow" and b.month == job.month]
        tombstones = [t for t in state.tombstones if t.overlaps(month.start_ms(), month.end_ms())]
        if job.rewrite:
            written += self._merge_points(month, job.rewrite, shadows, tombstones, floor_ms, settled)
        for block in job.unshadow:
            written += self._merge_points(month, (block,), shadows, tombstones, floor_ms, settled)
        if job.merge_shadows:
            written += self._merge_shadows(month, job.merge_shadows, floor_ms)
        self._swap(job, written, max((t.id for t in state.tombstones), default=0))
        inputs = (*job.rewrite, *job.merge_shadows, *job.retire)
        summary = {"month": job.month, "reasons": list(job.reasons),
                   "blocks_in": len(inputs), "blocks_out": len(written),
                   "rows_in": sum(b.rows for b in inputs), "rows_out": sum(b.rows for b in written),
                   "bytes_in": sum(b.bytes for b in inputs), "bytes_out": sum(b.bytes for b in written),
                   "seconds": round(time.monotonic() - began, 3)}
        log.info("compacted %(month)s (%(reasons)s): %(blocks_in)d blocks, %(rows_in)d rows -> %(blocks_out)d "
                 "blocks, %(rows_out)d rows in %(seconds).3fs", {**summary, "reasons": "; ".join(job.reasons)})
        return summary

    def _merge_points(self, month: YearMonth, blocks: tuple[BlockRecord, ...], shadows: list[BlockRecord],
                      tombstones: list, floor_ms: int, settled: int | None) -> list[BlockRecord]:
        """The visible rows of `blocks`: no shadowed, deleted or expired row, sorted by series, ts; those stamped
        below `settled` get the stamp settled - 1.

        Why that stamp changes no answer: a row left visible is newer than every shadow and delete of its point
        already known (the others hid it, and it is not written), so raising its stamp keeps it so; every write
        and delete still to come is stamped at or above `settled`, so it still wins over the row."""
        root = self.datadir.root
        params: dict = {"files": [str(root / b.path) for b in blocks], "floor": floor_ms}
        seq = "seq"
        if settled is not None:
            params["settled"] = settled
            seq = "CASE WHEN o.seq < $settled THEN $settled - 1 ELSE o.seq END AS seq"
        hiding = ""
        if shadows:
            params["shadows"] = [str(root / b.path) for b in shadows]
            hiding += hide_shadowed("o", "shadows")
        if tombstones:
            self._duck.register("tombstones", tombstone_table(tombstones))
            hiding += hide_deleted("o", "tombstones")
        try:
            sql = (f"SELECT series, ts, value, {seq} FROM read_parquet($files) o{hiding} WHERE o.ts >= $floor "
                   "ORDER BY series, ts")
            return self._write_sorted(month, "points", self._duck.sql(sql, params=params))
        finally:
            if tombstones:
                self._duck.unregister("tombstones")

    def _merge_shadows(self, month: YearMonth, blocks: tuple[BlockRecord, ...], floor_ms: int) -> list[BlockRecord]:
        """One shadow row per (series, ts) with the newest seq: it hides everything the merged rows hid."""
        sql = ("SELECT series, ts, max(seq) AS seq FROM read_parquet($files) WHERE ts >= $floor "
               "GROUP BY series, ts ORDER BY series, ts")
        params = {"files": [str(self.datadir.root / b.path) for b in blocks], "floor": floor_ms}
        return self._write_sorted(month, "shadow", self._duck.sql(sql, params=params))

    def _write_sorted(self, month: YearMonth, kind: str, relation: duckdb.DuckDBPyRelation) -> list[BlockRecord]:
        """Stream a sorted relation into staged blocks of about `full_block_rows` rows each."""
        written = []
        with relation.to_arrow_reader(BATCH_ROWS) as reader:
            for table in _chunks(reader, self.policy.full_block_rows):
                if self._stop.is_set():
                    raise InterruptedError("compaction stopped")
                path = BlockPath.new(month, kind, pc.max(table["seq"]).as_py())
                written.append(write_block(self.datadir.compaction_staging, path, table))
        return written

    def _swap(self, job: CompactionJob, written: list[BlockRecord], tombstone_mark: int) -> None:
        """Move staged blocks into time_blocks/ and swap them in, under the flush lock; undone on failure."""
        root, staging = self.datadir.root, self.datadir.compaction_staging
        moved: list[Path] = []
        with exclusive_lock(self.datadir.flush_lock_path):
            try:
                for block in written:
                    target = root / block.path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.rename(staging / block.path, target)
                    moved.append(target)
                for folder in {path.parent for path in moved}:
                    fsync_dir(folder)
                swap_blocks(self.catalog, job.replaced, written, tombstone_mark, int(self._clock() * 1000))
            except BaseException:
                for path in moved:
                    path.unlink(missing_ok=True)
                raise


def pending_compaction(catalog: sqlite3.Connection, retention_days: int, now_ms: int,
                       policy: CompactionPolicy = CompactionPolicy()) -> list[CompactionJob]:
    """What the next background compaction would do now, per month (GET /status): the policy's plan over the
    catalog, reading no block."""
    state = snapshot(catalog)
    return plan_compaction(state.blocks, state.tombstones, tombstone_marks(catalog),
                           retention_floor_ms(retention_days, now_ms), policy)


def delete_retired_files(datadir: DataDir, catalog: sqlite3.Connection, before_ms: int) -> int:
    """Delete block files retired before `before_ms`, and month folders left empty (under the flush lock,
    so no flush is creating a file in a folder being removed); returns how many files."""
    due = retired_before(catalog, before_ms)
    if not due:
        return 0
    root = datadir.root
    with exclusive_lock(datadir.flush_lock_path):
        for relative in due:
            (root / relative).unlink(missing_ok=True)
        for folder in {(root / relative).parent for relative in due}:
            if folder.exists() and not any(folder.iterdir()):
                folder.rmdir()
            elif folder.exists():
                fsync_dir(folder)
        fsync_dir(root / TIME_BLOCKS)
    forget_retired_blocks(catalog, due)
    return len(due)


def _chunks(reader: pa.RecordBatchReader, rows: int) -> Iterator[pa.Table]:
    """Tables of exactly `rows` rows (the last may be smaller), series dictionary-encoded to save memory.

    The other columns are copied: DuckDB's batches share one allocation, so keeping a view of them would
    keep every batch's series strings alive too (measured: 925 MB instead of 572 MB for 5 M rows).
    """
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in reader:
        columns = [pc.dictionary_encode(batch.column(0)), *(pa.concat_arrays([c]) for c in batch.columns[1:])]
        pending.append(pa.RecordBatch.from_arrays(columns, names=batch.schema.names))
        count += batch.num_rows
        while count >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows).unify_dictionaries().combine_chunks()
            rest = table.slice(rows)
            pending, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(pending).unify_dictionaries().combine_chunks()


def clean_at_start(datadir: DataDir) -> int:
    """Before any worker exists (so no query runs): delete every retired block file, the staging area, and
    block files the catalog does not account for. Skipped while `countdb compact` holds the lock.
    Returns how many retired files were deleted."""
    with try_exclusive_lock(datadir.compaction_lock_path) as held:
        if not held:
            return 0
        shutil.rmtree(datadir.compaction_staging, ignore_errors=True)
        catalog = connect(datadir.catalog_path)
        try:
            deleted = delete_retired_files(datadir, catalog, before_ms=2**62)
            with exclusive_lock(datadir.flush_lock_path):
                remove_unpublished(datadir.root, block_files_in_use(catalog))
        finally:
            catalog.close()
        return deleted
