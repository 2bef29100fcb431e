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
RESERVED_FILES = ("counter", "histogram", "gauge_livesum")  # the kinds Count's metrics (obs/metrics.py) use
RESERVED_BYTES = 1 << 20  # per file; prometheus-client starts at 64 KiB and doubles when full


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


def reserve_metric_files(pid: int | None = None) -> bool:
    """Allocate this process's metric files (RESERVED_BYTES each, real blocks, not a sparse file) before
    prometheus-client opens them; False (logged) when the disk has no room. Call before any metric is touched.

    NOTE: prometheus-client writes its files through mmap; on a full disk the first write to a page of a
    sparse file kills the process with SIGBUS instead of raising, so a worker running when the disk fills up
    would die at its next new metric label (issue 14). Allocated pages can always be written."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return True
    pid = os.getpid() if pid is None else pid
    for kind in RESERVED_FILES:
        path = Path(folder) / f"{kind}_{pid}.db"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                os.posix_fallocate(fd, 0, RESERVED_BYTES)
            finally:
                os.close(fd)
        except OSError as error:
            path.unlink(missing_ok=True)  # half-allocated, it would look reserved to prometheus-client
            log.warning("cannot reserve the metric file %s (%s): on a full disk this process may die of SIGBUS "
                        "when it records a new metric; keep PROMETHEUS_MULTIPROC_DIR on another filesystem",
                        path, error.strerror)
            return False
    return True
