"""The compactor process (`python -m countdb.ingest.compaction_process`): the node's one background compactor,
which count-server starts beside its gunicorn workers when COMPACTION_INTERVAL_SECONDS is not 0.

Why a process of its own: a merge's memory is not a worker's (merging 10 M rows took the compactor to 397 MB
resident, where a worker's bound is 300 MB), it does not share a worker's GIL with requests (in a 15-minute soak of
mixed writes and queries, query p99 was 20-30 % lower than with the compactor thread in every worker), and a crash
in it costs no request. It runs at the workers' priority: at nice 10 it merged so slowly under query load that
queries met the small files longer (8 clients' one-hour ranges right after a big ingest: 234/s against 694/s).

Invariant: it runs only while its master does (readiness.wait_until_stopped); SIGTERM stops a merge in flight,
which then publishes nothing (CompactionLoop.stop), and the master restarts it if it dies (api/child_process.py).
"""

from __future__ import annotations

import logging
import logging.config
import os

from countdb.config import Settings
from countdb.datadir import DataDir
from countdb.ingest.compaction import CompactionLoop
from countdb.ingest.settled import settled_stamps
from countdb.obs.logging import logging_config
from countdb.obs.readiness import announce_ready, stop_on_signals, wait_until_stopped
from countdb.storage.compact import Compactor

log = logging.getLogger(__name__)


def main() -> None:
    settings = Settings.from_env()
    logging.config.dictConfig(logging_config(settings.log_level))
    parent, stop = os.getppid(), stop_on_signals()
    datadir = DataDir(settings.data_dir).create()
    loop = CompactionLoop(Compactor(datadir, settings.retention_days, settings.retired_block_grace_seconds,
                                    settled=settled_stamps(settings, datadir)),
                          settings.compaction_interval_seconds)
    loop.start()
    announce_ready(0)
    log.info("compactor process: first round in a few seconds, then every %g s while there is nothing to merge",
             settings.compaction_interval_seconds)
    wait_until_stopped(stop, parent, log, "the compactor")
    loop.stop()


if __name__ == "__main__":
    main()
