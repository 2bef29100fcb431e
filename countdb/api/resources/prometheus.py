"""POST /api/v1/write: Prometheus remote write 1.0 (snappy-compressed protobuf), answering 204; and
POST /api/v1/read: remote read of what was written.

Valid samples are written; invalid ones (bad labels, out-of-range timestamps) are reported with 400, which
Prometheus does not retry. Staleness markers and other NaN/±Inf samples are dropped and counted, not stored.
"""

from __future__ import annotations

import falcon

from countdb.api.media import read_body
from countdb.api.remote_read import (CHUNKED_CONTENT_TYPE, SAMPLES_CONTENT_TYPE, chunked_frames,
                                     decode_read_request, read_query, samples_response, wants_chunks)
from countdb.api.services import Reads
from countdb.errors import InvalidInput
from countdb.ingest.remote_write import decode_write_request
from countdb.ingest.validate import check_point_count
from countdb.ingest.writer import Writer
from countdb.obs import metrics
from countdb.query.engine import QueryEngine
from countdb.wal.record import Columns


class RemoteWriteResource:
    def __init__(self, writer: Writer, max_body_bytes: int, max_points: int):
        self.writer = writer
        self.max_body_bytes = max_body_bytes
        self.max_points = max_points

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.writer.wait_for_room()
        parsed = decode_write_request(read_body(req, self.max_body_bytes, passthrough=("snappy",)),
                                      self.max_body_bytes)
        check_point_count(len(parsed.ts_ms), self.max_points)
        metrics.reject_points("invalid", parsed.invalid_samples)
        metrics.reject_points("non_finite", parsed.non_finite)
        columns = Columns(parsed.series, parsed.ts_ms, parsed.values)
        if columns.ts:
            self.writer.write([columns])
            metrics.POINTS_INGESTED.labels("remote_write").inc(len(columns.ts))
        if parsed.invalid_samples:
            raise InvalidInput(f"{parsed.invalid_samples} invalid samples were not stored: "
                               + "; ".join(parsed.invalid), field="body")
        resp.status = falcon.HTTP_204


class RemoteReadResource:
    """POST /api/v1/read: Prometheus remote read, answering SAMPLES or STREAMED_XOR_CHUNKS as the client accepts."""

    def __init__(self, engine: QueryEngine, reads: Reads, max_body_bytes: int, max_series: int):
        self.engine = engine
        self.reads = reads
        self.max_body_bytes = max_body_bytes
        self.max_series = max_series

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = decode_read_request(read_body(req, self.max_body_bytes, passthrough=("snappy",)),
                                      self.max_body_bytes)
        results = [read_query(self.engine, query, self.max_series, self.reads.selection_points)
                   for query in request.queries]
        if wants_chunks(request):
            resp.content_type = CHUNKED_CONTENT_TYPE
            resp.stream = (frame for index, series in enumerate(results) for frame in chunked_frames(index, series))
        else:
            resp.content_type = SAMPLES_CONTENT_TYPE
            resp.set_header("Content-Encoding", "snappy")
            resp.data = samples_response(results)
