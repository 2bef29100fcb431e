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
        with closing(connect(self.datadir.catalog_path)) as catalog:
            for month, kind, count, total_bytes in totals_by_month(catalog):
                blocks.add_metric([month, kind], count)
                stored.add_metric([month, kind], total_bytes)
            damaged = damaged_file_count(catalog)
        segments, wal_bytes = 0, 0
        for segment in all_segment_paths(self.datadir.wal):
            try:
                wal_bytes += segment.stat().st_size
                segments += 1
            except FileNotFoundError:
                continue  # flushed and deleted since it was listed
        return [blocks, stored,
                GaugeMetricFamily("count_damaged_files", "Damaged blocks and WAL segments registered (quarantined); "
                                  "/health says degraded while above 0", value=damaged),
                GaugeMetricFamily("count_wal_segments", "WAL segment files on disk, all workers", value=segments),
                GaugeMetricFamily("count_wal_bytes", "Bytes of WAL segment files on disk, all workers",
                                  value=wal_bytes)]
