"""GET /query/range/{series} and GET /query/aggregated/{series} (the original Count query API)."""

from __future__ import annotations

import falcon

from countdb.api.media import int_param, send_json
from countdb.errors import InvalidInput
from countdb.query.engine import QueryEngine
from countdb.query.range import query_aggregate, query_range


class RangeQueryResource:
    def __init__(self, engine: QueryEngine):
        self.engine = engine

    def on_get(self, req: falcon.Request, resp: falcon.Response, series: str) -> None:
        rows = query_range(self.engine, series, int_param(req, "start"), int_param(req, "end"))
        send_json(resp, [{"timestamp": ts, "value": value} for ts, value in rows])


class AggregateQueryResource:
    def __init__(self, engine: QueryEngine):
        self.engine = engine

    def on_get(self, req: falcon.Request, resp: falcon.Response, series: str) -> None:
        aggregation = req.get_param("aggregation")
        if not aggregation:
            raise InvalidInput("aggregation: query parameter is required (sum, mean, avg, min, max, count)",
                               field="aggregation")
        start, end = int_param(req, "start"), int_param(req, "end")
        send_json(resp, query_aggregate(self.engine, series, start, end, aggregation.lower()))
