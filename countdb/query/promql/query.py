"""PromQL instant and range queries: parse, lay out the step grid as Prometheus does, evaluate.

Invariant: steps are start, start + step, … up to end inclusive (at most MAX_STEPS); everything is read through
Evaluator, which reads each selector once for the whole grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from countdb.errors import InvalidInput
from countdb.query.engine import QueryEngine
from countdb.query.promql import ast
from countdb.query.promql.evaluate import Evaluator, RawMatrix
from countdb.query.promql.fetch import RemoteFor
from countdb.query.promql.parser import parse_promql
from countdb.query.promql.values import Scalar, Vector

MAX_STEPS = 11_000  # Prometheus' limit on points per series in a range query


@dataclass
class QueryResult:
    steps_ms: np.ndarray
    value: Scalar | Vector | RawMatrix


def instant_query(engine: QueryEngine, text: str, time_ms: int, max_series: int,
                  remote_for: RemoteFor | None = None) -> QueryResult:
    """`text` evaluated at `time_ms` (with other cluster nodes' points: `remote_for`); InvalidInput for bad or
    unsupported PromQL."""
    steps = np.array([time_ms], np.int64)
    return QueryResult(steps, Evaluator(engine, steps, max_series, remote_for).evaluate(parse_promql(text)))


def range_query(engine: QueryEngine, text: str, start_ms: int, end_ms: int, step_ms: int,
                max_series: int, remote_for: RemoteFor | None = None) -> QueryResult:
    """`text` at every step from start_ms to end_ms; InvalidInput for bad bounds, step or PromQL."""
    if end_ms < start_ms:
        raise InvalidInput("end timestamp must not be before start time", field="end")
    if step_ms <= 0:
        raise InvalidInput("zero or negative query resolution step widths are not accepted. "
                           "Try a positive integer", field="step")
    if (end_ms - start_ms) // step_ms + 1 > MAX_STEPS:
        raise InvalidInput(f"exceeded maximum resolution of {MAX_STEPS} points per timeseries. "
                           "Try decreasing the query resolution (?step=XX)", field="step")
    node = parse_promql(text)
    if isinstance(node, (ast.MatrixSelector, ast.String)):
        raise InvalidInput("invalid expression type \"range vector\" for range query, must be Scalar or "
                           "instant Vector", field="query")
    steps = np.arange(start_ms, end_ms + 1, step_ms, dtype=np.int64)
    return QueryResult(steps, Evaluator(engine, steps, max_series, remote_for).evaluate(node))


def selector_matchers(text: str):
    """The matchers of a series selector given as match[]=; InvalidInput if it is not a plain selector."""
    node = parse_promql(text)
    if not isinstance(node, ast.VectorSelector) or node.offset_ms:
        raise InvalidInput(f"match[]: {text!r} is not a series selector", field="match[]")
    return node.matchers
