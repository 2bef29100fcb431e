"""Series keys leave Arrow results dictionary-encoded: the result's `series` column is cast, after the user's
statement, to a per-statement ENUM of every known key, which DuckDB exports as an Arrow dictionary: no copy of
the key per point, as a string column costs (issue 4: 10 M points with keys at >= 20 M points/s).

Invariant: only the column's type changes, never a value: a `series` value that is no known key (the statement
computed it) travels beside the cast and is put back, batch by batch; the user's statement itself still sees
VARCHAR keys, so its meaning does not depend on the result format.
"""

from __future__ import annotations

from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from countdb.errors import QueryRejected
from countdb.model import used_keys_only
from countdb.query.sandbox import Run

COLUMN = "series"
WIRE_TYPE = pa.dictionary(pa.int32(), pa.string())
_ENUM = "count_series_key"
_OTHER = "count_series_not_a_key"
_CREATE_ENUM = f"""CREATE TEMP TYPE {_ENUM} AS ENUM (
    SELECT key FROM count_catalog_series UNION SELECT key FROM count_unflushed_series)"""
_PROJECTION = (f'* REPLACE (try_cast("{COLUMN}" AS {_ENUM}) AS "{COLUMN}"), '
               f'CASE WHEN try_cast("{COLUMN}" AS {_ENUM}) IS NULL THEN "{COLUMN}" END AS {_OTHER}')


def applies(schema: pa.Schema) -> bool:
    """True for a result with one string column `series` among uniquely named columns."""
    names = schema.names
    return len(set(names)) == len(names) and COLUMN in names and schema.field(COLUMN).type == pa.string()


def wire_schema(schema: pa.Schema) -> pa.Schema:
    """`schema` with `series` as dictionary<int32, string>, as the batches of start() carry it."""
    index = schema.get_field_index(COLUMN)
    return schema.set(index, schema.field(index).with_type(WIRE_TYPE))


def start(run: Run, sql: str, params: list | None = None) -> tuple[pa.Schema, Iterator[pa.RecordBatch]] | None:
    """Run `sql` (with `params` bound) on `run` (whose cursor has the `count_*_series` tables) with its `series` column
    dictionary-encoded: (schema, batches), or None when the result has no such column or the statement can't
    be wrapped (e.g. a comment after its `;`); the caller then runs it as is and reports any real error."""
    statement = sql.rstrip(" \t\r\n;")
    try:
        schema = run.schema(statement, params)
        if not applies(schema):
            return None
        run.execute(_CREATE_ENUM)
        _, batches = run.batches(statement, _PROJECTION, params)
    except QueryRejected:
        return None
    wire = wire_schema(schema)
    return wire, _restored(batches, wire)


def _restored(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    index = schema.get_field_index(COLUMN)
    for batch in batches:
        keys, other = batch.column(index), batch.column(batch.num_columns - 1)
        if other.null_count < len(other):
            keys = pc.dictionary_encode(pc.if_else(other.is_valid(), other, keys.cast(pa.string())))
        elif len(keys.dictionary) > len(keys):
            keys = used_keys_only(keys)  # the ENUM holds every key, and there may be more keys than rows
        columns = batch.columns[:-1]
        columns[index] = keys.cast(WIRE_TYPE)
        yield pa.RecordBatch.from_arrays(columns, schema=schema)

