"""Parsing /insert bodies (JSON object or array, NDJSON, CSV, Arrow IPC) into validated columns.

Invariant: a body is accepted whole or rejected whole; the error names the point (index) and field.
"""

from __future__ import annotations

import csv
import io

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from countdb.errors import InvalidInput
from countdb.ingest import json_batch
from countdb.ingest.validate import (check_point_count, check_series, check_timestamp, check_value, keyed_series,
                                     series_keys_pass)
from countdb.model import MAX_TIMESTAMP_MS
from countdb.wal.record import WAL_DICTIONARY_SCHEMA, Columns

_FIELDS = ("series", "timestamp", "value")


def parse_json(body: bytes, max_points: int) -> Columns | pa.RecordBatch:
    """A single point object (the original Count API) or an array of them."""
    batch = json_batch.array_points(body)
    if batch is not None:
        check_point_count(batch.num_rows, max_points)
        return batch
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"body is not valid JSON: {error}", field="body") from None
    if isinstance(document, dict):
        return _points([document], single=True)
    if isinstance(document, list):
        if not document:
            raise InvalidInput("body is an empty array: send at least one point", field="body")
        check_point_count(len(document), max_points)
        return _points(document, single=False)
    raise InvalidInput("body must be a JSON object or an array of objects", field="body")


def parse_ndjson(body: bytes, max_points: int) -> Columns | pa.RecordBatch:
    """One JSON point per line; blank lines are skipped; errors name the 1-based line."""
    batch = json_batch.line_points(body)
    if batch is not None:
        check_point_count(batch.num_rows, max_points)
        return batch
    documents, lines = [], []
    for number, line in enumerate(body.split(b"\n"), start=1):
        if line.strip():
            try:
                documents.append(orjson.loads(line))
            except orjson.JSONDecodeError as error:
                raise InvalidInput(f"line {number}: not valid JSON: {error}", line=number) from None
            lines.append(number)
    if not documents:
        raise InvalidInput("body holds no points", field="body")
    check_point_count(len(documents), max_points)
    try:
        return _points(documents, single=False)
    except InvalidInput as error:
        line = lines[error.index]
        reason = error.message.removeprefix(_where(False, error.index))  # e.g. "value: must be a number"
        raise InvalidInput(f"line {line}: {reason}", line=line, field=error.field) from None


_KEYS: dict = {}  # (name, tags items) -> canonical key, for every worker's requests
_KEYS_LIMIT = 100_000


def _points(documents: list, single: bool) -> Columns:
    columns = Columns([], [], [])
    series, stamps, values = columns.series, columns.ts, columns.values
    for index, point in enumerate(documents):
        try:
            if type(point) is not dict:
                raise InvalidInput(f"{_where(single, index)[:-1] or 'point'}: must be an object", field="point")
            try:
                name, ts, value = point["series"], point["timestamp"], point["value"]
            except KeyError:
                name, ts, value = (_required(point, field, single, index) for field in _FIELDS)
            tags = point.get("tags")
            # NOTE: most of a point's cost is keying its series; keys are cached across requests (issue 3:
            # JSON ≥ 600 k points/s). Only valid keys are cached, so a miss re-checks the point in full.
            try:
                marker = (name, tuple(tags.items())) if type(tags) is dict else (name, tags)
                key = _KEYS.get(marker)
            except TypeError:  # an unhashable tag value: keyed_series explains it
                marker, key = None, None
            if key is None:
                key = _key_of(name, tags, marker, _where(single, index))
            series.append(key)
            if type(ts) is not int or not 0 <= ts <= MAX_TIMESTAMP_MS:
                ts = check_timestamp(ts, _where(single, index))
            stamps.append(ts)
            if type(value) is not float or value - value != 0.0:
                value = check_value(value, _where(single, index))
            values.append(value)
        except InvalidInput as error:
            error.index = None if single else index
            raise
    return columns


def _where(single: bool, index: int) -> str:
    return "" if single else f"points[{index}]."


def _required(point: dict, field: str, single: bool, index: int) -> object:
    if field not in point:
        raise InvalidInput(f"{_where(single, index)}{field}: is required", field=field)
    return point[field]


def _key_of(name: object, tags: object, marker: tuple | None, where: str) -> str:
    """Check a point's series fully, and cache its key under `marker` (None: not hashable, never valid)."""
    key = keyed_series(name, tags, where)
    if marker is not None:
        if len(_KEYS) >= _KEYS_LIMIT:
            _KEYS.clear()  # NOTE: crude but bounded; a cold cache only costs one check per series
        _KEYS[marker] = key
    return key


