"""Services: everything one worker process opens (WAL, writer, flusher, maintainer, DuckDB, catalog),
and prepare_node(), the start-up work done once per node before any worker exists."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass

from countdb.api.cluster_services import ClusterServices, LocalDeleter, LocalReads, SegmentPublisher
from countdb.catalog.db import connect
from countdb.cluster.auth import Verifier
from countdb.cluster.coordinator import ReplicatedWriter
from countdb.cluster.deletes import ReplicatedDeleter
from countdb.cluster.hints import HintStore
from countdb.cluster.reads import ClusterReads
from countdb.catalog.migrate import migrate
from countdb.catalog.tokens import TokenCache
from countdb.config import Settings
from countdb.datadir import DataDir
from countdb.ingest.flush import Flusher
from countdb.ingest.maintenance import Maintainer
from countdb.ingest.recovery import recover_dead_writers
from countdb.ingest.writer import Writer
from countdb.model import MAX_TIMESTAMP_MS
from countdb.obs.multiprocess import reserve_metric_files
from countdb.query.engine import QueryEngine
from countdb.query.sandbox import Sandbox
from countdb.query.sql import SqlService
from countdb.storage.compact import clean_at_start
from countdb.storage.space import DiskSpace
from countdb.wal.log import WriteAheadLog

log = logging.getLogger(__name__)

Reads = LocalReads | ClusterReads
Deleter = LocalDeleter | ReplicatedDeleter


def prepare_node(settings: Settings) -> int:
    """Create the data directory, migrate the catalog, replay every WAL left behind, delete the block files
    compaction retired (no query runs yet); returns points replayed.
    Run in the gunicorn master before workers fork (it opens and closes its own connections)."""
    datadir = DataDir(settings.data_dir).create()
    applied = migrate(datadir.catalog_path)
    if applied:
        log.info("catalog migrated: %s", ", ".join(applied))
    for hidden in datadir.wal.glob(".*"):
        shutil.rmtree(hidden, ignore_errors=True)
    for spill in datadir.duckdb_tmp.iterdir():  # DuckDB spill folders of processes that are gone
        shutil.rmtree(spill, ignore_errors=True)
    flusher = Flusher(datadir, connect(datadir.catalog_path))
    try:
        replayed = recover_dead_writers(datadir, flusher, strict=settings.wal_replay == "strict")
    finally:
        flusher.close()
        flusher.catalog.close()
    deleted = clean_at_start(datadir)
    if deleted:
        log.info("deleted %d block files retired by compaction", deleted)
    leftovers = HintStore(datadir.hints).remove_leftovers()
    if leftovers:
        log.info("deleted %d half-written hint files (never acknowledged)", leftovers)
    if settings.cluster_enabled:
        # NOTE: made here, before the workers fork: two workers turning a new SQLite file to WAL at once failed one
        # with "database is locked" (seen in CI), and gunicorn stopped the node since a worker could not boot.
        Verifier(settings.cluster_secret, datadir.nonce_register).close()
    return replayed


@dataclass
class Services:
    settings: Settings
    datadir: DataDir
    writer: Writer
    maintainer: Maintainer
    engine: QueryEngine
    started_monotonic: float
    sql: SqlService
    sink: Writer | ReplicatedWriter
    """Where write requests go: this node's Writer, or in a cluster the coordinator that replicates them."""
    reads: Reads
    """Points other nodes hold that queries here must merge (none on a single node)."""
    deleter: Deleter
    cluster: ClusterServices | None
    publisher: SegmentPublisher
    tokens: TokenCache
    space: DiskSpace

    @classmethod
    def open(cls, settings: Settings) -> "Services":
        reserve_metric_files(spare_sets=settings.workers)
        datadir = DataDir(settings.data_dir).create()
        migrate(datadir.catalog_path)
        flusher = Flusher(datadir, connect(datadir.catalog_path))
        space = DiskSpace(datadir.root, settings.min_free_disk_mb * 2**20)
        writer = Writer(WriteAheadLog(datadir.wal), flusher, settings.memory_buffer_size,
                        fsync_always=settings.wal_fsync == "always", space=space)
        maintainer = Maintainer(writer, datadir, settings.flush_interval_seconds,
                                settings.wal_fsync_interval_ms / 1000, strict_replay=settings.wal_replay == "strict")
        maintainer.start()
        engine = QueryEngine(datadir, settings.query_memory_limit_mb, retention_days=settings.retention_days,
                             timeout_seconds=settings.query_timeout_seconds)
        sandbox = Sandbox(datadir.time_blocks, settings.query_memory_limit_mb, settings.query_timeout_seconds,
                          settings.query_max_rows)
        tokens = TokenCache(lambda: connect(datadir.catalog_path), settings.auth_cache_seconds)
        cluster = ClusterServices.open(settings, datadir, writer) if settings.cluster_enabled else None
        reads = cluster.reads if cluster else LocalReads()
        sql = SqlService(engine, sandbox, lambda: reads.selection_points(None, 0, MAX_TIMESTAMP_MS),
                         cluster.reads.statement_answers if cluster else None)
        return cls(settings, datadir, writer, maintainer, engine, time.monotonic(), sql,
                   cluster.sink if cluster else writer, reads,
                   cluster.deleter if cluster else LocalDeleter(datadir, writer), cluster, SegmentPublisher(datadir),
                   tokens, space)

    def close(self) -> None:
        """Stop background work, flush every buffered point, release files. Idempotent enough for exit hooks."""
        if self.cluster is not None:
            self.cluster.close()
        self.publisher.close()
        self.maintainer.stop()
        self.writer.close()
        self.writer.flusher.close()
        self.sql.close()
        self.engine.close()
        self.tokens.close()
