"""DataDir: the only module that knows the data directory's layout.

    node_state/     locks, quarantine, compaction/ (the compactor's staging area), metrics/ (prometheus-client
                    files), duckdb_tmp/ (DuckDB spill files, one folder per connection), cluster/ (membership
                    as the cluster agent sees it, nonces of internal requests), hints/<node>/ (writes held
                    for a node that was down: hinted handoff)
    series_index/   catalog.sqlite (SQLite, WAL mode): blocks, series, retired WAL segments
    time_blocks/    YYYY-MM/*.parquet, one folder per UTC month
    wal/            <writer-id>/{seq:08d}.wal, one folder per writer process
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from typing import Iterator

from countdb.errors import StorageError


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def node_state(self) -> Path:
        return self.root / "node_state"

    @property
    def series_index(self) -> Path:
        return self.root / "series_index"

    @property
    def time_blocks(self) -> Path:
        return self.root / "time_blocks"

    @property
    def wal(self) -> Path:
        return self.root / "wal"

    @property
    def catalog_path(self) -> Path:
        return self.series_index / "catalog.sqlite"

    @property
    def flush_lock_path(self) -> Path:
        return self.node_state / "flush.lock"

    @property
    def compaction_lock_path(self) -> Path:
        return self.node_state / "compaction.lock"

    @property
    def last_compaction_path(self) -> Path:
        """What the node's last background compaction did (ingest/compaction.py), for GET /status."""
        return self.node_state / "last_compaction.json"

    @property
    def flush_request_path(self) -> Path:
        """Touched to ask every process of the node to flush its buffer now (ingest/maintenance.py)."""
        return self.node_state / "flush.request"

    def request_flush(self) -> None:
        self.flush_request_path.write_text(str(time.time()))

    @property
    def compaction_staging(self) -> Path:
        """Where the compactor writes new blocks (and DuckDB spills) before moving them into time_blocks/."""
        return self.node_state / "compaction"

    @property
    def quarantine(self) -> Path:
        return self.node_state / "quarantine"

    @property
    def metrics(self) -> Path:
        """The default PROMETHEUS_MULTIPROC_DIR: per-process metric files of this node's gunicorn workers."""
        return self.node_state / "metrics"

    @property
    def cluster_state(self) -> Path:
        """Membership as this node's cluster agent last saw it, and the nonce register of internal requests."""
        return self.node_state / "cluster"

    @property
    def nonce_register(self) -> Path:
        return self.cluster_state / "nonces.sqlite"

    @property
    def hints(self) -> Path:
        """hints/<node number>/: writes this node holds for another node until it can deliver them."""
        return self.node_state / "hints"

    @property
    def duckdb_tmp(self) -> Path:
        return self.node_state / "duckdb_tmp"

    def duckdb_temp_dir(self, owner: str) -> Path:
        """DuckDB's temp_directory for one connection of this process. NOTE: one folder per DuckDB instance,
        since DuckDB 1.x names spill files alike in every instance and two sharing a folder corrupt each other."""
        return self.duckdb_tmp / f"{owner}-{os.getpid()}"

    def create(self) -> "DataDir":
        """Make every folder; raises StorageError naming the folder that can't be made."""
        for folder in (self.node_state, self.duckdb_tmp, self.cluster_state, self.hints, self.series_index,
                       self.time_blocks, self.wal):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StorageError(f"cannot create {folder}: {error.strerror}", path=str(folder)) from None
        return self

    def is_writable(self) -> bool:
        """True when a file can be created and synced in the data directory (the first thing every write needs)."""
        return self.write_error() is None

    def write_error(self) -> OSError | None:
        """Why a file can't be created and synced in the data directory (ENOSPC: a full disk), or None."""
        probe = self.node_state / f".probe-{os.getpid()}"
        try:
            with open(probe, "wb") as handle:
                handle.write(b"x")
                handle.flush()
                os.fsync(handle.fileno())
            return None
        except OSError as error:
            return error
        finally:
            probe.unlink(missing_ok=True)


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink inside `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an flock on `path` (blocking): serialises one job across every process of the node."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextmanager
def try_exclusive_lock(path: Path) -> Iterator[bool]:
    """Like exclusive_lock, but never waits: yields False (holding nothing) when another holder has it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
