"""GET /series, /tags and /tags/{key}/values: which series and tags exist (flushed or not), optionally only
those a match= selector picks and whose points reach into [start, end]."""

from __future__ import annotations

import falcon
import pyarrow as pa

from countdb.api import query_params as params
from countdb.api.json_shapes import json_listing, json_values
from countdb.api.results import choose_format, send_result
from countdb.api.services import Reads
from countdb.errors import InvalidInput
from countdb.model import TAG_KEY_PATTERN
from countdb.query.discovery import match_series, tag_keys, tag_values
from countdb.query.engine import QueryEngine
from countdb.query.selectors import NAME_TAG

_LISTED = ["series", "name", "tags", "first_timestamp", "last_timestamp"]


class _Discovery:
    def __init__(self, engine: QueryEngine, reads: Reads):
        self.engine = engine
        self.reads = reads

    def matched(self, req: falcon.Request) -> pa.Table:
        """The series the request's match= (all without one) picks in its optional bounds, cluster-wide."""
        selector, bounds = params.selector(req, required=False), params.optional_bounds(req)
        remote = self.reads.selection_points(selector.text if selector else None, *bounds)
        return match_series(self.engine, selector, *bounds, self.engine.snapshot(remote))


class SeriesResource(_Discovery):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        result_format, series = choose_format(req), self.matched(req).rename_columns(_LISTED)
        send_result(resp, result_format, series, json_listing("series", rename={"series": "key"}))


class TagsResource(_Discovery):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        result_format, series = choose_format(req), self.matched(req)
        send_result(resp, result_format, tag_keys(series), json_values("tags"))


class TagValuesResource(_Discovery):
    def on_get(self, req: falcon.Request, resp: falcon.Response, key: str) -> None:
        if key != NAME_TAG and not TAG_KEY_PATTERN.match(key):
            raise InvalidInput(f"key: {key!r} is not a tag key", field="key")
        result_format, series = choose_format(req), self.matched(req)
        send_result(resp, result_format, tag_values(series, key), json_values("values"))
