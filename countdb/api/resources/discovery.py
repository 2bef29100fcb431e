"""GET /series, /tags and /tags/{key}/values: which series and tags exist (flushed or not), optionally only
those a match= selector picks and whose points reach into [start, end]."""

from __future__ import annotations

import falcon

from countdb.api import query_params as params
from countdb.api.json_shapes import json_listing, json_values
from countdb.api.results import choose_format, send_result
from countdb.errors import InvalidInput
from countdb.model import TAG_KEY_PATTERN
from countdb.query.discovery import match_series, tag_keys, tag_values
from countdb.query.engine import QueryEngine
from countdb.query.selectors import NAME_TAG

_LISTED = ["series", "name", "tags", "first_timestamp", "last_timestamp"]


class SeriesResource:
    def __init__(self, engine: QueryEngine):
        self.engine = engine

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        result_format, selector = choose_format(req), params.selector(req, required=False)
        series = match_series(self.engine, selector, *params.optional_bounds(req)).rename_columns(_LISTED)
        send_result(resp, result_format, series, json_listing("series", rename={"series": "key"}))


class TagsResource:
    def __init__(self, engine: QueryEngine):
        self.engine = engine

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        result_format, selector = choose_format(req), params.selector(req, required=False)
        series = match_series(self.engine, selector, *params.optional_bounds(req))
        send_result(resp, result_format, tag_keys(series), json_values("tags"))


class TagValuesResource:
    def __init__(self, engine: QueryEngine):
        self.engine = engine

    def on_get(self, req: falcon.Request, resp: falcon.Response, key: str) -> None:
        if key != NAME_TAG and not TAG_KEY_PATTERN.match(key):
            raise InvalidInput(f"key: {key!r} is not a tag key", field="key")
        result_format, selector = choose_format(req), params.selector(req, required=False)
        series = match_series(self.engine, selector, *params.optional_bounds(req))
        send_result(resp, result_format, tag_values(series, key), json_values("values"))
