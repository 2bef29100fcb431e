"""WAL record types: what the bytes of a frame mean. Numbers are forever; a new format gets a new number.

POINT_ROWS (1): a few points packed with struct (cheap for single-point requests).
ARROW_BATCH (2): an Arrow IPC record-batch message with WAL_BATCH_SCHEMA (plain-string Arrow batches).
ARROW_STREAM (3): an Arrow IPC stream of one batch with series dictionary-encoded (WAL_DICTIONARY_SCHEMA), as
  Arrow clients send it, and bigger parsed requests: its keys are never expanded to one string per row.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pyarrow as pa

POINT_ROWS = 1
ARROW_BATCH = 2
ARROW_STREAM = 3

SERIES_TYPE = pa.dictionary(pa.int32(), pa.string())
WAL_BATCH_SCHEMA = pa.schema([("series", pa.string()), ("ts", pa.int64()), ("value", pa.float64())])
WAL_DICTIONARY_SCHEMA = pa.schema([("series", SERIES_TYPE), ("ts", pa.int64()), ("value", pa.float64())])
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
        if pa.types.is_dictionary(columns.schema.field("series").type):
            return ARROW_STREAM, _stream(columns)
        return ARROW_BATCH, memoryview(columns.serialize())
    if len(columns) <= ROWS_LIMIT:
        parts = [_COUNT.pack(len(columns))]
        for key, ts, value in zip(columns.series, columns.ts, columns.values):
            raw = key.encode()
            parts.append(_ROW.pack(ts, value, len(raw)))
            parts.append(raw)
        return POINT_ROWS, b"".join(parts)
    # NOTE: keys dictionary-encoded straight from the Python list, never one string per row: a 50 k-point
    # request's payload is ~1 MB instead of ~10 MB, and twice as fast to build (issue 2: worker RSS).
    batch = pa.record_batch(
        [pa.array(columns.series, SERIES_TYPE), pa.array(columns.ts, pa.int64()), pa.array(columns.values, pa.float64())],
        schema=WAL_DICTIONARY_SCHEMA,
    )
    return ARROW_STREAM, _stream(batch)


def _stream(batch: pa.RecordBatch) -> memoryview:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as stream:
        stream.write_batch(batch)
    return memoryview(sink.getvalue())


def decode_points(record_type: int, payload: bytes) -> Columns | pa.RecordBatch:
    """The inverse of encode_points. Raises ValueError for an unknown type or malformed payload (and nothing
    else: Arrow's and struct's own errors are turned into it)."""
    try:
        return _decode(record_type, payload)
    except (pa.ArrowException, OSError, EOFError, struct.error) as error:
        raise ValueError(f"malformed WAL record of type {record_type}: {error}") from None


def _decode(record_type: int, payload: bytes) -> Columns | pa.RecordBatch:
    if record_type == ARROW_BATCH:
        return pa.ipc.read_record_batch(pa.py_buffer(payload), WAL_BATCH_SCHEMA)
    if record_type == ARROW_STREAM:
        reader = pa.ipc.open_stream(pa.py_buffer(payload))
        if not reader.schema.equals(WAL_DICTIONARY_SCHEMA):
            raise ValueError(f"ARROW_STREAM record has schema {reader.schema}")
        return reader.read_next_batch()
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


UNFLUSHED_SCHEMA = pa.schema([("series", SERIES_TYPE), ("ts", pa.int64()), ("value", pa.float64()),
                              ("seq", pa.int64()), ("pos", pa.int64())])
"""Decoded WAL points. `seq` is the request's write sequence; `pos` orders points inside one segment, so
two points of one request with the same series and timestamp resolve to the later one. Series keys are
dictionary-encoded: a batch repeats few keys of ~100 bytes each (issue 2: worker RSS)."""


def with_series_dictionary(batch: pa.RecordBatch) -> pa.RecordBatch:
    """`batch` with its series column dictionary-encoded (a no-op if it already is)."""
    series = batch.column(0)
    if pa.types.is_dictionary(series.type):
        return batch
    return batch.set_column(0, "series", series.dictionary_encode())


def records_to_table(records: list[tuple[int, Columns | pa.RecordBatch]], first_pos: int = 0) -> pa.Table:
    """Decoded records (seq, points) in log order → one table with UNFLUSHED_SCHEMA."""
    series, ts, values, seqs, batches = [], [], [], [], []

    def take_rows() -> None:
        if ts:
            batches.append(pa.record_batch([pa.array(series, SERIES_TYPE), pa.array(ts, pa.int64()),
                                            pa.array(values, pa.float64()), pa.array(seqs, pa.int64())],
                                           names=["series", "ts", "value", "seq"]))
            series.clear(), ts.clear(), values.clear(), seqs.clear()

    for seq, points in records:
        if isinstance(points, pa.RecordBatch):
            take_rows()
            batch = with_series_dictionary(points)
            batches.append(batch.append_column("seq", pa.repeat(pa.scalar(seq, pa.int64()), batch.num_rows)))
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
