"""The OpenAPI 3.1 document of Count's public HTTP API, served at GET /openapi.json, built from one table: PATHS.

Invariant: every public route in api/app.py has an entry in PATHS with exactly the methods its resource answers,
and every status an operation can answer is listed with its body (tests/unit/api/test_openapi.py). Routes whose
template starts with one of INTERNAL_PREFIXES are node-to-node traffic and are left out on purpose.
"""

from __future__ import annotations

import falcon
import orjson

from countdb import __version__
from countdb.model import MAX_SERIES_KEY_BYTES, MAX_TAGS, MAX_TIMESTAMP_MS

INTERNAL_PREFIXES = ("/cluster/", "/replicate")  # never public: the cluster's own calls between nodes

ARROW_STREAM = "application/vnd.apache.arrow.stream"
RESULT_TYPES = ("application/x-ndjson", "text/csv", ARROW_STREAM, "application/vnd.apache.parquet")

# --- schemas --------------------------------------------------------------------------------------------

INT64 = {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}
MILLIS = {"type": "integer", "minimum": 0, "maximum": MAX_TIMESTAMP_MS}
NUMBER_OR_NULL = {"type": ["number", "null"]}
TAG_KEY = r"[A-Za-z_][A-Za-z0-9_.:/\-]*"  # model.TAG_KEY_PATTERN
TAGS = {"type": ["object", "null"], "maxProperties": MAX_TAGS, "propertyNames": {"pattern": f"^{TAG_KEY}$"},
        "additionalProperties": {"type": "string"}}
SERIES_NAME = {"type": "string", "minLength": 1, "maxLength": MAX_SERIES_KEY_BYTES,
               "pattern": r"^[^\u0000-\u001f\u007f]+$",
               "description": "Any text without control characters; with its tags at most "
                              f"{MAX_SERIES_KEY_BYTES} bytes of UTF-8."}
TIMED_VALUE = {"type": "object", "required": ["timestamp", "value"],
               "properties": {"timestamp": {"type": "integer"}, "value": NUMBER_OR_NULL}}
TAG_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

