"""The Prometheus HTTP API's request parameters and JSON shapes: GET query strings and POST form bodies, times
as RFC 3339 or Unix seconds, durations, `{"status": "success", "data": …}` and sample values as strings.

Invariant: answers have exactly Prometheus' JSON shapes (resultType vector/matrix/scalar; [seconds, "value"]);
errors get Prometheus' `{"status": "error", "errorType", "error"}` shape from countdb/api/errors.py.
"""

from __future__ import annotations

import datetime
import math
import time
import urllib.parse

import falcon
import numpy as np

from countdb.api.media import media_type, read_body, send_json
from countdb.errors import InvalidInput
from countdb.query.promql.evaluate import RawMatrix
from countdb.query.promql.parser import parse_duration_ms
from countdb.query.promql.query import QueryResult
from countdb.query.promql.values import Scalar
from countdb.query.selectors import NAME_TAG

MAX_FORM_BYTES = 1 << 20
MIN_TIME_MS, MAX_TIME_MS = -(2**62) // 1000, 2**62 // 1000  # Prometheus' minTime/maxTime, roughly


def form(req: falcon.Request) -> dict[str, list[str]]:
    """Every parameter, from the query string and (POST) a form-encoded body, each name to its values."""
    params: dict[str, list[str]] = {}
    for name, value in urllib.parse.parse_qsl(req.query_string, keep_blank_values=True):
        params.setdefault(name, []).append(value)
    if req.method == "POST" and media_type(req) == "application/x-www-form-urlencoded":
        body = read_body(req, MAX_FORM_BYTES).decode("utf-8", "replace")
        for name, value in urllib.parse.parse_qsl(body, keep_blank_values=True):
            params.setdefault(name, []).append(value)
    return params


def one(params: dict[str, list[str]], name: str, default: str | None = None) -> str:
    values = params.get(name)
    if not values or values[-1] == "":
        if default is None:
            raise InvalidInput(f"invalid parameter \"{name}\": missing", field=name)
        return default
    return values[-1]


def time_ms(params: dict[str, list[str]], name: str, default_ms: int | None = None) -> int:
    """A time parameter: Unix seconds (fractions allowed) or RFC 3339; `default_ms` (else required) if absent."""
    raw = one(params, name, None if default_ms is None else "")
    if raw == "":
        return default_ms
    seconds = _seconds_ms(raw)
    if seconds is not None:
        return seconds
    try:
        parsed = datetime.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if parsed.tzinfo is not None:
            return round(parsed.timestamp() * 1000)
    except ValueError:
        pass
    raise InvalidInput(f"invalid parameter \"{name}\": cannot parse {raw!r} to a valid timestamp", field=name)


def duration_ms(params: dict[str, list[str]], name: str) -> int:
    """A duration: float seconds or a PromQL duration such as 1m."""
    raw = one(params, name)
    seconds = _seconds_ms(raw)
    if seconds is not None:
        return seconds
    try:
        return parse_duration_ms(raw)
    except InvalidInput:
        pass
    raise InvalidInput(f"invalid parameter \"{name}\": cannot parse {raw!r} to a valid duration", field=name)


def _seconds_ms(raw: str) -> int | None:
    """A finite number of seconds (fractions allowed) in ms; None when `raw` is not one."""
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return round(seconds * 1000) if math.isfinite(seconds) else None


def now_ms() -> int:
    return int(time.time() * 1000)


def success(resp: falcon.Response, data) -> None:
    send_json(resp, {"status": "success", "data": data})


def format_value(value: float) -> str:
    """Go's strconv.FormatFloat(v, 'f', -1, 64), as Prometheus writes sample values."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    if text.endswith(".0"):
        return text[:-2]
    return np.format_float_positional(value, trim="-") if "e" in text else text


def result_json(result: QueryResult, instant: bool) -> dict:
    """`{"resultType", "result"}` for an instant (vector/scalar/matrix) or range (matrix) query."""
    value, seconds = result.value, (result.steps_ms / 1000.0).tolist()
    if isinstance(value, RawMatrix):
        samples = value.samples
        out = []
        for index, labels in enumerate(samples.labels):
            lo, hi = samples.starts[index] + value.lo[index], samples.starts[index] + value.hi[index]
            if hi > lo:
                points = zip((samples.ts[lo:hi] / 1000.0).tolist(), samples.values[lo:hi].tolist())
                out.append({"metric": labels, "values": [[t, format_value(v)] for t, v in points]})
        return {"resultType": "matrix", "result": out}
    if isinstance(value, Scalar):
        if instant:
            return {"resultType": "scalar", "result": [seconds[0], format_value(float(value.values[0]))]}
        return {"resultType": "matrix", "result": [
            {"metric": {}, "values": [[t, format_value(v)] for t, v in zip(seconds, value.values.tolist())]}]}
    if instant:
        return {"resultType": "vector", "result": [
            {"metric": labels, "value": [seconds[0], format_value(float(value.values[row, 0]))]}
            for row, labels in enumerate(value.labels) if value.present[row, 0]]}
    out = []
    for row, labels in enumerate(value.labels):
        present = value.present[row]
        if present.any():
            points = zip(np.compress(present, seconds).tolist(), value.values[row][present].tolist())
            out.append({"metric": labels, "values": [[t, format_value(v)] for t, v in points]})
    return {"resultType": "matrix", "result": sorted(out, key=lambda entry: sorted(entry["metric"].items()))}


def series_labels(series) -> list[dict[str, str]]:
    """Label sets of a match_series table: `__name__` and the tags."""
    names, tags = series["name"].to_pylist(), series["tags"].to_pylist()
    return [{NAME_TAG: name, **dict(tag_items or ())} for name, tag_items in zip(names, tags)]
