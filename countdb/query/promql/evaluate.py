"""Evaluating a PromQL syntax tree over a grid of steps (instant query: one step), reading each selector's
samples once for the whole grid and computing in numpy row by row, never sample by sample in Python.

Invariant: a vector selector at step t answers the newest sample in (t - offset - LOOKBACK_MS, t - offset];
unsupported constructs never get here (the parser refuses them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from countdb.errors import InvalidInput
from countdb.query.engine import QueryEngine
from countdb.query.promql import ast
from countdb.query.promql.aggregate import aggregate, histogram_quantile
from countdb.query.promql.binary import binary
from countdb.query.promql.fetch import RemoteFor, Samples, fetch_samples
from countdb.query.promql.functions import RANGE_FUNCTIONS, evaluate_range_function, windows
from countdb.query.promql.values import Scalar, Vector, merged

LOOKBACK_MS = 300_000
_KEEPS_NAME = {"last_over_time", "label_replace"}
_MATH = {"abs": np.abs, "ceil": np.ceil, "floor": np.floor, "sqrt": np.sqrt, "exp": np.exp, "ln": np.log,
         "log2": np.log2, "log10": np.log10}


@dataclass
class RawMatrix:
    """A range selector at the top of an instant query: the raw samples of each series in its window."""
    samples: Samples
    lo: np.ndarray
    hi: np.ndarray


class Evaluator:
    def __init__(self, engine: QueryEngine, steps_ms: np.ndarray, max_series: int,
                 remote_for: RemoteFor | None = None):
        self.engine = engine
        self.steps_ms = steps_ms
        self.max_series = max_series
        self.remote_for = remote_for

    def evaluate(self, node):
        """Scalar, Vector, or RawMatrix (a bare range selector); InvalidInput for a type error."""
        if isinstance(node, ast.MatrixSelector):
            return self._raw_matrix(node)
        return self._eval(node)

    def _eval(self, node):
        if isinstance(node, ast.Number):
            return Scalar(np.full(len(self.steps_ms), node.value))
        if isinstance(node, ast.VectorSelector):
            return self._instant(node)
        if isinstance(node, ast.Unary):
            operand = self._eval(node.expr)
            if isinstance(operand, Scalar):
                return Scalar(-operand.values)
            return merged(operand.without_name().labels, -operand.values, operand.present)
        if isinstance(node, ast.Binary):
            return binary(node, self._eval(node.lhs), self._eval(node.rhs))
        if isinstance(node, ast.Aggregate):
            param = self._scalar(node.param, node.op) if node.param is not None else None
            return aggregate(node.op, self._vector(node.expr, node.op), node.labels, node.without, param)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.MatrixSelector):
            raise InvalidInput("query: a range vector is only allowed as a function argument or the whole "
                               "expression of an instant query", field="query")
        raise InvalidInput(f"query: a string is not allowed here ({node})", field="query")

    def _vector(self, node, where: str) -> Vector:
        value = self._eval(node)
        if not isinstance(value, Vector):
            raise InvalidInput(f"query: {where} expects an instant vector, got a scalar", field="query")
        return value

    def _scalar(self, node, where: str) -> np.ndarray:
        value = self._eval(node)
        if not isinstance(value, Scalar):
            raise InvalidInput(f"query: {where} expects a scalar, got an instant vector", field="query")
        return value.values

    def _fetch(self, selector: ast.VectorSelector, range_ms: int) -> Samples:
        start = int(self.steps_ms[0]) - selector.offset_ms - range_ms
        end = int(self.steps_ms[-1]) - selector.offset_ms
        return fetch_samples(self.engine, selector.matchers, start, end, self.max_series, self.remote_for)

    def _instant(self, selector: ast.VectorSelector) -> Vector:
        samples = self._fetch(selector, LOOKBACK_MS)
        eval_ms = self.steps_ms - selector.offset_ms
        values = np.empty((len(samples.labels), len(eval_ms)))
        present = np.empty((len(samples.labels), len(eval_ms)), bool)
        for index in range(len(samples.labels)):
            ts, series_values = samples.series(index)
            lo, hi = windows(ts, eval_ms, LOOKBACK_MS)
            present[index] = hi > lo
            values[index] = series_values[np.maximum(hi - 1, 0)]
        return Vector(samples.labels, values, present).without_empty()

    def _range_function(self, name: str, matrix: ast.MatrixSelector, param: np.ndarray | None) -> Vector:
        samples = self._fetch(matrix.vector, matrix.range_ms)
        eval_ms = self.steps_ms - matrix.vector.offset_ms
        values = np.empty((len(samples.labels), len(eval_ms)))
        present = np.empty((len(samples.labels), len(eval_ms)), bool)
        for index in range(len(samples.labels)):
            ts, series_values = samples.series(index)
            values[index], present[index] = evaluate_range_function(name, ts, series_values, eval_ms,
                                                                    matrix.range_ms, param)
        vector = Vector(samples.labels, values, present)
        if name not in _KEEPS_NAME:
            vector = merged(vector.without_name().labels, values, present)
        return vector.without_empty()

    def _raw_matrix(self, matrix: ast.MatrixSelector) -> RawMatrix:
        samples = self._fetch(matrix.vector, matrix.range_ms)
        eval_ms = self.steps_ms[-1:] - matrix.vector.offset_ms
        bounds = [windows(samples.series(i)[0], eval_ms, matrix.range_ms) for i in range(len(samples.labels))]
        return RawMatrix(samples, np.array([lo[0] for lo, _ in bounds], np.int64),
                         np.array([hi[0] for _, hi in bounds], np.int64))

    def _call(self, node: ast.Call):
        name, args = node.name, node.args
        if name in RANGE_FUNCTIONS:
            param = self._scalar(args[0], name) if name == "quantile_over_time" else None
            return self._range_function(name, args[-1], param)
        if name == "time":
            return Scalar(self.steps_ms / 1000.0)
        if name == "vector":
            return Vector([{}], self._scalar(args[0], name)[np.newaxis, :], np.ones((1, len(self.steps_ms)), bool))
        if name == "scalar":
            vector = self._vector(args[0], name)
            single = vector.present.sum(axis=0) == 1
            picked = np.where(vector.present, vector.values, 0.0).sum(axis=0) if len(vector.labels) else 0.0
            return Scalar(np.where(single, picked, np.nan))
        if name == "histogram_quantile":
            return histogram_quantile(self._scalar(args[0], name), self._vector(args[1], name))
        if name == "label_replace":
            return _label_replace(self._vector(args[0], name), *(arg.value for arg in args[1:]))
        vector = self._vector(args[0], name)
        with np.errstate(all="ignore"):
            if name in _MATH:
                values = _MATH[name](vector.values)
            elif name == "round":
                to = self._scalar(args[1], name) if len(args) > 1 else np.ones(len(self.steps_ms))
                values = np.floor(vector.values * (1.0 / to) + 0.5) / (1.0 / to)
            else:
                steps = len(self.steps_ms)
                low = self._scalar(args[1], name) if name in ("clamp", "clamp_min") else np.full(steps, -np.inf)
                high = self._scalar(args[-1], name) if name in ("clamp", "clamp_max") else np.full(steps, np.inf)
                values = np.maximum(np.minimum(vector.values, high), low)
                if name == "clamp":
                    vector = Vector(vector.labels, vector.values, vector.present & (low <= high))
        return merged(vector.without_name().labels, values, vector.present).without_empty()


def _label_replace(vector: Vector, destination: str, replacement: str, source: str, pattern: str) -> Vector:
    try:
        regex = re.compile(f"(?:{pattern})\\Z", re.DOTALL)
    except re.error as error:
        raise InvalidInput(f"query: label_replace: bad regex {pattern!r}: {error}", field="query") from None
    template = re.sub(r"\$\{?(\w+)\}?", lambda m: f"\\g<{m.group(1)}>", replacement)
    labels = []
    for row in vector.labels:
        match = regex.match(row.get(source, ""))
        row = dict(row)
        if match:
            value = match.expand(template)
            if value:
                row[destination] = value
            else:
                row.pop(destination, None)
        labels.append(row)
    return merged(labels, vector.values, vector.present)