SCHEMAS = {
    "PromError": {"type": "object", "required": ["status", "errorType", "error"],
                  "description": "Errors of the Prometheus HTTP API (/api/v1/query…), in Prometheus' own shape.",
                  "properties": {"status": {"const": "error"}, "errorType": {"type": "string"},
                                 "error": {"type": "string"}}},
    "PromSuccess": {"type": "object", "required": ["status", "data"],
                    "description": "An answer of the Prometheus HTTP API: status success and its data.",
                    "properties": {"status": {"const": "success"}}},
    "Error": {"type": "object", "required": ["error"], "description": "Every error answer, whatever the status.",
              "properties": {"error": {"type": "string"},
                             "data": {"type": "array", "description": "Per-line problems of a partial write.",
                                      "items": {"type": "object"}}}},
    "Point": {"type": "object", "required": ["series", "timestamp", "value"],
              "properties": {"series": SERIES_NAME, "timestamp": MILLIS, "value": {"type": "number"}, "tags": TAGS}},
    "PointBatch": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Point"}},
    "Created": {"type": "object", "required": ["status", "points"],
                "properties": {"status": {"const": "created"}, "points": {"type": "integer", "minimum": 1}}},
    "RangePoints": {"type": "array", "items": TIMED_VALUE},
    "MatchedSeries": {"type": "object", "required": ["series"], "properties": {"series": {"type": "array", "items": {
        "type": "object", "required": ["key", "name", "tags", "points"],
        "properties": {"key": {"type": "string"}, "name": {"type": "string"}, "tags": TAG_MAP,
                       "points": {"type": "array", "items": TIMED_VALUE}}}}}},
    "Aggregate": {"type": ["number", "null"], "description": "A bare number; null over no points (count: 0)."},
    "Groups": {"type": "object", "required": ["groups"], "properties": {"groups": {"type": "array", "items": {
        "type": "object", "required": ["tags", "value"], "properties": {"tags": TAG_MAP, "value": NUMBER_OR_NULL}}}}},
    "SeriesListing": {"type": "object", "required": ["series"], "properties": {"series": {"type": "array", "items": {
        "type": "object", "required": ["key", "name", "tags", "first_timestamp", "last_timestamp"],
        "properties": {"key": {"type": "string"}, "name": {"type": "string"}, "tags": TAG_MAP,
                       "first_timestamp": {"type": "integer"}, "last_timestamp": {"type": "integer"}}}}}},
    "Tags": {"type": "object", "required": ["tags"],
             "properties": {"tags": {"type": "array", "items": {"type": "string"}}}},
    "TagValues": {"type": "object", "required": ["values"],
                  "properties": {"values": {"type": "array", "items": {"type": "string"}}}},
    "SqlResult": {"type": "object", "required": ["columns", "rows"], "properties": {
        "columns": {"type": "array", "items": {"type": "object", "required": ["name", "type"],
                                               "properties": {"name": {"type": "string"}, "type": {"type": "string"}}}},
        "rows": {"type": "array", "items": {"type": "array"}}}},
    "Deleted": {"type": "object", "required": ["series", "start", "end", "seq"],
                "properties": {"series": {"type": "string"}, "start": MILLIS, "end": MILLIS,
                               "seq": {"type": "integer"}}},
    "Health": {"type": "object", "required": ["status", "node_id", "version", "data_dir_writable"], "properties": {
        "status": {"enum": ["healthy", "degraded", "unhealthy"]}, "node_id": {"type": ["integer", "string"]},
        "cluster_size": {"type": "integer"}, "version": {"type": "string"}, "uptime_seconds": {"type": "number"},
        "buffered_points": {"type": "integer"}, "data_dir_writable": {"type": "boolean"},
        "damaged_files": {"type": "integer"}, "damaged": {"type": "array", "items": {"type": "object"}},
        "cluster": {"type": "object", "description": "Present when CLUSTER_ENABLED; see docs/cluster.md.",
                    "properties": {
                        "nodes": {"type": "integer"}, "members_up": {"type": "integer"},
                        "majority": {"type": "boolean"}, "writes": {"type": "string"},
                        "membership_change": {"enum": ["waiting", "moving", "moved", "switched", "settling",
                                                       "settled"]},
                        "hints_pending": {"type": "integer"},
                        "peer_problems": {"type": "array", "items": {"type": "string"},
                                          "description": "Why a peer is treated as down, e.g. another cluster "
                                                         "protocol version."}}}}},
    "Ready": {"type": "object", "required": ["ready"], "properties": {"ready": {"type": "boolean"}}},
}

ERROR_MEANING = {
    400: "Malformed input; the message names the parameter, field, point index or line.",
    404: "No such route or series.",
    406: "The Accept header allows none of the result types.",
    413: "The body is over MAX_BODY_BYTES (also after gunzip), or it holds too many points.",
    415: "A Content-Type or Content-Encoding the endpoint does not take.",
    422: "A valid query whose answer is over QUERY_MAX_ROWS or QUERY_MEMORY_LIMIT_MB.",
    503: "The node cannot serve this now (storage refusing writes, shutting down, damaged WAL); retry later.",
    504: "The query ran past QUERY_TIMEOUT_SECONDS and was interrupted.",
}


REQUEST_ID_HEADER = {"description": "The client's X-Request-ID when it is a sane token, else a new one; it is on "
                                    "every log line of the request.", "schema": {"type": "string"}}
RETRY_AFTER = {"description": "Seconds to wait, when a retry may work (the node is busy or shutting down).",
               "schema": {"type": "string"}}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def query_result(schema: dict) -> dict:
    """200 content of a query endpoint: JSON laid out by `schema`, or the flat rows in the other formats."""
    return {**json_content(schema), **{media_type: {} for media_type in RESULT_TYPES}}


def param(name: str, schema: dict, description: str, where: str = "query", required: bool = False) -> dict:
    """A parameter. NOTE: falcon drops blank query values (`start=`), so an optional one may also be empty."""
    if where == "query" and not required and schema != {"type": "string"}:
        schema = {"anyOf": [schema, {"const": ""}]}
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema,
            "description": description}


