"""DiskSpace: free space on the filesystem holding DATA_DIR. Writes are refused while it is below
MIN_FREE_DISK_MB, so the points already acknowledged keep the room their flush, the catalog and compaction need.

Invariant: check() raises StorageFull (a 503 with Retry-After) and nothing else; it never writes to disk.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from countdb.errors import StorageFull

OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)
ROOMY_BYTES = 2**30  # free beyond MIN_FREE_DISK_MB that lets check() trust its last look for TRUST_SECONDS
TRUST_SECONDS = 1.0


def is_out_of_space(error: BaseException) -> bool:
    """Whether an OSError is the disk (or the quota) being full."""
    return isinstance(error, OSError) and error.errno in OUT_OF_SPACE


class DiskSpace:
    def __init__(self, root: Path, min_free_bytes: int):
        self.root = root
        self.min_free_bytes = min_free_bytes
        self._roomy_until = 0.0  # monotonic time until which check() needs no statvfs

    def usage(self) -> tuple[int, int]:
        """(free bytes an unprivileged writer may use, total bytes) of the filesystem holding root."""
        stats = os.statvfs(self.root)
        return stats.f_bavail * stats.f_frsize, stats.f_blocks * stats.f_frsize

    def is_low(self) -> bool:
        return self.usage()[0] < max(self.min_free_bytes, 1)

    def check(self) -> None:
        """Raise StorageFull when less than min_free_bytes is free.

        One statvfs, except within TRUST_SECONDS of a look that found ROOMY_BYTES more than that: a second of
        writes does not fill a gigabyte (WAL records of ~8 M points/s, the fastest ingest measured, are ~0.2 GB),
        and each statvfs releases the GIL, which a worker's other threads then queue for: two per insert were
        ~3 % of a single-point insert's samples (issue 17, item 1). Near the limit every check looks."""
        now = time.monotonic()
        if now < self._roomy_until:
            return
        free = self.usage()[0]
        if free < max(self.min_free_bytes, 1):
            raise self.full(free)
        if free >= self.min_free_bytes + ROOMY_BYTES:
            self._roomy_until = now + TRUST_SECONDS

    def full(self, free: int | None = None) -> StorageFull:
        free = self.usage()[0] if free is None else free
        return StorageFull(f"the disk holding the data directory is full ({free // 1024} KiB free, MIN_FREE_DISK_MB "
                           f"is {self.min_free_bytes // 2**20}): writes are refused until space is freed; "
                           "stored points can still be queried", path=str(self.root), free_bytes=free)
