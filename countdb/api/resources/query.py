"""GET /query/range and /query/aggregated: one series by path (the original Count API), or every series a
match= selector picks; answered in the negotiated format (api/results.py)."""

from __future__ import annotations

import falcon

from countdb.api import query_params as params
from countdb.api.json_shapes import json_groups, json_series
from countdb.api.results import choose_format, json_scalar, send_result
from countdb.obs import metrics
from countdb.query.engine import QueryEngine
from countdb.query.range import query_aggregate, query_range
from countdb.query.selection import parse_group_by, query_aggregate_grouped, query_range_matching


class RangeQueryResource:
    def __init__(self, engine: QueryEngine):
        self.engine = engine

    def on_get(self, req: falcon.Request, resp: falcon.Response, series: str) -> None:
        result_format, downsample = choose_format(req), params.downsample(req)
        with metrics.QUERY_SECONDS.labels("range").time():
            rows = query_range(self.engine, series, *params.bounds(req), downsample)
        send_result(resp, result_format, rows)


class MatchingRangeQueryResource:
    def __init__(self, engine: QueryEngine, max_series: int):
        self.engine = engine
        self.max_series = max_series

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        result_format, selector, downsample = choose_format(req), params.selector(req), params.downsample(req)
        with metrics.QUERY_SECONDS.labels("range").time():
            rows = query_range_matching(self.engine, selector, *params.bounds(req), downsample, self.max_series)
        send_result(resp, result_format, rows, json_series)


class AggregateQueryResource:
    def __init__(self, engine: QueryEngine):
        self.engine = engine

    def on_get(self, req: falcon.Request, resp: falcon.Response, series: str) -> None:
        result_format, aggregation = choose_format(req), params.aggregation(req)
        with metrics.QUERY_SECONDS.labels("aggregate").time():
            rows = query_aggregate(self.engine, series, *params.bounds(req), aggregation)
        send_result(resp, result_format, rows, json_scalar)


class GroupedAggregateQueryResource:
    def __init__(self, engine: QueryEngine, max_series: int):
        self.engine = engine
        self.max_series = max_series

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        result_format, selector, aggregation = choose_format(req), params.selector(req), params.aggregation(req)
        group_by = parse_group_by(req.get_param("group_by"))
        with metrics.QUERY_SECONDS.labels("aggregate").time():
            rows = query_aggregate_grouped(self.engine, selector, *params.bounds(req), aggregation, group_by,
                                           self.max_series)
        send_result(resp, result_format, rows, json_groups)
