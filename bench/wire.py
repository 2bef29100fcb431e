"""Encoders from flat Points (bench/dataset.py) to request bodies in every wire format Count accepts.

Why vectorised: bodies are pre-encoded before the clock starts, and at the large scale that is tens of millions of
points; pyarrow string kernels build each body in bulk, so the client never limits the measured throughput.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from bench.dataset import FIELDS, MEASUREMENT, CpuDataset, Points

_CHUNK_POINTS = 200_000  # points rendered to text at once: bounds the encoder's memory


@dataclass(frozen=True)
class Body:
    data: bytes
    points: int


def json_bodies(points: Points, per_request: int = 5_000) -> Iterator[Body]:
    """JSON arrays of {"series","tags","timestamp","value"} objects."""
    for items in _rendered(points, _json_prefixes(points), "}", ",", per_request):
        for start, stop, data in _ranges(items, per_request):
            yield Body(b"[" + data[:-1] + b"]", stop - start)


def ndjson_bodies(points: Points, per_request: int = 5_000) -> Iterator[Body]:
    """Newline-delimited JSON: one point object per line."""
    for items in _rendered(points, _json_prefixes(points), "}", "\n", per_request):
        for start, stop, data in _ranges(items, per_request):
            yield Body(data, stop - start)


def csv_bodies(points: Points, per_request: int = 5_000) -> Iterator[Body]:
    """CSV with a `series,timestamp,value` header; the canonical series key is quoted."""
    prefixes = ['"' + key.replace('"', '""') + '",' for key in points.series.keys]
    for items in _rendered(points, prefixes, "", "\n", per_request, value_sep=","):
        for start, stop, data in _ranges(items, per_request):
            yield Body(b"series,timestamp,value\n" + data, stop - start)


def arrow_bodies(points: Points, per_request: int = 100_000, dictionary: bool = True) -> Iterator[Body]:
    """Arrow IPC streams of (series, timestamp int64 ms, value float64), one record batch per request."""
    keys = pa.array(points.series.keys, pa.string())
    for start in range(0, len(points), per_request):
        part = points.slice(start, start + per_request)
        series = pa.DictionaryArray.from_arrays(pa.array(part.idx, pa.int32()), keys)
        if not dictionary:
            series = series.cast(pa.string())
        batch = pa.record_batch([series, pa.array(part.ts, pa.int64()), pa.array(part.value, pa.float64())],
                                names=["series", "timestamp", "value"])
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        yield Body(sink.getvalue().to_pybytes(), len(part))


def line_protocol_bodies(dataset: CpuDataset, t0: int, t1: int, lines_per_request: int = 5_000) -> Iterator[Body]:
    """`cpu,<tags> usage_user=…,… <ns>` lines: one line per host and time step carries 10 points."""
    hosts = dataset.scale.hosts
    prefixes = pa.array([MEASUREMENT + "," + ",".join(f"{k}={v}" for k, v in sorted(tags.items()))
                         for tags in dataset.host_tags])
    steps_per_chunk = max(1, _CHUNK_POINTS // dataset.scale.series)
    by_field = dataset.values.reshape(hosts, len(FIELDS), -1)
    for c0 in range(t0, t1, steps_per_chunk):
        c1 = min(t1, c0 + steps_per_chunk)
        parts = [prefixes.take(pa.array(np.tile(np.arange(hosts), c1 - c0)))]
        for n, field in enumerate(FIELDS):
            parts += [(" " if n == 0 else ",") + field + "=", _floats(by_field[:, n, c0:c1].T.reshape(-1))]
        parts += [" ", _ints(np.repeat(dataset.timestamps[c0:c1] * 1_000_000, hosts)), "\n"]
        lines = pc.binary_join_element_wise(*parts, "")
        for start, stop, data in _ranges(lines, lines_per_request):
            yield Body(data, (stop - start) * len(FIELDS))


def prometheus_bodies(points: Points, per_request: int = 5_000) -> Iterator[Body]:
    """Snappy-compressed protobuf WriteRequests; samples of one series are grouped into one TimeSeries."""
    import cramjam

    encode = _prompb_encoder(points) or _handmade_encoder(points)
    for start in range(0, len(points), per_request):
        part = points.slice(start, start + per_request)
        order = np.lexsort((part.ts, part.idx))
        idx, ts, value = part.idx[order], part.ts[order], part.value[order]
        cuts = np.flatnonzero(np.diff(idx)) + 1
        groups = zip(np.concatenate(([0], cuts)).tolist(), np.concatenate((cuts, [len(idx)])).tolist())
        raw = encode(idx, ts.tolist(), value.tolist(), groups)
        yield Body(bytes(cramjam.snappy.compress_raw(raw)), len(part))


def prometheus_encoder_name() -> str:
    """Which protobuf encoder prometheus_bodies uses: the server's generated module, or the fallback."""
    try:
        from countdb.ingest import prompb_pb2  # noqa: F401
        return "countdb.ingest.prompb_pb2"
    except ImportError:
        return "bench.wire handmade"