def operation(summary: str, *, ok: int, ok_content: dict | None = None, errors: tuple[int, ...] = (400, 503),
              params: tuple[dict, ...] = (), body: dict | None = None, body_required: bool = True,
              description: str = "", error_schema: str = "Error") -> dict:
    """One operation: its parameters, its body (content by media type) and every status it can answer; each
    error status carries the `{"error": …}` body (`error_schema`: another *Error schema in SCHEMAS, for an API
    that must answer errors in its own shape, such as Prometheus' HTTP API)."""
    responses = {str(ok): {"description": "Success", "headers": {"X-Request-ID": REQUEST_ID_HEADER},
                           **({"content": ok_content} if ok_content else {})}}
    for status in errors:
        headers = {"X-Request-ID": REQUEST_ID_HEADER, **({"Retry-After": RETRY_AFTER} if status == 503 else {})}
        responses[str(status)] = {"description": ERROR_MEANING[status], "headers": headers,
                                  "content": json_content(ref(error_schema))}
    document = {"summary": summary, "parameters": list(params), "responses": responses}
    if description:
        document["description"] = description
    if body is not None:
        document["requestBody"] = {"required": body_required, "content": body}
    return document


# --- parameters -----------------------------------------------------------------------------------------

START = param("start", INT64, "Start of the range in ms since the epoch, inclusive.", required=True)
END = param("end", INT64, "End of the range in ms since the epoch, inclusive.", required=True)
OPTIONAL_START = param("start", INT64, "Keep series whose points reach past this instant (ms).")
OPTIONAL_END = param("end", INT64, "Keep series whose points begin before this instant (ms).")
FORMAT = param("format", {"enum": ["json", "ndjson", "csv", "arrow", "parquet"]},
               "Result format; wins over the Accept header (application/json, application/x-ndjson, text/csv, "
               f"{ARROW_STREAM}, application/vnd.apache.parquet).")
SERIES_PATH = param("series", {"type": "string", "minLength": 1},
                    "The series' canonical key (name{tag=\"value\",…}), URL-encoded; an unknown key has no points.",
                    where="path")
DELETED_SERIES = param("series", SERIES_NAME,
                       "The series' canonical key, URL-encoded.", where="path")
MATCH = param("match", {"type": "string", "minLength": 1},
              'A Prometheus selector: name{key="value", key=~"re", …}.', required=True)
OPTIONAL_MATCH = param("match", {"type": "string"}, "A selector as for match= above; empty or absent: every series.")
AGGREGATIONS = ("sum, min, max, mean, avg, count, first, last, stddev, median, p50, p90, p95, p99, pNN, quantile, "
                "rate")
# NOTE: aggregation= and fill= are read case-insensitively and fill= takes any float Python reads, so their
# schemas are plain strings: a pattern would call valid requests invalid (schemathesis' negative cases).
AGGREGATION = param("aggregation", {"type": "string"},
                    f"One of {AGGREGATIONS} (any case; empty: the default, mean with step=).")
QUANTILE = param("quantile", {"type": "number", "minimum": 0, "maximum": 1},
                 "The quantile of aggregation=quantile (implies it).")
STEP = param("step", {"type": "string", "pattern": r"^\s*([0-9]{1,18}(ms|s|m|h|d|w))+\s*$"},
             "Bucket width with a unit: 250ms, 10s, 1m, 1h30m, 1d, 1w. Enables aggregation= and fill=.")
FILL = param("fill", {"type": "string"},
             "What an empty bucket answers: none (default), null, previous, linear or a number. Needs step=.")
GROUP_BY = param("group_by", {"type": "string", "pattern": rf"^[\s,]*({TAG_KEY}\s*(,[\s,]*{TAG_KEY}\s*)*)?[\s,]*$"},
                 "Comma-separated tag keys (__name__ for the series name) to group by; empty parts are ignored.")
