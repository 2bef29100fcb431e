"""The folder where gunicorn workers keep their metric files (prometheus-client multiprocess mode).

Invariant: the gunicorn master calls use_metrics_dir() before anything imports prometheus_client, which picks
multiprocess mode once, at import, from PROMETHEUS_MULTIPROC_DIR; every worker forked later inherits it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from countdb.errors import StorageError

# prometheus-client's file names: counter_<pid>.db, histogram_<pid>.db, gauge_<mode>_<pid>.db…
_METRIC_FILE = re.compile(r"(counter|histogram|summary|gauge_[a-z]+)_\d+\.db")


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
