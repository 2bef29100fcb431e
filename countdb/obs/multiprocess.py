"""The folder where gunicorn workers keep their metric files (prometheus-client multiprocess mode).

Invariant: the gunicorn master calls use_metrics_dir() before anything imports prometheus_client, which picks
multiprocess mode once, at import, from PROMETHEUS_MULTIPROC_DIR; every worker forked later inherits it.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from countdb.errors import StorageError

log = logging.getLogger(__name__)

# prometheus-client's file names: counter_<pid>.db, histogram_<pid>.db, gauge_<mode>_<pid>.db…
_METRIC_FILE = re.compile(r"(counter|histogram|summary|gauge_[a-z]+)_\d+\.db")
# NOTE: every kind Count's metrics (obs/metrics.py) use: a worker's first metric opens the files of all of them,
# so one left out (gauge_mostrecent was) killed workers that first touched a metric once the disk was full.
RESERVED_FILES = ("counter", "histogram", "gauge_livesum", "gauge_mostrecent")
RESERVED_BYTES = 1 << 20  # per file; prometheus-client starts at 64 KiB and doubles when full
SPARE_FOLDER = "spare"  # allocated sets for workers that start on a full disk (prometheus-client reads *.db only)


def use_metrics_dir(path: Path) -> Path:
    """Create `path`, delete the metric files of a previous run there, and export it as PROMETHEUS_MULTIPROC_DIR.
    Only files named as prometheus-client names them are removed (the folder may be a shared /tmp)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.iterdir():
            if _METRIC_FILE.fullmatch(stale.name):
                stale.unlink(missing_ok=True)
    except OSError as error:
        raise StorageError(f"cannot prepare the metrics folder {path}: {error.strerror}", path=str(path)) from None
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


def reserve_metric_files(spare_sets: int = 0, pid: int | None = None) -> bool:
    """Allocate this process's metric files (RESERVED_BYTES each, real blocks, not a sparse file) before
    prometheus-client opens them, or, when the disk has no room, take a set allocated earlier from spare/; False
    (logged) when neither works. Then keep `spare_sets` sets in spare/ if there is room. Call before any metric
    is touched.

    NOTE: prometheus-client writes its files through mmap; on a full disk the first write to a page of a
    sparse file kills the process with SIGBUS instead of raising, so a worker running when the disk fills up
    would die at its next new metric label (issue 14). Allocated pages can always be written. A worker that
    replaces a dead one on a full disk takes a spare set: renaming needs no new blocks."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return True
    pid = os.getpid() if pid is None else pid
    for kind in RESERVED_FILES:
        path = Path(folder) / f"{kind}_{pid}.db"
        if not (_allocate(path) or _take_spare(Path(folder) / SPARE_FOLDER, kind, path)):
            log.warning("cannot reserve the metric file %s (the disk is full and no spare is left): this process "
                        "may die of SIGBUS when it records a new metric; keep PROMETHEUS_MULTIPROC_DIR on another "
                        "filesystem", path)
            return False
    _keep_spares(Path(folder) / SPARE_FOLDER, spare_sets)
    return True


def _allocate(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.posix_fallocate(fd, 0, RESERVED_BYTES)
        finally:
            os.close(fd)
        return True
    except OSError:
        path.unlink(missing_ok=True)  # half-allocated, it would look reserved to prometheus-client
        return False


def _take_spare(spares: Path, kind: str, path: Path) -> bool:
    for spare in sorted(spares.glob(f"{kind}_*.db")):
        try:
            os.rename(spare, path)  # NOTE: another worker may take the same one first
            return True
        except OSError:
            continue
    return False


def _keep_spares(spares: Path, sets: int) -> None:
    """Best effort: what cannot be allocated now is allocated by the next process that starts with room."""
    try:
        spares.mkdir(exist_ok=True)
    except OSError:
        return
    for index in range(sets):
        for kind in RESERVED_FILES:
            spare = spares / f"{kind}_{index}.db"
            if not spare.exists() and not _allocate(spare):
                return
