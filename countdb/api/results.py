"""Query results in the format the client asks for: JSON (default), NDJSON, CSV, Arrow IPC stream or Parquet.

Invariant: one negotiation for every query endpoint (`format=` wins over `Accept`; nothing acceptable is a 406
before any query runs), and a result of more than STREAM_ROWS rows is streamed batch by batch from its Arrow
reader, never built whole in memory. JSON layouts are per endpoint (api/json_shapes.py); the other formats
are the flat rows as they are.
"""

from __future__ import annotations

import io
from decimal import Decimal
from itertools import chain
from typing import Callable, Iterable, Iterator

import falcon
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import urllib3

from countdb.errors import InvalidInput, NotAcceptable

FORMATS = {
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "csv": "text/csv",
    "arrow": "application/vnd.apache.arrow.stream",
    "parquet": "application/vnd.apache.parquet",
}
_BY_MEDIA_TYPE = {media_type: name for name, media_type in FORMATS.items()}
STREAM_ROWS = 64 * 1024
STREAM_CHUNK_BYTES = 256 * 1024
# NOTE: JSON, NDJSON and CSV's nested columns are written from Python objects, and pyarrow's to_pylist holds the GIL
# for the whole batch it converts: 66 ms for a 64 Ki-row batch of three columns, during which no other thread of the
# worker runs, not even a write or /health in their own lane (issue 14: 50 clients asking for a large NDJSON answer
# took a steady writer's insert p99 to 4-31x). Slices of this many rows hold it ~2 ms at a time, and convert as fast
# in all.
PYTHON_ROWS = 2048

JsonShape = Callable[[Iterable[pa.RecordBatch]], Iterator[bytes]]
Rows = pa.RecordBatchReader | pa.Table


def choose_format(req: falcon.Request) -> str:
    """The format name for this request: `format=` if given, else the best match of `Accept` (JSON when
    absent or `*/*`). Call before running the query. InvalidInput for an unknown format=, NotAcceptable
    when Accept allows none of FORMATS."""
    asked = req.get_param("format")
    if asked is not None:
        if asked.lower() not in FORMATS:
            raise InvalidInput(f"format: {asked!r} is not one of {', '.join(FORMATS)}", field="format")
        return asked.lower()
    accept = req.get_header("Accept")
    if accept is None or accept == "*/*":
        return "json"
    preferred = req.client_prefers(list(FORMATS.values()))
    if preferred is None:
        raise NotAcceptable(f"Accept: {req.accept!r} allows none of the result types "
                            f"({', '.join(FORMATS.values())}); or use format={'|'.join(FORMATS)}")
    return _BY_MEDIA_TYPE[preferred]


def send_result(resp: falcon.Response, result_format: str, rows: Rows, json_shape: JsonShape | None = None) -> None:
    """Answer `rows` in `result_format`; JSON is laid out by `json_shape` (default: an array of row objects).
    Small results get a Content-Length; bigger ones are streamed (chunked) as the reader yields batches."""
    batches = iter(rows.to_batches() if isinstance(rows, pa.Table) else rows)
    head, total = [], 0
    for batch in batches:
        head.append(batch)
        total += batch.num_rows
        if total > STREAM_ROWS:
            break
    if result_format == "json":
        chunks = (json_shape or json_rows)(python_sized(chain(head, batches)))
    else:
        chunks = RENDERERS[result_format](rows.schema, chain(head, batches))
    resp.content_type = FORMATS[result_format]
    resp.vary = ("Accept",)
    if total > STREAM_ROWS:
        resp.stream = chunks
    else:
        resp.data = b"".join(chunks)


def relay_answer(resp: falcon.Response, answer: urllib3.BaseHTTPResponse) -> None:
    """Answer with another node's answer to the same query (cluster/reads.py owner_answer), as it came: its status,
    type and body; a body the owner streamed is streamed on as it arrives."""
    resp.status = answer.status
    resp.content_type = answer.headers.get("Content-Type")
    resp.vary = ("Accept",)
    if "Content-Length" in answer.headers:
        resp.data = answer.read()
        answer.release_conn()
    else:
        resp.stream = _relayed(answer)


def _relayed(answer: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    try:
        yield from answer.stream(STREAM_CHUNK_BYTES)
    finally:
        answer.close()


def python_sized(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """`batches` cut into slices of at most PYTHON_ROWS rows (zero-copy), for the renderers that go through Python
    objects."""
    for batch in batches:
        for start in range(0, batch.num_rows, PYTHON_ROWS):
            yield batch.slice(start, PYTHON_ROWS)


def json_rows(batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    """`[{column: value, …}, …]`: the original /query/range layout."""
    yield b"["
    separator = b""
    for batch in batches:
        if batch.num_rows:
            yield separator + dumps(python_rows(batch))[1:-1]
            separator = b","
    yield b"]"


def json_scalar(batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    """The first column of the first row as a bare JSON value (null when there is none)."""
    for batch in batches:
        if batch.num_rows:
            yield dumps(batch.column(0)[0].as_py())
            return
    yield b"null"


def python_rows(batch: pa.RecordBatch) -> list[dict]:
    """Rows as dicts; maps (tags) as dicts too. NOTE: maps_as_pydicts costs 4x, so only when there are maps."""
    if any(pa.types.is_map(field.type) for field in batch.schema):
        return batch.to_pylist(maps_as_pydicts="strict")
    return batch.to_pylist()


def dumps(document) -> bytes:
    return orjson.dumps(document, default=_json_default)


def _json_default(value):
    """Types DuckDB can return that orjson doesn't write (decimals, intervals, blobs…)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _ndjson(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    for batch in python_sized(batches):
        if batch.num_rows:
            yield b"".join(dumps(row) + b"\n" for row in python_rows(batch))


def _csv(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    """RFC 4180 CSV with a header; nested values (tags) as JSON text, bytes as hex, nulls as empty fields."""
    sink = io.BytesIO()
    flat_schema = pa.schema([pa.field(f.name, pa.string()) if _as_text(f.type) else f for f in schema])
    through_python = flat_schema != schema  # _flat writes those columns from Python objects: PYTHON_ROWS at a time
    with pacsv.CSVWriter(sink, flat_schema) as writer:
        for batch in python_sized(batches) if through_python else batches:
            writer.write_batch(_flat(batch))
            yield _drain(sink)
    yield _drain(sink)


def _arrow(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
            yield _drain(sink)
    yield _drain(sink)


def _parquet(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    """One row group per batch, zstd; the footer comes last, so a reader needs the whole body."""
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        for batch in batches:
            writer.write_batch(batch)
            yield _drain(sink)
    yield _drain(sink)


def _drain(sink: io.BytesIO) -> bytes:
    data = sink.getvalue()
    sink.seek(0)
    sink.truncate()
    return data


def _flat(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Nested columns (tags) as JSON text and binary ones as hex, as in JSON: what CSV can hold."""
    for i, field in enumerate(batch.schema):
        if _as_text(field.type):
            texts = [None if value is None else value.hex() if isinstance(value, bytes) else dumps(value).decode()
                     for value in batch.column(i).to_pylist(maps_as_pydicts="strict")]
            batch = batch.set_column(i, field.name, pa.array(texts, pa.string()))
    return batch


def _as_text(arrow_type: pa.DataType) -> bool:
    return pa.types.is_nested(arrow_type) or pa.types.is_binary(arrow_type) or \
        pa.types.is_large_binary(arrow_type) or pa.types.is_fixed_size_binary(arrow_type)


RENDERERS = {"ndjson": _ndjson, "csv": _csv, "arrow": _arrow, "parquet": _parquet}