QUERY_ERRORS = (400, 406, 422, 503, 504)

# --- request bodies -------------------------------------------------------------------------------------


def text_body(description: str, binary: bool = False, example: str | None = None) -> dict:
    return {"schema": {"type": "string", "description": description, **({"format": "binary"} if binary else {})},
            **({"example": example} if example is not None else {})}


INSERT_BODY = {
    "application/json": {"schema": {"oneOf": [ref("Point"), ref("PointBatch")]},
                         "example": [{"series": "cpu", "tags": {"host": "h1"}, "timestamp": 1640995200000,
                                      "value": 75.5}]},
    "application/x-ndjson": text_body("One JSON point per line.",
                                      example='{"series": "cpu", "timestamp": 1640995200000, "value": 1.5}\n'),
    "text/csv": text_body("Header series,timestamp,value; timestamps in ms.",
                          example="series,timestamp,value\ncpu,1640995200000,1.5\n"),
    ARROW_STREAM: text_body("Columns series (string), timestamp (timestamp or int64 ms), value (numeric), optional "
                            "tags (map<string,string>).", binary=True),
}
LINE_PROTOCOL_BODY = {"text/plain": text_body("InfluxDB line protocol, one point per line.",
                                               example="cpu,host=h1 usage_user=1.5,usage_system=2i\n")}
REMOTE_WRITE_BODY = {"application/x-protobuf": text_body(
    "Prometheus remote write 1.0: a snappy-compressed (block format) prompb.WriteRequest.", binary=True)}
SQL_EXAMPLE = "SELECT name, max(value) AS peak FROM points GROUP BY name"
SQL_BODY = {"text/plain": text_body("One DuckDB SELECT over the views points and series.", example=SQL_EXAMPLE),
            "application/json": {"schema": {"type": "object", "required": ["sql"],
                                            "properties": {"sql": {"type": "string", "minLength": 1}}},
                                 "example": {"sql": SQL_EXAMPLE}}}
WRITE_ERRORS = (400, 413, 415, 503)


def line_protocol(version: str, namespace: str, precisions: list[str], extra: tuple[dict, ...] = ()) -> dict:
    return {"post": operation(
        f"InfluxDB {version} line protocol write", ok=204, errors=WRITE_ERRORS, body=LINE_PROTOCOL_BODY,
        body_required=False,
        params=(param(namespace, {"type": "string", "minLength": 1},
                      "Required as InfluxDB requires it; Count has one namespace.", required=True),
                param("precision", {"enum": precisions}, "Unit of the timestamps."), *extra),
        description="Valid lines are written and bad ones reported in the 400's data (a partial write). An "
                    "empty body writes nothing and is answered 204, as InfluxDB does.")}


def prometheus_api(summary: str, *params: dict, form: bool = True, errors: tuple[int, ...] = (400, 422, 503)) -> dict:
    """A route of the Prometheus HTTP API: GET (and POST with the same fields form-encoded), Prometheus' shapes."""
    def one() -> dict:
        return operation(summary, ok=200, ok_content=json_content(ref("PromSuccess")), errors=errors, params=params,
                         error_schema="PromError")
    if not form:
        return {"get": one()}
    post = one()
    post["requestBody"] = {"required": False, "content": {"application/x-www-form-urlencoded": {
        "schema": {"type": "object", "additionalProperties": {"type": "string"}}}}}
    return {"get": one(), "post": post}


PROM_TIME = {"type": "string", "description": "RFC 3339 or Unix seconds (fractions allowed)"}
PROM_MATCH = param("match[]", {"type": "array", "items": {"type": "string"}}, "Series selectors (repeatable).")


# --- the table: one entry per public route of api/app.py --------------------------------------------------

