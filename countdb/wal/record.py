"""WAL record types: what the bytes of a frame mean. Numbers are forever; a new format gets a new number.

POINT_ROWS (1): a few points packed with struct (cheap for single-point requests).
ARROW_BATCH (2): an Arrow IPC record-batch message with WAL_BATCH_SCHEMA (cheap for big batches).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pyarrow as pa

POINT_ROWS = 1
ARROW_BATCH = 2

WAL_BATCH_SCHEMA = pa.schema([("series", pa.string()), ("ts", pa.int64()), ("value", pa.float64())])
_ROW = struct.Struct("<qdH")
_COUNT = struct.Struct("<I")
ROWS_LIMIT = 32  # up to this many points a record is POINT_ROWS, above it ARROW_BATCH


@dataclass
class Columns:
    """Points as three parallel columns (series key, timestamp in ms, value)."""

    series: list[str]
    ts: list[int]
    values: list[float]

    def __len__(self) -> int:
        return len(self.ts)


def encode_points(columns: Columns | pa.RecordBatch) -> tuple[int, bytes | memoryview]:
    """Pick the cheaper record type for these points; returns (record type, payload)."""
    if isinstance(columns, pa.RecordBatch):
        return ARROW_BATCH, memoryview(columns.serialize())
    if len(columns) <= ROWS_LIMIT:
        parts = [_COUNT.pack(len(columns))]
        for key, ts, value in zip(columns.series, columns.ts, columns.values):
            raw = key.encode()
            parts.append(_ROW.pack(ts, value, len(raw)))
            parts.append(raw)
        return POINT_ROWS, b"".join(parts)
    batch = pa.record_batch(
        [pa.array(columns.series, pa.string()), pa.array(columns.ts, pa.int64()), pa.array(columns.values, pa.float64())],
        schema=WAL_BATCH_SCHEMA,
    )
    return ARROW_BATCH, memoryview(batch.serialize())


def decode_points(record_type: int, payload: bytes) -> Columns | pa.RecordBatch:
    """The inverse of encode_points. Raises ValueError for an unknown type or malformed payload."""
    if record_type == ARROW_BATCH:
        return pa.ipc.read_record_batch(pa.py_buffer(payload), WAL_BATCH_SCHEMA)
    if record_type != POINT_ROWS:
        raise ValueError(f"unknown WAL record type {record_type}")
    (count,) = _COUNT.unpack_from(payload, 0)
    pos, columns = _COUNT.size, Columns([], [], [])
    for _ in range(count):
        ts, value, length = _ROW.unpack_from(payload, pos)
        pos += _ROW.size
        columns.series.append(payload[pos : pos + length].decode())
        columns.ts.append(ts)
        columns.values.append(value)
        pos += length
    if pos != len(payload):
        raise ValueError("POINT_ROWS payload has trailing bytes")
    return columns


UNFLUSHED_SCHEMA = pa.schema([("series", pa.string()), ("ts", pa.int64()), ("value", pa.float64()),
                              ("seq", pa.int64()), ("pos", pa.int64())])
"""Decoded WAL points. `seq` is the request's write sequence; `pos` orders points inside one segment, so
two points of one request with the same series and timestamp resolve to the later one."""


def records_to_table(records: list[tuple[int, Columns | pa.RecordBatch]], first_pos: int = 0) -> pa.Table:
    """Decoded records (seq, points) in log order → one table with UNFLUSHED_SCHEMA."""
    series, ts, values, seqs, batches = [], [], [], [], []

    def take_rows() -> None:
        if ts:
            batches.append(pa.record_batch([pa.array(series, pa.string()), pa.array(ts, pa.int64()),
                                            pa.array(values, pa.float64()), pa.array(seqs, pa.int64())],
                                           names=["series", "ts", "value", "seq"]))
            series.clear(), ts.clear(), values.clear(), seqs.clear()

    for seq, points in records:
        if isinstance(points, pa.RecordBatch):
            take_rows()
            batches.append(points.append_column("seq", pa.repeat(pa.scalar(seq, pa.int64()), points.num_rows)))
        else:
            series.extend(points.series)
            ts.extend(points.ts)
            values.extend(points.values)
            seqs.extend([seq] * len(points.ts))
    take_rows()
    if not batches:
        return UNFLUSHED_SCHEMA.empty_table()
    table = pa.Table.from_batches(batches).combine_chunks()
    return table.append_column("pos", pa.arange(first_pos, first_pos + table.num_rows))
