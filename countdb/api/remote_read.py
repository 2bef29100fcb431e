"""Prometheus remote read: a snappy `prometheus.ReadRequest` in; matched series out, as a snappy `ReadResponse`
(SAMPLES) or a stream of framed `ChunkedReadResponse`s carrying XOR chunks (STREAMED_XOR_CHUNKS).

Invariant: labels go back exactly as remote write stored them (`__name__` from the series name, the tags as
the other labels, sorted by name); each query reads its points once, through the PromQL fetch (promql/fetch.py).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterator

import cramjam
import google_crc32c
from google.protobuf.message import DecodeError

from countdb.api.xor_chunk import encode_xor_chunk, uvarint
from countdb.errors import InvalidInput
from countdb.ingest import prompb_pb2
from countdb.ingest.remote_write import decompress_snappy_block
from countdb.query.engine import QueryEngine
from countdb.query.promql.fetch import RemoteFor, fetch_samples
from countdb.query.selectors import Matcher

SAMPLES_CONTENT_TYPE = "application/x-protobuf"
CHUNKED_CONTENT_TYPE = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"
SAMPLES_PER_CHUNK = 120  # what Prometheus' own head chunks hold
FRAME_BYTES = 1 << 20  # Prometheus' default remote-read frame size
_OPERATORS = {prompb_pb2.LabelMatcher.EQ: "=", prompb_pb2.LabelMatcher.NEQ: "!=",
              prompb_pb2.LabelMatcher.RE: "=~", prompb_pb2.LabelMatcher.NRE: "!~"}


@dataclass
class SeriesSamples:
    labels: list[tuple[str, str]]
    ts_ms: list[int]
    values: list[float]


def decode_read_request(body: bytes, max_decompressed_bytes: int) -> prompb_pb2.ReadRequest:
    """The ReadRequest in a snappy block body; InvalidInput(field="body") for bad snappy or protobuf."""
    request = prompb_pb2.ReadRequest()
    try:
        request.ParseFromString(memoryview(decompress_snappy_block(body, max_decompressed_bytes)))
    except DecodeError as error:
        raise InvalidInput(f"body is not a prometheus.ReadRequest: {error}", field="body") from None
    return request


def wants_chunks(request: prompb_pb2.ReadRequest) -> bool:
    """True when the client accepts STREAMED_XOR_CHUNKS (Prometheus answers in that type whenever accepted)."""
    return prompb_pb2.ReadRequest.STREAMED_XOR_CHUNKS in request.accepted_response_types


def read_query(engine: QueryEngine, query: prompb_pb2.Query, max_series: int,
               remote_for: RemoteFor | None = None) -> list[SeriesSamples]:
    """The samples of every series the query's matchers select within its time range, narrowed by its hints
    (with other cluster nodes' points: `remote_for`)."""
    start_ms, end_ms = query.start_timestamp_ms, query.end_timestamp_ms
    if query.HasField("hints") and query.hints.end_ms:
        start_ms, end_ms = max(start_ms, query.hints.start_ms), min(end_ms, query.hints.end_ms)
    if start_ms > end_ms:
        return []
    matchers = tuple(Matcher(m.name, _OPERATORS[m.type], m.value) for m in query.matchers)
    samples = fetch_samples(engine, matchers, start_ms, end_ms, max_series, remote_for)
    out = []
    for index, labels in enumerate(samples.labels):
        ts_ms, values = samples.series(index)
        out.append(SeriesSamples(sorted(labels.items()), ts_ms.tolist(), values.tolist()))
    return out


def samples_response(results: list[list[SeriesSamples]]) -> bytes:
    """A snappy block ReadResponse, one QueryResult per query in request order."""
    response = prompb_pb2.ReadResponse()
    for series_list in results:
        result = response.results.add()
        for series in series_list:
            timeseries = result.timeseries.add()
            timeseries.labels.extend(prompb_pb2.Label(name=n, value=v) for n, v in series.labels)
            timeseries.samples.extend(prompb_pb2.Sample(value=v, timestamp=t)
                                      for t, v in zip(series.ts_ms, series.values))
    return bytes(cramjam.snappy.compress_raw(response.SerializeToString()))


def chunked_frames(query_index: int, series_list: list[SeriesSamples]) -> Iterator[bytes]:
    """Frames of ChunkedReadResponse (uvarint length, big-endian CRC32C of the message, the message), each
    about FRAME_BYTES at most; a series whose chunks do not fit one frame continues in the next."""
    response = prompb_pb2.ChunkedReadResponse(query_index=query_index)
    size = 0
    for series in series_list:
        current = None
        for start in range(0, len(series.ts_ms), SAMPLES_PER_CHUNK):
            ts, values = series.ts_ms[start:start + SAMPLES_PER_CHUNK], series.values[start:start + SAMPLES_PER_CHUNK]
            if current is None:
                current = response.chunked_series.add()
                current.labels.extend(prompb_pb2.Label(name=n, value=v) for n, v in series.labels)
            chunk = current.chunks.add(min_time_ms=ts[0], max_time_ms=ts[-1], type=prompb_pb2.Chunk.XOR,
                                       data=encode_xor_chunk(ts, values))
            size += len(chunk.data) + 32
            if size >= FRAME_BYTES:
                yield _frame(response)
                response, size, current = prompb_pb2.ChunkedReadResponse(query_index=query_index), 0, None
    if response.chunked_series:
        yield _frame(response)


def _frame(response: prompb_pb2.ChunkedReadResponse) -> bytes:
    data = response.SerializeToString()
    return uvarint(len(data)) + struct.pack(">I", google_crc32c.value(data)) + data

