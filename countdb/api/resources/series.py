"""DELETE /series/{series}?start=&end= : hide a series' points (bounds in ms, inclusive, optional)."""

from __future__ import annotations

import falcon

from countdb.api.media import int_param, send_json
from countdb.datadir import DataDir
from countdb.ingest.delete import delete_points
from countdb.ingest.writer import Writer


class SeriesDeleteResource:
    def __init__(self, datadir: DataDir, writer: Writer):
        self.datadir = datadir
        self.writer = writer

    def on_delete(self, req: falcon.Request, resp: falcon.Response, series: str) -> None:
        start, end = int_param(req, "start", required=False), int_param(req, "end", required=False)
        tombstone = delete_points(self.datadir, series, start, end, self.writer.next_seq())
        send_json(resp, {"series": tombstone.series, "start": tombstone.start_ms, "end": tombstone.end_ms,
                         "seq": tombstone.seq})
