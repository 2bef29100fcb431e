"""DELETE /series/{series}?start=&end= : hide a series' points (bounds in ms, inclusive, optional)."""

from __future__ import annotations

import falcon

from countdb.api.media import int_param, send_json
from countdb.api.services import Deleter
from countdb.ingest.delete import delete_range


class SeriesDeleteResource:
    def __init__(self, deleter: Deleter):
        self.deleter = deleter

    def on_delete(self, req: falcon.Request, resp: falcon.Response, series: str) -> None:
        start, end = int_param(req, "start", required=False), int_param(req, "end", required=False)
        send_json(resp, self.deleter.delete(series, *delete_range(series, start, end)))
