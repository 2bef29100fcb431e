"""GET /metrics: the node's metrics in Prometheus text format (every worker's, added up)."""

from __future__ import annotations

import falcon

from countdb.api.collectors import StorageCollector
from countdb.obs.metrics import EXPOSITION_CONTENT_TYPE, exposition


class MetricsResource:
    def __init__(self, storage: StorageCollector):
        self.storage = storage

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = EXPOSITION_CONTENT_TYPE
        resp.data = exposition([self.storage])
