"""Metrics read at scrape time from the node's files, so whichever worker answers /metrics reports the same
node-wide state: Parquet blocks per month and damaged files (from the catalog), and the WAL segments not yet
flushed."""

from __future__ import annotations

from contextlib import closing
from typing import Iterable

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from countdb.catalog.blocks import totals_by_month
from countdb.catalog.damage import damaged_file_count
from countdb.catalog.db import connect
from countdb.datadir import DataDir
from countdb.wal.log import all_segment_paths


class StorageCollector:
    def __init__(self, datadir: DataDir):
        self.datadir = datadir

    def collect(self) -> Iterable[Metric]:
        blocks = GaugeMetricFamily("count_storage_blocks", "Published Parquet blocks, by UTC month and kind "
                                   "(points, or shadow: rows replaced by later writes)", labels=["month", "kind"])
        stored = GaugeMetricFamily("count_storage_bytes", "Bytes of published Parquet blocks on disk, by UTC month "
                                   "and kind", labels=["month", "kind"])
        totals = storage_totals(self.datadir)
        for row in totals["months"]:
            blocks.add_metric([row["month"], row["kind"]], row["blocks"])
            stored.add_metric([row["month"], row["kind"]], row["bytes"])
        damaged, segments, wal_bytes = totals["damaged_files"], totals["wal_segments"], totals["wal_bytes"]
        return [blocks, stored,
                GaugeMetricFamily("count_damaged_files", "Damaged blocks and WAL segments registered (quarantined); "
                                  "/health says degraded while above 0", value=damaged),
                GaugeMetricFamily("count_wal_segments", "WAL segment files on disk, all workers", value=segments),
                GaugeMetricFamily("count_wal_bytes", "Bytes of WAL segment files on disk, all workers",
                                  value=wal_bytes)]


def storage_totals(datadir: DataDir) -> dict:
    """Node-wide storage figures read from the catalog and the WAL directory: `{"months": [{month, kind,
    blocks, bytes, rows, bytes_per_row}], "damaged_files", "wal_segments", "wal_bytes"}` (GET /storage and /metrics)."""
    with closing(connect(datadir.catalog_path)) as catalog:
        months = [{"month": month, "kind": kind, "blocks": count, "bytes": total_bytes, "rows": rows,
                   "bytes_per_row": round(total_bytes / rows, 2) if rows else None}
                  for month, kind, count, total_bytes, rows in totals_by_month(catalog)]
        damaged = damaged_file_count(catalog)
    segments, wal_bytes = 0, 0
    for segment in all_segment_paths(datadir.wal):
        try:
            wal_bytes += segment.stat().st_size
            segments += 1
        except FileNotFoundError:
            continue  # flushed and deleted since it was listed
    return {"months": months, "damaged_files": damaged, "wal_segments": segments, "wal_bytes": wal_bytes}
