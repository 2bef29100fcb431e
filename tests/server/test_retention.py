"""RETENTION_DAYS on a real node, across a month boundary: expired points stop being returned at once, the
month wholly past retention is dropped and the boundary month is trimmed by compaction."""

from __future__ import annotations

import time

import duckdb
from support.lifecycle import catalog_rows, countdb, files_on_disk
from support.waiting import wait_for

from countdb.model import month_of

DAY_MS = 86_400_000
RETENTION_DAYS = 10


def test_points_older_than_retention_are_hidden_then_reclaimed_across_a_month_boundary(count_server):
    node = count_server(RETENTION_DAYS=RETENTION_DAYS, MEMORY_BUFFER_SIZE=100_000, COMPACTION_INTERVAL_SECONDS=0,
                        QUERY_TIMEOUT_SECONDS=1)
    now_ms = int(time.time() * 1000)
    floor_ms = now_ms - RETENTION_DAYS * DAY_MS
    boundary = month_of(floor_ms)  # the month the retention floor falls in
    points = {
        boundary.start_ms() - 1: 1.0,  # last ms of the month before: that month is wholly expired
        boundary.start_ms(): 2.0,  # first ms of the boundary month: expired, its rows are trimmed
        floor_ms + DAY_MS: 3.0,  # kept
        now_ms: 4.0,  # kept
    }
    body = [{"series": "ret", "timestamp": ts, "value": v} for ts, v in points.items()]
    assert node.post("/insert", json=body).status_code == 201  # accepted, expired ones hidden
    kept = [{"timestamp": ts, "value": v} for ts, v in sorted(points.items()) if v >= 3.0]
    everything = {"start": 0, "end": now_ms + DAY_MS}
    assert node.get("/query/range/ret", params=everything).json() == kept  # unflushed, already hidden
    assert node.stop() == 0
    expired_month = str(month_of(boundary.start_ms() - 1))
    assert (node.data_dir / "time_blocks" / expired_month).is_dir()
    node = count_server(data_dir=node.data_dir, RETENTION_DAYS=RETENTION_DAYS, COMPACTION_INTERVAL_SECONDS=0,
                        QUERY_TIMEOUT_SECONDS=1)
    assert node.get("/query/range/ret", params=everything).json() == kept  # stored, still hidden
    assert node.get("/query/aggregated/ret", params={**everything, "aggregation": "count"}).json() == 2
    settings = {"RETENTION_DAYS": RETENTION_DAYS, "QUERY_TIMEOUT_SECONDS": 1}
    report = countdb(node.data_dir, "compact", **settings).stdout
    assert "retention: whole blocks expired" in report and "retention: trim expired rows" in report
    assert {month for (month,) in catalog_rows(node.data_dir, "SELECT DISTINCT month FROM blocks")} == {
        str(month_of(ts)) for ts in (floor_ms + DAY_MS, now_ms)}
    published = {path for (path,) in catalog_rows(node.data_dir, "SELECT path FROM blocks")}
    assert wait_for(lambda: countdb(node.data_dir, "compact", **settings)  # deletes files after the grace period
                    and files_on_disk(node.data_dir) == published)
    assert not (node.data_dir / "time_blocks" / expired_month).exists()
    on_disk = duckdb.sql(f"SELECT ts FROM read_parquet({sorted(str(node.data_dir / p) for p in published)})")
    assert sorted(ts for (ts,) in on_disk.fetchall()) == [floor_ms + DAY_MS, now_ms]
    assert node.get("/query/range/ret", params=everything).json() == kept
    node.stop()
