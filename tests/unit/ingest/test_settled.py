"""settled_stamp: below the oldest unflushed write, and a margin below the wall clock; none in a cluster."""

from __future__ import annotations

import time

from countdb.config import Settings
from countdb.datadir import DataDir
from countdb.ingest.settled import SETTLE_MARGIN_NS, settled_stamp, settled_stamps
from countdb.wal.log import WriteAheadLog
from countdb.wal.record import Columns, encode_points


def test_the_settled_stamp_is_a_margin_below_now_or_below_the_oldest_unflushed_write(tmp_path):
    datadir = DataDir(tmp_path / "data").create()
    before = time.time_ns()
    assert before - SETTLE_MARGIN_NS <= settled_stamp(datadir.wal) <= time.time_ns() - SETTLE_MARGIN_NS
    wal = WriteAheadLog(datadir.wal)
    old = before - 3 * SETTLE_MARGIN_NS  # a write a worker took minutes ago and has not flushed yet
    wal.append_unsynced(*_points_record(old))
    assert settled_stamp(datadir.wal) == old
    wal.close()


def test_a_cluster_node_has_no_settled_stamp(tmp_path):
    datadir = DataDir(tmp_path / "data").create()
    alone = settled_stamps(Settings.from_env({"DATA_DIR": str(datadir.root)}), datadir)
    assert alone is not None and alone() <= time.time_ns() - SETTLE_MARGIN_NS
    clustered = Settings.from_env({"DATA_DIR": str(datadir.root), "CLUSTER_ENABLED": "true",
                                   "CLUSTER_NODES": "a:1,b:1", "NODE_ID": "1", "CLUSTER_SECRET": "s" * 32})
    assert settled_stamps(clustered, datadir) is None


def _points_record(seq: int) -> tuple[int, int, bytes]:
    record_type, payload = encode_points(Columns(["s"], [1], [1.0]))
    return record_type, seq, payload