PATHS = {
    "/insert": {"post": operation(
        "Write points: one JSON point, a JSON array, NDJSON, CSV or an Arrow IPC stream (gzip allowed)",
        ok=201, ok_content=json_content(ref("Created")), errors=WRITE_ERRORS, body=INSERT_BODY,
        description="A batch is all-or-nothing.")},
    "/write": line_protocol("1.x", "db", ["ns", "n", "u", "µ", "us", "ms", "s", "m", "h"]),
    "/api/v2/write": line_protocol("2.x", "bucket", ["ns", "us", "ms", "s"]),
    "/api/v3/write_lp": line_protocol("3.x", "db", ["auto", "nanosecond", "microsecond", "millisecond", "second",
                                                    "ns", "us", "ms", "s"],
                                      (param("accept_partial", {"type": "boolean"},
                                             "false: one bad line rejects the whole request."),)),
    "/api/v1/write": {"post": operation("Prometheus remote write 1.0", ok=204, errors=WRITE_ERRORS,
                                        body=REMOTE_WRITE_BODY)},
    "/api/v1/read": {"post": operation(
        "Prometheus remote read (snappy protobuf ReadRequest; SAMPLES or STREAMED_XOR_CHUNKS)", ok=200,
        ok_content={"application/x-protobuf": {}, "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse": {}},
        errors=(400, 413, 415, 422, 503), body={"application/x-protobuf": {"schema": {"type": "string",
                                                                                         "format": "binary"}}})},
    "/api/v1/query": prometheus_api("PromQL instant query", param("query", {"type": "string"}, "PromQL expression."),
                                    param("time", PROM_TIME, "Evaluation time (default: now)."),
                                    param("timeout", {"type": "string"}, "Accepted for compatibility.")),
    "/api/v1/query_range": prometheus_api(
        "PromQL range query", param("query", {"type": "string"}, "PromQL expression."),
        param("start", PROM_TIME, "First evaluation time."), param("end", PROM_TIME, "Last evaluation time."),
        param("step", {"type": "string"}, "Resolution: a duration (1m) or seconds."),
        param("timeout", {"type": "string"}, "Accepted for compatibility.")),
    "/api/v1/series": prometheus_api("Label sets of the series match[] selects", PROM_MATCH,
                                     param("start", PROM_TIME, "From."), param("end", PROM_TIME, "Until.")),
    "/api/v1/labels": prometheus_api("Label names", PROM_MATCH, param("start", PROM_TIME, "From."),
                                     param("end", PROM_TIME, "Until.")),
    "/api/v1/label/{name}/values": prometheus_api(
        "Values of one label", param("name", {"type": "string"}, "A label name.", where="path"), PROM_MATCH,
        param("start", PROM_TIME, "From."), param("end", PROM_TIME, "Until.")),
    "/api/v1/metadata": prometheus_api("Metric metadata (none is kept: always empty)", form=False, errors=()),
    "/api/v1/status/buildinfo": prometheus_api("Build information, as Grafana asks for it", form=False, errors=()),
    "/query/range/{series}": {"get": operation(
        "Points of one series, raw or downsampled", ok=200, ok_content=query_result(ref("RangePoints")),
        errors=QUERY_ERRORS, params=(SERIES_PATH, START, END, STEP, AGGREGATION, QUANTILE, FILL, FORMAT))},
    "/query/aggregated/{series}": {"get": operation(
        "One aggregate over one series' range", ok=200, ok_content=query_result(ref("Aggregate")),
        errors=QUERY_ERRORS, params=(SERIES_PATH, START, END, AGGREGATION, QUANTILE, FORMAT))},
    "/query/range": {"get": operation(
        "Points of every series match= picks, grouped per series", ok=200,
        ok_content=query_result(ref("MatchedSeries")), errors=QUERY_ERRORS,
        params=(MATCH, START, END, STEP, AGGREGATION, QUANTILE, FILL, FORMAT))},
    "/query/aggregated": {"get": operation(
        "One aggregate per group of the series match= picks", ok=200, ok_content=query_result(ref("Groups")),
        errors=QUERY_ERRORS, params=(MATCH, START, END, AGGREGATION, QUANTILE, GROUP_BY, FORMAT))},
    "/query/sql": {"post": operation(
        "One sandboxed DuckDB SELECT over the views points and series", ok=200,
        ok_content=query_result(ref("SqlResult")), errors=(*QUERY_ERRORS, 413, 415), body=SQL_BODY,
        params=(FORMAT,))},
    "/series/{series}": {"delete": operation(
        "Hide a series' points in [start, end] (each bound optional)", ok=200, ok_content=json_content(ref("Deleted")),
        params=(DELETED_SERIES, param("start", MILLIS, "First ms to delete (absent or empty: 0)."),
                param("end", MILLIS, "Last ms to delete (absent or empty: the end of time).")))},
    "/series": {"get": operation(
        "Series that exist, optionally those match= picks", ok=200, ok_content=query_result(ref("SeriesListing")),
        errors=QUERY_ERRORS, params=(OPTIONAL_MATCH, OPTIONAL_START, OPTIONAL_END, FORMAT))},
    "/tags": {"get": operation(
        "Tag keys in use", ok=200, ok_content=query_result(ref("Tags")), errors=QUERY_ERRORS,
        params=(OPTIONAL_MATCH, OPTIONAL_START, OPTIONAL_END, FORMAT))},
    "/tags/{key}/values": {"get": operation(
        "Values of one tag key (__name__: series names)", ok=200, ok_content=query_result(ref("TagValues")),
        errors=QUERY_ERRORS, params=(param("key", {"type": "string", "pattern": f"^{TAG_KEY}$"},
                                           "A tag key, or __name__ for series names.", where="path"),
                                     OPTIONAL_MATCH, OPTIONAL_START, OPTIONAL_END, FORMAT))},
    "/health": {"get": operation(
        "Liveness and status", ok=200, ok_content=json_content(ref("Health")), errors=(),
        description="503 with the same body when the data directory cannot be written.")},
    "/ready": {"get": operation("Readiness for load balancers", ok=200, ok_content=json_content(ref("Ready")),
                                errors=())},
    "/metrics": {"get": operation("Metrics in Prometheus text format", ok=200, errors=(),
                                  ok_content={"text/plain": {"schema": {"type": "string"}}})},
    "/": {"get": operation("The web console (an HTML page; docs/console.md)", ok=200, errors=(),
                           ok_content={"text/html": {"schema": {"type": "string"}}})},
    "/console/{path}": {"get": operation(
        "A file of the web console (scripts, styles, the vendored uPlot)", ok=200, errors=(404,),
        ok_content={"*/*": {"schema": {"type": "string"}}},
        params=(param("path", {"type": "string"}, "A file the console ships.", where="path"),))},
    "/storage": {"get": operation(
        "Storage per month (blocks, bytes, rows, bytes per row), damaged files and the WAL", ok=200, errors=(),
        ok_content=json_content({"type": "object", "required": ["months"]}))},
    "/status": {"get": operation(
        "Ingest counters since start (all workers), compaction (last run, pending months) and, in a cluster, the "
        "members as this node sees them", ok=200, errors=(),
        ok_content=json_content({"type": "object", "required": ["time", "ingest", "compaction", "cluster"]}))},
    "/openapi.json": {"get": operation("This document", ok=200, errors=(),
                                       ok_content=json_content({"type": "object"}))},
}
PATHS["/health"]["get"]["responses"]["503"] = {"description": "The data directory cannot be written.",
                                               "content": json_content(ref("Health"))}
PATHS["/ready"]["get"]["responses"]["503"] = {"description": "Draining or cannot write.",
                                              "content": json_content(ref("Ready"))}


def is_public(template: str) -> bool:
    """Whether a route template belongs in the public document (not node-to-node traffic)."""
    return not template.startswith(INTERNAL_PREFIXES)


def build_document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Count", "version": __version__,
                 "description": "Count's HTTP API. Every error is a JSON object {\"error\": \"…\"}; every answer "
                                "carries X-Request-ID. An optional query parameter given empty (start=) is absent."},
        "paths": PATHS,
        "components": {"schemas": SCHEMAS},
    }


DOCUMENT_BYTES = orjson.dumps(build_document())


class OpenApiResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = DOCUMENT_BYTES
