"""Query-string parameters shared by the query and discovery endpoints: bounds, step/aggregation/fill, match=.

Invariant: every bad parameter is an InvalidInput naming it, before any query runs.
"""

from __future__ import annotations

import falcon

from countdb.api.media import int_param
from countdb.errors import InvalidInput
from countdb.model import MAX_TIMESTAMP_MS
from countdb.query.aggregations import Aggregation, parse_aggregation
from countdb.query.buckets import parse_fill, parse_step
from countdb.query.execute import check_bounds
from countdb.query.range import Downsample
from countdb.query.selectors import Selector, parse_selector

_STEP_ONLY = ("aggregation", "quantile", "fill")


def bounds(req: falcon.Request) -> tuple[int, int]:
    """Required start= and end= (ms, inclusive), clamped to just outside the timestamps points can have (so the
    same points are selected, and nothing overflows): any 64-bit integer is taken, e.g. end=Long.MAX_VALUE."""
    return _clamped(int_param(req, "start"), int_param(req, "end"))


def optional_bounds(req: falcon.Request) -> tuple[int, int]:
    """start= and end= when given, else all of time."""
    start = int_param(req, "start") if req.get_param("start") is not None else 0
    end = int_param(req, "end") if req.get_param("end") is not None else MAX_TIMESTAMP_MS
    return _clamped(start, end)


def _clamped(start: int, end: int) -> tuple[int, int]:
    for name, value in (("start", start), ("end", end)):
        if not -(2**63) <= value < 2**63:
            raise InvalidInput(f"{name}: {value} is outside the 64-bit range", field=name)
    check_bounds(start, end)
    return min(max(start, -1), MAX_TIMESTAMP_MS + 1), min(max(end, -1), MAX_TIMESTAMP_MS + 1)


def downsample(req: falcon.Request) -> Downsample | None:
    """step= with its aggregation= (default mean), quantile= and fill= (default none); None without step=."""
    step = req.get_param("step")
    if step is None:
        for name in _STEP_ONLY:
            if req.get_param(name) is not None:
                raise InvalidInput(f"{name}: only applies with step= (e.g. step=1m)", field=name)
        return None
    return Downsample(parse_step(step), aggregation(req, default="mean"), parse_fill(req.get_param("fill")))


def aggregation(req: falcon.Request, default: str | None = None) -> Aggregation:
    return parse_aggregation(req.get_param("aggregation"), req.get_param("quantile"), default)


def selector(req: falcon.Request, required: bool = True) -> Selector | None:
    """The one match= selector; None when absent and not required."""
    raw = req.params.get("match")
    if isinstance(raw, list):
        raise InvalidInput("match: give one selector (its matchers can narrow by several tags)", field="match")
    if raw is None or not raw.strip():
        if required:
            raise InvalidInput('match: query parameter is required, e.g. match=cpu{host="h1"}', field="match")
        return None
    return parse_selector(raw)
