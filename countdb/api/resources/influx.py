"""InfluxDB line protocol writes: /write (1.x), /api/v2/write (2.x), /api/v3/write_lp (3.x), answering 204.

`db` / `bucket` are required, as InfluxDB requires them, but Count has one namespace: they don't partition data.
Valid lines are written and bad ones reported (InfluxDB 3's partial-write shape), except with v3's
`accept_partial=false`, where one bad line rejects the request and nothing is written.
"""

from __future__ import annotations

import time

import falcon

from countdb.api.media import read_body
from countdb.errors import InvalidInput
from countdb.ingest.lineprotocol import ParsedLines, normalize_precision, parse_lines
from countdb.ingest.validate import check_point_count
from countdb.ingest.writer import Writer
from countdb.obs import metrics
from countdb.wal.record import Columns

STRING_FIELDS_HEADER = "X-Count-String-Fields-Skipped"
_NAMESPACE_PARAM = {"v1": "db", "v2": "bucket", "v3": "db"}


class LineProtocolResource:
    def __init__(self, writer: Writer, api: str, max_body_bytes: int, max_points: int):
        self.writer = writer
        self.api = api
        self.max_body_bytes = max_body_bytes
        self.max_points = max_points

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        namespace = _NAMESPACE_PARAM[self.api]
        if not req.get_param(namespace):
            raise InvalidInput(f"{namespace}: query parameter is required", field=namespace)
        precision = normalize_precision(req.get_param("precision") or "", self.api)
        self.writer.wait_for_room()
        parsed = parse_lines(read_body(req, self.max_body_bytes), precision, time.time_ns())
        check_point_count(len(parsed.ts_ms), self.max_points)
        partial_ok = self.api != "v3" or req.get_param_as_bool("accept_partial", default=True)
        metrics.reject_points("invalid", len(parsed.errors))
        if parsed.errors and not partial_ok:
            metrics.reject_points("invalid_batch", len(parsed.ts_ms))
            raise _line_errors("parsing failed for write_lp endpoint", parsed)
        if parsed.ts_ms:
            self.writer.write([Columns(parsed.series, parsed.ts_ms, parsed.values)])
            metrics.POINTS_INGESTED.labels("line_protocol").inc(len(parsed.ts_ms))
        resp.set_header(STRING_FIELDS_HEADER, str(parsed.string_fields))
        if parsed.errors:
            raise _line_errors("partial write of line protocol occurred", parsed)
        resp.status = falcon.HTTP_204


def _line_errors(message: str, parsed: ParsedLines) -> InvalidInput:
    details = [{"original_line": e.original_line, "line_number": e.line_number, "error_message": e.message}
               for e in parsed.errors]
    return InvalidInput(message, field="body", line=parsed.errors[0].line_number, details=details)
