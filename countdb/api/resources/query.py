"""GET /query/range and /query/aggregated: one series by path (the original Count API), or every series a
match= selector picks; answered in the negotiated format (api/results.py). In a cluster, /cluster/answer/{kind}
is the one-series query a node that does not own the series relays to an owner (cluster/reads.py owner_answer)."""

from __future__ import annotations

import falcon

from countdb.api import query_params as params
from countdb.api.auth import CREDENTIAL_PARAMS
from countdb.api.json_shapes import json_groups, json_series
from countdb.api.cluster_services import LocalReads
from countdb.api.results import choose_format, json_scalar, relay_answer, send_result
from countdb.api.services import Reads
from countdb.obs import metrics
from countdb.query.engine import QueryEngine
from countdb.query.range import query_aggregate, query_range
from countdb.query.selection import parse_group_by, query_aggregate_grouped, query_range_matching


class RangeQueryResource:
    def __init__(self, engine: QueryEngine, reads: Reads):
        self.engine = engine
        self.reads = reads

    def on_get(self, req: falcon.Request, resp: falcon.Response, series: str) -> None:
        result_format, downsample, bounds = choose_format(req), params.downsample(req), params.bounds(req)
        with metrics.QUERY_SECONDS.labels("range").time():
            answer = self.reads.owner_answer("range", series, _passed_on(req, result_format))
            if answer is not None:
                return relay_answer(resp, answer)
            rows = query_range(self.engine, series, *bounds, downsample, self.reads.series_points(series, *bounds))
        send_result(resp, result_format, rows)


class MatchingRangeQueryResource:
    def __init__(self, engine: QueryEngine, reads: Reads, max_series: int):
        self.engine = engine
        self.reads = reads
        self.max_series = max_series

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        result_format, selector, downsample = choose_format(req), params.selector(req), params.downsample(req)
        bounds = params.bounds(req)
        with metrics.QUERY_SECONDS.labels("range").time():
            rows = query_range_matching(self.engine, selector, *bounds, downsample, self.max_series,
                                        self.reads.selection_points(selector.text, *bounds))
        send_result(resp, result_format, rows, json_series)


class AggregateQueryResource:
    def __init__(self, engine: QueryEngine, reads: Reads):
        self.engine = engine
        self.reads = reads

    def on_get(self, req: falcon.Request, resp: falcon.Response, series: str) -> None:
        result_format, aggregation, bounds = choose_format(req), params.aggregation(req), params.bounds(req)
        with metrics.QUERY_SECONDS.labels("aggregate").time():
            answer = self.reads.owner_answer("aggregated", series, _passed_on(req, result_format))
            if answer is not None:
                return relay_answer(resp, answer)
            rows = query_aggregate(self.engine, series, *bounds, aggregation, self.reads.series_points(series, *bounds))
        send_result(resp, result_format, rows, json_scalar)


class GroupedAggregateQueryResource:
    def __init__(self, engine: QueryEngine, reads: Reads, max_series: int):
        self.engine = engine
        self.reads = reads
        self.max_series = max_series

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        result_format, selector, aggregation = choose_format(req), params.selector(req), params.aggregation(req)
        group_by, bounds = parse_group_by(req.get_param("group_by")), params.bounds(req)
        with metrics.QUERY_SECONDS.labels("aggregate").time():
            rows = query_aggregate_grouped(self.engine, selector, *bounds, aggregation, group_by, self.max_series,
                                           self.reads.selection_points(selector.text, *bounds))
        send_result(resp, result_format, rows, json_groups)


def _passed_on(req: falcon.Request, result_format: str) -> dict:
    """The parameters of a one-series query for the owner that answers it instead (cluster/reads.py owner_answer):
    the client's, with the format negotiated here, and without credentials (the owner's route is internal)."""
    return {**{name: value for name, value in req.params.items() if name not in CREDENTIAL_PARAMS},
            "format": result_format}


class OwnerAnswerResource:
    """GET /cluster/answer/{range|aggregated}?series=…&(the public query's parameters): the one-series query
    answered from this node's copy alone, for a node that relays it (it chose this node as a caught-up owner)."""

    def __init__(self, engine: QueryEngine):
        local = LocalReads()
        self.resources = {"range": RangeQueryResource(engine, local),
                          "aggregated": AggregateQueryResource(engine, local)}

    def on_get(self, req: falcon.Request, resp: falcon.Response, kind: str) -> None:
        resource = self.resources.get(kind)
        if resource is None:
            raise falcon.HTTPNotFound(description=f"no one-series query {kind!r}: range or aggregated")
        resource.on_get(req, resp, req.get_param("series", required=True))
