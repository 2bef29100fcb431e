"""A node's hint files (cluster/hints.py): kept in write order per target, forgotten once delivered."""

from __future__ import annotations

import pyarrow as pa

from countdb.cluster import hints as hint_module
from countdb.cluster.hints import HintStore


def stamped(n: int) -> pa.Table:
    return pa.table({"series": ["a"] * n, "ts": pa.array(range(n), pa.int64()), "value": [1.0] * n,
                     "seq": pa.array([7] * n, pa.int64())})


def test_delivered_hints_are_forgotten_with_one_directory_sync_per_target(tmp_path, monkeypatch):
    store = HintStore(tmp_path)
    for seq in (3, 1, 2):
        store.store_points(1, seq, stamped(2))
    store.store_points(2, 5, stamped(1))
    synced = []
    monkeypatch.setattr(hint_module, "fsync_dir", synced.append)
    pending = store.pending(1)
    assert [hint.path.name.split("-")[0] for hint in pending] == [f"{seq:020d}" for seq in (1, 2, 3)]

    store.delivered(pending[:2])
    assert synced == [store.folder(1)]
    assert store.pending(1) == pending[2:] and store.counts() == {1: 1, 2: 1}
