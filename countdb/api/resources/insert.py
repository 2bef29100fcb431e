"""POST /insert: one JSON point (the original API), a JSON array, NDJSON, CSV or an Arrow IPC stream."""

from __future__ import annotations

import falcon

from countdb.api.media import media_type, read_body, send_json
from countdb.errors import UnsupportedFormat
from countdb.ingest import parse
from countdb.ingest.writer import Writer
from countdb.obs import metrics

ARROW_STREAM = "application/vnd.apache.arrow.stream"
PARSERS = {
    "": parse.parse_json,
    "application/json": parse.parse_json,
    "application/x-ndjson": parse.parse_ndjson,
    "application/jsonlines": parse.parse_ndjson,
    "text/csv": parse.parse_csv,
    ARROW_STREAM: parse.parse_arrow,
}
FORMATS = {parse.parse_json: "json", parse.parse_ndjson: "ndjson", parse.parse_csv: "csv", parse.parse_arrow: "arrow"}


class InsertResource:
    def __init__(self, writer: Writer, max_body_bytes: int, max_points: int):
        self.writer = writer
        self.max_body_bytes = max_body_bytes
        self.max_points = max_points

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        parser = PARSERS.get(media_type(req))
        if parser is None:
            raise UnsupportedFormat(f"Content-Type {req.content_type!r} is not accepted by /insert; use one of: "
                                    + ", ".join(t for t in PARSERS if t))
        self.writer.wait_for_room()
        points = parser(read_body(req, self.max_body_bytes), self.max_points)
        written = self.writer.write(points if isinstance(points, list) else [points])
        metrics.POINTS_INGESTED.labels(FORMATS[parser]).inc(written)
        send_json(resp, {"status": "created", "points": written}, falcon.HTTP_201)
