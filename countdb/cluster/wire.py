"""What crosses the wire between nodes: points with their write stamp (`seq`) as Arrow IPC streams, and
Parquet segments for the replication module.

Invariant: every message carries `seq` per row, so a copy, a hint or a repair lands with the stamp its
coordinator gave it and every replica picks the same last write for a (series, ts).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from countdb.errors import InvalidInput
from countdb.wal.record import SERIES_TYPE

ARROW_STREAM = "application/vnd.apache.arrow.stream"
PARQUET = "application/vnd.apache.parquet"
STAMPED_SCHEMA = pa.schema([("series", SERIES_TYPE), ("ts", pa.int64()), ("value", pa.float64()),
                            ("seq", pa.int64())])
"""Points with their write stamp, as every internal message carries them."""


def stamped(table: pa.Table | pa.RecordBatch) -> pa.Table:
    """`table` (series as string or dictionary, ts, value, seq) in STAMPED_SCHEMA."""
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if table.schema.equals(STAMPED_SCHEMA):
        return table
    table = table.select(["series", "ts", "value", "seq"])
    if not pa.types.is_dictionary(table.schema.field("series").type):
        table = table.set_column(0, "series", pc.dictionary_encode(table["series"]))
    return table.cast(STAMPED_SCHEMA)


def encode_stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, STAMPED_SCHEMA) as stream:
        stream.write_table(stamped(table))
    return sink.getvalue().to_pybytes()


def decode_stream(body: bytes) -> pa.Table:
    """The points of an Arrow IPC stream in STAMPED_SCHEMA; InvalidInput when it is anything else."""
    try:
        table = pa.ipc.open_stream(pa.py_buffer(body)).read_all()
    except (pa.ArrowInvalid, OSError) as error:
        raise InvalidInput(f"body: not an Arrow IPC stream ({error})", field="body") from None
    if not table.schema.equals(STAMPED_SCHEMA):
        raise InvalidInput(f"body: Arrow schema {table.schema} is not the stamped-points schema", field="body")
    return table


def encode_segment(table: pa.Table) -> tuple[bytes, str]:
    """A Parquet segment of `table` and its content address (SHA-256 of the bytes)."""
    table = table.select(["series", "ts", "value", "seq"])
    if pa.types.is_dictionary(table.schema.field("series").type):
        table = table.set_column(0, "series", table["series"].cast(pa.string()))
    sink = pa.BufferOutputStream()
    pq.write_table(stamped(table.sort_by([("series", "ascending"), ("ts", "ascending")])), sink, compression="zstd")
    data = sink.getvalue().to_pybytes()
    return data, hashlib.sha256(data).hexdigest()


def decode_segment(data: bytes, address: str) -> pa.Table:
    """The points of a pushed segment, after checking its bytes against `address`; InvalidInput otherwise."""
    if hashlib.sha256(data).hexdigest() != address:
        raise InvalidInput("segment: its bytes do not match its content address (damaged in transit?)",
                           field="segment")
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowInvalid, OSError) as error:
        raise InvalidInput(f"segment: not a Parquet file ({error})", field="segment") from None
    if table.schema.names != STAMPED_SCHEMA.names:
        raise InvalidInput(f"segment: columns {table.schema.names} are not {STAMPED_SCHEMA.names}", field="segment")
    return stamped(table)


def seq_groups(table: pa.Table) -> list[tuple[int, pa.RecordBatch]]:
    """The rows of `table` split by write stamp, as (seq, batch of series/ts/value) in stamp order."""
    if table.num_rows == 0:
        return []
    lowest, highest = pc.min_max(table["seq"]).values()
    if lowest == highest:  # NOTE: a coordinator's copy, the common case: one stamp, nothing to split
        return [(lowest.as_py(), table.select(["series", "ts", "value"]).combine_chunks().to_batches()[0])]
    # NOTE: one stable sort by stamp, then zero-copy slices: a delivered batch of hints has ~200 stamps, and a
    # filter per stamp cost ~60 ms of the receiving worker's time for 2,000 rows
    ordered = table.take(pc.sort_indices(table["seq"])).combine_chunks()
    stamps = ordered["seq"].chunk(0).to_numpy()
    starts = [0, *(np.flatnonzero(stamps[1:] != stamps[:-1]) + 1).tolist(), len(stamps)]
    points = ordered.select(["series", "ts", "value"]).unify_dictionaries().to_batches()[0]
    return [(int(stamps[start]), points.slice(start, end - start)) for start, end in zip(starts, starts[1:])]
