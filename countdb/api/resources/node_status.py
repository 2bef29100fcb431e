"""GET /status: what the console's Node view shows beside /health and /storage. The node's ingest counters since
it started, all workers together (the console turns two readings into a rate, as Prometheus' rate() would); its
compaction: the last background run and what the next would do; in a cluster, the members as this node sees them
(the document GET /cluster/status gives operators, here for readers)."""

from __future__ import annotations

import time
from contextlib import closing

import falcon

from countdb.api.media import send_json
from countdb.api.resources.internal import cluster_status
from countdb.api.services import Services
from countdb.catalog.db import connect
from countdb.ingest.compaction import last_compaction
from countdb.obs.metrics import node_totals
from countdb.storage.compact import pending_compaction


class NodeStatusResource:
    def __init__(self, services: Services):
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        settings, datadir = self.services.settings, self.services.datadir
        now = time.time()
        with closing(connect(datadir.catalog_path)) as catalog:
            pending = pending_compaction(catalog, settings.retention_days, int(now * 1000))
        cluster = self.services.cluster
        ingested, rejected = node_totals("count_points_ingested", "count_points_rejected").values()
        send_json(resp, {
            "time": now,
            "ingest": {"points_ingested": ingested, "points_rejected": rejected},
            "compaction": {"interval_seconds": settings.compaction_interval_seconds,
                           "last": last_compaction(datadir.last_compaction_path),
                           "pending": [{"month": job.month, "reasons": list(job.reasons), "blocks": len(job.replaced)}
                                       for job in pending]},
            "cluster": cluster_status(cluster) if cluster else None,
        })