def parse_csv(body: bytes, max_points: int) -> Columns:
    """`series,timestamp,value` with that header; timestamps in ms; errors name the 1-based line."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise InvalidInput("CSV body is not UTF-8", field="body") from None
    reader = csv.reader(io.StringIO(text))
    try:
        return _csv_columns(reader, max_points)
    except csv.Error as error:  # e.g. a bare carriage return inside a field (issue 14: was a 500)
        raise InvalidInput(f"line {reader.line_num}: not valid CSV: {error}", line=reader.line_num) from None


def _csv_columns(reader, max_points: int) -> Columns:
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != list(_FIELDS):
        raise InvalidInput("CSV header must be: series,timestamp,value", line=1)
    columns = Columns([], [], [])
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        where = f"line {line}: "
        if len(row) != 3:
            raise InvalidInput(f"{where}expected 3 columns, got {len(row)}", line=line)
        columns.series.append(keyed_series(row[0], None, where))
        columns.ts.append(check_timestamp(_number(row[1], int, where, "timestamp"), where))
        columns.values.append(check_value(_number(row[2], float, where, "value"), where))
        check_point_count(len(columns), max_points)
    if not columns.ts:
        raise InvalidInput("CSV body holds no points", field="body")
    return columns


def _number(text: str, kind: type, where: str, field: str):
    try:
        return kind(text.strip())
    except ValueError:
        raise InvalidInput(f"{where}{field}: {text!r} is not a {'integer' if kind is int else 'number'}",
                           field=field) from None


def parse_arrow(body: bytes, max_points: int) -> list[pa.RecordBatch]:
    """An Arrow IPC stream with `series` (string or dictionary), `timestamp` (timestamp or int64 ms) and
    `value` (float64); returns batches in the WAL's dictionary schema."""
    try:
        table = pa.ipc.open_stream(pa.py_buffer(body)).read_all()
        # NOTE: a stream's buffers are the client's word; full validation (offsets, dictionary indices, UTF-8)
        # keeps bad ones from reaching Arrow's kernels, which trust them (issue 14: fuzzing found a 500).
        table.validate(full=True)
        table.schema.names  # noqa: B018 - field names must be UTF-8 too
    except (pa.ArrowException, OSError, EOFError, ValueError) as error:  # e.g. NotImplemented (issue 14: a 500)
        raise InvalidInput(f"body is not an Arrow IPC stream: {error}", field="body") from None
    return arrow_columns(table, max_points)


def arrow_columns(table: pa.Table, max_points: int) -> list[pa.RecordBatch]:
    """An Arrow table with the columns parse_arrow describes (optionally `tags`), checked, in the WAL's
    dictionary schema; shared by /insert and Arrow Flight's do_put."""
    check_point_count(table.num_rows, max_points)
    for field in _FIELDS:
        if field not in table.column_names:
            raise InvalidInput(f"Arrow stream lacks column {field!r}", field=field)
    if table.num_rows == 0:
        raise InvalidInput("Arrow stream holds no rows", field="body")
    series = _arrow_series(table)
    ts = _arrow_timestamps(table["timestamp"])
    value = _arrow_values(table["value"])
    return pa.Table.from_arrays([series, ts, value], schema=WAL_DICTIONARY_SCHEMA).combine_chunks().to_batches()


def _arrow_series(table: pa.Table) -> pa.DictionaryArray:
    """The series column as one dictionary of canonical keys; each distinct key is checked once."""
    column = table["series"]
    value_type = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    if not (pa.types.is_string(value_type) or pa.types.is_large_string(value_type)):
        raise InvalidInput(f"series: Arrow column must be string, got {column.type}", field="series")
    if column.null_count:
        raise InvalidInput("series: must be non-empty strings (null found)", field="series")
    if "tags" in table.column_names:
        return _with_tags(column, table["tags"]).dictionary_encode()
    if pa.types.is_dictionary(column.type):
        column = column.cast(pa.dictionary(pa.int32(), pa.string())).combine_chunks()
        if pc.count_distinct(column.dictionary).as_py() != len(column.dictionary):
            # Arrow lets a dictionary repeat a value; a flush tells series apart by index (last write wins)
            column = column.cast(pa.string()).dictionary_encode()
    else:
        column = column.cast(pa.string()).combine_chunks().dictionary_encode()
    used = column.dictionary.take(pc.unique(column.indices))  # the keys rows use
    if not series_keys_pass(used):
        for name in used.to_pylist():
            check_series(name, "")
    return column


def _with_tags(series: pa.ChunkedArray, tags: pa.ChunkedArray) -> pa.ChunkedArray:
    """Tags come as a map<string,string> (or struct) column; canonical keys are built per distinct pair."""
    keys, cache = [], {}
    for name, tag_value in zip(series.to_pylist(), tags.to_pylist()):
        marker = (name, repr(tag_value))
        if marker not in cache:
            tag_dict = dict(tag_value) if isinstance(tag_value, list) else (tag_value or {})
            cache[marker] = keyed_series(name, tag_dict, "")
        keys.append(cache[marker])
    return pa.chunked_array([pa.array(keys, pa.string())])


def _arrow_timestamps(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("ms"), safe=False).cast(pa.int64())
    elif pa.types.is_integer(column.type):
        column = column.cast(pa.int64())
    else:
        raise InvalidInput(f"timestamp: Arrow column must be a timestamp or int64 ms, got {column.type}",
                           field="timestamp")
    if column.null_count:
        raise InvalidInput("timestamp: nulls are not allowed", field="timestamp")
    low, high = pc.min_max(column).values()
    if low.as_py() < 0 or high.as_py() > MAX_TIMESTAMP_MS:
        raise InvalidInput(f"timestamp: must be between 0 and {MAX_TIMESTAMP_MS} ms", field="timestamp")
    return column


def _arrow_values(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
        raise InvalidInput(f"value: Arrow column must be numeric, got {column.type}", field="value")
    column = column.cast(pa.float64())
    if column.null_count or not pc.all(pc.is_finite(column)).as_py():
        raise InvalidInput("value: must be finite numbers (null, NaN or infinity found)", field="value")
    return column
