"""Decoders for every body bench/wire.py makes, used by the smoke test to prove all formats carry the same points.

Independent of Count's parsers on purpose: the benchmark's encoders are checked against the formats' own rules
(csv module, Arrow IPC reader, a protobuf wire reader), so a server bug can't hide an encoder bug or vice versa.
"""

from __future__ import annotations

import csv
import io
import struct

import orjson
import pyarrow as pa

from bench import wire
from bench.dataset import CpuDataset
from countdb.model import series_key

Point = tuple[str, int, float]


def decode_all(dataset: CpuDataset, t0: int, t1: int) -> dict[str, list[Point]]:
    """(series key, ts ms, value) of every point in every format, for time steps [t0, t1)."""
    points = dataset.points(t0, t1)
    out = {
        "json": [p for b in wire.json_bodies(points, 700) for p in _json_items(orjson.loads(b.data))],
        "ndjson": [p for b in wire.ndjson_bodies(points, 700)
                   for p in _json_items(orjson.loads(line) for line in b.data.splitlines())],
        "csv": [p for b in wire.csv_bodies(points, 700) for p in _csv(b.data)],
        "arrow": [p for b in wire.arrow_bodies(points, 700) for p in _arrow(b.data)],
        "arrow_strings": [p for b in wire.arrow_bodies(points, 700, dictionary=False) for p in _arrow(b.data)],
        "line_protocol": [p for b in wire.line_protocol_bodies(dataset, t0, t1, 70) for p in _lines(b.data)],
        "prometheus_remote_write": [p for b in wire.prometheus_bodies(points, 700) for p in _remote_write(b.data)],
    }
    handmade = wire._handmade_encoder(points)  # also check the fallback when the generated module is in use
    out["prometheus_handmade"] = [p for b in _bodies_with(points, handmade) for p in _remote_write(b)]
    return out


def _json_items(items) -> list[Point]:
    return [(series_key(i["series"], i.get("tags")), i["timestamp"], i["value"]) for i in items]


def _csv(data: bytes) -> list[Point]:
    rows = list(csv.reader(io.StringIO(data.decode())))
    assert rows[0] == ["series", "timestamp", "value"]
    return [(row[0], int(row[1]), float(row[2])) for row in rows[1:]]


def _arrow(data: bytes) -> list[Point]:
    table = pa.ipc.open_stream(data).read_all()
    return list(zip(table["series"].cast(pa.string()).to_pylist(), table["timestamp"].to_pylist(),
                    table["value"].to_pylist()))


def _lines(data: bytes) -> list[Point]:
    out = []
    for line in data.decode().splitlines():
        head, fields, ns = line.split(" ")
        measurement, *pairs = head.split(",")
        tags = dict(pair.split("=", 1) for pair in pairs)
        for field in fields.split(","):
            name, value = field.split("=", 1)
            out.append((series_key(f"{measurement}.{name}", tags), int(ns) // 1_000_000, float(value)))
    return out


def _bodies_with(points, encode) -> list[bytes]:
    import numpy as np

    order = np.lexsort((points.ts, points.idx))
    idx, ts, value = points.idx[order], points.ts[order], points.value[order]
    cuts = np.flatnonzero(np.diff(idx)) + 1
    groups = zip(np.concatenate(([0], cuts)).tolist(), np.concatenate((cuts, [len(idx)])).tolist())
    import cramjam
    return [bytes(cramjam.snappy.compress_raw(encode(idx, ts.tolist(), value.tolist(), groups)))]


def _remote_write(data: bytes) -> list[Point]:
    import cramjam

    out = []
    for number, series in _fields(bytes(cramjam.snappy.decompress_raw(data))):
        assert number == 1
        labels, samples = {}, []
        for kind, payload in _fields(series):
            if kind == 1:
                label = dict(_fields(payload))
                labels[label[1].decode()] = label[2].decode()
            else:
                sample = dict(_fields(payload))
                value = struct.unpack("<d", sample[1])[0] if 1 in sample else 0.0  # proto3 omits zeros
                samples.append((sample.get(2, 0), value))
        name = labels.pop("__name__")
        out += [(series_key(name, labels), ts, value) for ts, value in samples]
    return out


def _fields(buffer: bytes):
    """(field number, bytes | int) of a protobuf message: wire types 0 (varint), 1 (64-bit) and 2 (bytes)."""
    pos = 0
    while pos < len(buffer):
        key, pos = _varint(buffer, pos)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, pos = _varint(buffer, pos)
        elif kind == 1:
            value, pos = buffer[pos:pos + 8], pos + 8
        elif kind == 2:
            length, pos = _varint(buffer, pos)
            value, pos = buffer[pos:pos + length], pos + length
        else:
            raise ValueError(f"unexpected protobuf wire type {kind}")
        yield number, value


def _varint(buffer: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buffer[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, pos
