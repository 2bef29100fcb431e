"""The Prometheus HTTP query API for Grafana and promtool: /api/v1/query, query_range, series, labels,
label/<name>/values, metadata and status/buildinfo, GET or POST (form-encoded). Errors take Prometheus' shape."""

from __future__ import annotations

import falcon

from countdb import __version__
from countdb.api import prometheus_api as api
from countdb.api.services import Reads
from countdb.errors import InvalidInput
from countdb.model import TAG_KEY_PATTERN
from countdb.query.discovery import match_series
from countdb.query.engine import QueryEngine
from countdb.query.promql.query import instant_query, range_query, selector_matchers
from countdb.query.selectors import NAME_TAG, Selector, selector_text


class _Resource:
    """Cluster-wide, like /query/range?match=: other nodes' points of the selected series come from Reads."""

    def __init__(self, engine: QueryEngine, reads: Reads, max_series: int):
        self.engine = engine
        self.reads = reads
        self.max_series = max_series

    def on_get(self, req: falcon.Request, resp: falcon.Response, **kwargs) -> None:
        api.success(resp, self.answer(api.form(req), **kwargs))

    on_post = on_get

    def matched_labels(self, params: dict) -> list[dict[str, str]]:
        """Label sets of the series any match[] selects (all series without match[]) in [start, end]."""
        start, end = max(api.time_ms(params, "start", 0), 0), max(api.time_ms(params, "end", 2**62), 0)
        texts = params.get("match[]") or [None]
        found: dict[tuple, dict] = {}
        for text in texts:
            selector = None if text is None else Selector(text, selector_matchers(text))
            remote = self.reads.selection_points(None if selector is None else selector_text(selector.matchers),
                                                 start, end)
            for labels in api.series_labels(match_series(self.engine, selector, start, end,
                                                         self.engine.snapshot(remote), self.max_series)):
                found[tuple(sorted(labels.items()))] = labels
        return [found[key] for key in sorted(found)]


class PromQueryResource(_Resource):
    def answer(self, params: dict) -> dict:
        result = instant_query(self.engine, api.one(params, "query"), api.time_ms(params, "time", api.now_ms()),
                               self.max_series, self.reads.selection_points)
        return api.result_json(result, instant=True)


class PromQueryRangeResource(_Resource):
    def answer(self, params: dict) -> dict:
        result = range_query(self.engine, api.one(params, "query"), api.time_ms(params, "start"),
                             api.time_ms(params, "end"), api.duration_ms(params, "step"), self.max_series,
                             self.reads.selection_points)
        return api.result_json(result, instant=False)


class PromSeriesResource(_Resource):
    def answer(self, params: dict) -> list:
        if not params.get("match[]"):
            raise InvalidInput("no match[] parameter provided", field="match[]")
        return self.matched_labels(params)


class PromLabelsResource(_Resource):
    def answer(self, params: dict) -> list:
        return sorted({name for labels in self.matched_labels(params) for name in labels})


class PromLabelValuesResource(_Resource):
    def answer(self, params: dict, name: str) -> list:
        if name != NAME_TAG and not TAG_KEY_PATTERN.match(name):
            raise InvalidInput(f"invalid label name: {name!r}", field="name")
        return sorted({labels[name] for labels in self.matched_labels(params) if labels.get(name)})


class PromMetadataResource:
    """Count keeps no metric metadata (type, help, unit): an empty answer, as Prometheus gives for none."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        api.success(resp, {})


class PromBuildInfoResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        api.success(resp, {"version": "2.42.0", "revision": "", "branch": "", "buildUser": "",
                           "buildDate": "", "goVersion": "", "application": "count", "countVersion": __version__})
