"""GET /storage: the node's storage figures as JSON (what /metrics reports as gauges), for the console and
scripts: published blocks and bytes per UTC month and kind, WAL segments not yet flushed, damaged files."""

from __future__ import annotations

import falcon

from countdb.api.collectors import storage_totals
from countdb.api.media import send_json
from countdb.datadir import DataDir


class StorageResource:
    def __init__(self, datadir: DataDir):
        self.datadir = datadir

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send_json(resp, storage_totals(self.datadir), falcon.HTTP_200)
