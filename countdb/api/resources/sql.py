"""POST /query/sql: one DuckDB SELECT as the body (text) or as JSON `{"sql": "…"}`, answered as JSON
`{"columns": [{"name", "type"}], "rows": [[…], …]}` or in the format `Accept`/`format=` asks for."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Callable, Iterable, Iterator

import falcon
import orjson
import pyarrow as pa

from countdb.api.media import media_type, read_body
from countdb.api.results import choose_format, send_result
from countdb.errors import InvalidInput, UnsupportedFormat
from countdb.query.sql import SqlResult, SqlService

# NOTE: curl -d sends the raw text as application/x-www-form-urlencoded; it is taken as the SQL too.
TEXT_TYPES = ("", "text/plain", "application/sql", "application/x-www-form-urlencoded")
MAX_SQL_BYTES = 1024 * 1024


class SqlQueryResource:
    def __init__(self, sql: SqlService):
        self.sql = sql

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        result_format = choose_format(req)
        # NOTE: every format is streamed as DuckDB makes the batches, never built whole (issue 4); Arrow carries
        # series keys dictionary-encoded (10 M points at >= 20 M points/s). A time or row limit reached after the
        # first STREAM_ROWS rows cuts the answer short (api/streaming.py): the client sees an incomplete
        # transfer, never a shorter result posing as whole.
        result = self.sql.execute(sql_text(req), keys_as_dictionary=result_format == "arrow")
        rows = pa.RecordBatchReader.from_batches(result.schema, _closing(result))
        send_result(resp, result_format, rows, json_document(result.schema))


def _closing(result: SqlResult) -> Iterator[pa.RecordBatch]:
    """The result's batches; its cursor is freed when they are drained, fail, or the client goes away."""
    try:
        yield from result
    finally:
        result.close()


def sql_text(req: falcon.Request) -> str:
    """The statement from the body: raw text, or the `sql` member of a JSON object."""
    kind = media_type(req)
    if kind not in TEXT_TYPES and kind != "application/json":
        raise UnsupportedFormat(f"Content-Type {req.content_type!r} is not accepted by /query/sql; send the SQL "
                                "as text/plain or as application/json {\"sql\": \"…\"}")
    body = read_body(req, MAX_SQL_BYTES)
    if kind == "application/json":
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise InvalidInput(f"body is not valid JSON: {error}", field="body") from None
        if not isinstance(document, dict) or not isinstance(document.get("sql"), str):
            raise InvalidInput("sql: the JSON body must be an object with a string member \"sql\"", field="sql")
        text = document["sql"]
    else:
        try:
            text = body.decode()
        except UnicodeDecodeError:
            raise InvalidInput("body is not UTF-8 text", field="body") from None
    if not text.strip():
        raise InvalidInput("sql: the statement is empty", field="sql")
    return text


def json_document(schema: pa.Schema) -> Callable[[Iterable[pa.RecordBatch]], Iterator[bytes]]:
    """`{"columns": [{name, type}], "rows": [[…], …]}`, rendered batch by batch: rows as arrays in column
    order; timestamps as ISO 8601 UTC, maps as objects, decimals as numbers, intervals as {months, days,
    nanoseconds}."""
    columns = orjson.dumps([{"name": field.name, "type": str(field.type)} for field in schema])

    def render(batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
        yield b'{"columns":' + columns + b',"rows":['
        separator = b""
        for batch in batches:
            if batch.num_rows:
                rows = list(zip(*(_python_values(column) for column in batch.columns)))
                yield separator + orjson.dumps(rows, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z,
                                               default=_json_default)[1:-1]
                separator = b","
        yield b"]}"
    return render


def _python_values(column: pa.Array) -> list:
    values = column.to_pylist()
    if pa.types.is_map(column.type):
        return [None if pairs is None else dict(pairs) for pairs in values]
    return values


def _json_default(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, pa.MonthDayNano):
        return {"months": value.months, "days": value.days, "nanoseconds": value.nanoseconds}
    return str(value)