def _labels(points: Points, series: int) -> list[tuple[str, str]]:
    return sorted([("__name__", points.series.names[series]), *points.series.tags[series].items()])


def _prompb_encoder(points: Points):
    try:
        from countdb.ingest import prompb_pb2 as pb
    except ImportError:
        return None
    labels = [[pb.Label(name=k, value=v) for k, v in _labels(points, s)] for s in range(len(points.series.keys))]

    def encode(idx, ts, value, groups) -> bytes:
        request = pb.WriteRequest()
        for a, b in groups:
            series = request.timeseries.add()
            series.labels.extend(labels[idx[a]])
            series.samples.extend(pb.Sample(value=v, timestamp=t) for v, t in zip(value[a:b], ts[a:b]))
        return request.SerializeToString()
    return encode


def _handmade_encoder(points: Points):
    """WriteRequest{1: TimeSeries{1: Label{1: name, 2: value}, 2: Sample{1: double, 2: int64}}}."""
    def field(number: int, payload: bytes) -> bytes:
        return _varint(number << 3 | 2) + _varint(len(payload)) + payload
    labels = [b"".join(field(1, field(1, k.encode()) + field(2, v.encode())) for k, v in _labels(points, s))
              for s in range(len(points.series.keys))]

    def encode(idx, ts, value, groups) -> bytes:
        out = []
        for a, b in groups:
            samples = b"".join(field(2, b"\x09" + struct.pack("<d", v) + b"\x10" + _varint(t & 0xFFFFFFFFFFFFFFFF))
                               for v, t in zip(value[a:b], ts[a:b]))
            out.append(field(1, labels[idx[a]] + samples))
        return b"".join(out)
    return encode


def _varint(number: int) -> bytes:
    out = bytearray()
    while number > 0x7F:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _json_prefixes(points: Points) -> list[str]:
    out = []
    for name, tags in zip(points.series.names, points.series.tags):
        head = '{"series":' + orjson.dumps(name).decode()
        out.append(head + (',"tags":' + orjson.dumps(tags).decode() if tags else "") + ',"timestamp":')
    return out


def _rendered(points: Points, prefixes: list[str], suffix: str, terminator: str, per_request: int,
              value_sep: str = ',"value":'):
    """Yield string arrays where each string is one point: prefix[series] ts sep value suffix terminator."""
    table = pa.array(prefixes, pa.string())
    step = max(per_request, _CHUNK_POINTS // per_request * per_request)
    for start in range(0, len(points), step):
        chunk = points.slice(start, start + step)
        yield pc.binary_join_element_wise(table.take(pa.array(chunk.idx)), _ints(chunk.ts), value_sep,
                                          _floats(chunk.value), suffix + terminator, "")


def _ranges(items: pa.Array, per_request: int):
    """(start, stop, bytes) for consecutive runs of `per_request` strings, concatenated without copies in between."""
    width = np.int64 if pa.types.is_large_string(items.type) else np.int32
    offsets = np.frombuffer(items.buffers()[1], dtype=width)[items.offset:items.offset + len(items) + 1]
    data = memoryview(items.buffers()[2])
    for start in range(0, len(items), per_request):
        stop = min(len(items), start + per_request)
        yield start, stop, data[offsets[start]:offsets[stop]].tobytes()


def _ints(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values, pa.int64()), pa.string())


def _floats(values: np.ndarray) -> pa.Array:
    """Shortest round-trip text of each float64, e.g. 0.1, 58.123456789012344, 1e-7."""
    return pc.cast(pa.array(values, pa.float64()), pa.string())
