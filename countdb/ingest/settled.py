"""settled_stamp: the write stamp below which a node outside a cluster can no longer receive a write or delete.

Why: a stored row's stamp (`seq`) only decides which of two writes to one (series, ts) wins and which deletes hide
the row. Below a stamp that no arriving write or delete can undercut, every row compares the same way whatever its
own stamp, so compaction stores one stamp for all of them (storage/compact.py): a column of one value costs
nothing, where stamps of 5,000-point requests took 0.30 B/point of a compacted block (issue 17).

Invariant: every write or delete that can still reach this node's storage is stamped at or above settled_stamp():
an unflushed write is in a WAL segment (whose first frame holds its oldest stamp) or already published, and a new
write or delete is stamped from the wall clock, past now - SETTLE_MARGIN_NS. In a cluster, copies (hints,
repair) carry their coordinator's stamp and may arrive any time later: there is no such stamp there.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Callable

from countdb.config import Settings
from countdb.datadir import DataDir
from countdb.wal.log import oldest_unflushed_stamp

# NOTE: a stamp is in place (the WAL frame written, the tombstone committed) long before this: a write appends its
# frame under the lock it is stamped under, a delete waits at most the catalog's 30 s busy timeout. The wall clock
# must not step back by more than this either.
SETTLE_MARGIN_NS = 60 * 1_000_000_000


def settled_stamp(wal_root: Path) -> int:
    """The lowest stamp a write or delete may still arrive with. Read it before the catalog state it is used on."""
    floor = time.time_ns() - SETTLE_MARGIN_NS
    oldest = oldest_unflushed_stamp(wal_root)
    return floor if oldest is None else min(floor, oldest)


def settled_stamps(settings: Settings, datadir: DataDir) -> Callable[[], int] | None:
    """What a node's Compactor is given as `settled`: None in a cluster (stamps are kept as written)."""
    return None if settings.cluster_enabled else partial(settled_stamp, datadir.wal)
