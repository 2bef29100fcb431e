"""PromQL binary operators between scalars and vectors: arithmetic, comparison (filtering or `bool`), and
vector matching with on/ignoring and group_left/group_right, computed on whole rows of steps.

Invariant: a result cell is present only where both operands are (and, for a filtering comparison, where it
holds); result labels follow Prometheus (metric name dropped by arithmetic and bool comparisons).
"""

from __future__ import annotations

import numpy as np

from countdb.errors import QueryRejected
from countdb.query.promql import ast
from countdb.query.promql.values import Scalar, Vector, merged, signature
from countdb.query.selectors import NAME_TAG

COMPARISONS = {"==", "!=", ">", "<", ">=", "<="}


def apply_op(op: str, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        if op == "+":
            return left + right
        if op == "-":
            return left - right
        if op == "*":
            return left * right
        if op == "/":
            return left / right
        if op == "%":
            return np.fmod(left, right)
        if op == "^":
            return np.power(left, right)
        return {"==": np.equal, "!=": np.not_equal, ">": np.greater, "<": np.less, ">=": np.greater_equal,
                "<=": np.less_equal}[op](left, right).astype(float)


def binary(node: ast.Binary, lhs, rhs):
    """Evaluate lhs <op> rhs, each a Scalar or a Vector."""
    op, is_bool = node.op, node.bool_modifier
    if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
        return Scalar(apply_op(op, lhs.values, rhs.values))
    if isinstance(lhs, Vector) and isinstance(rhs, Vector):
        return _vector_vector(node, lhs, rhs)
    vector, swap = (lhs, False) if isinstance(lhs, Vector) else (rhs, True)
    scalar = (rhs if not swap else lhs).values[np.newaxis, :]
    values = apply_op(op, scalar, vector.values) if swap else apply_op(op, vector.values, scalar)
    return _finish(op, is_bool, vector.labels, vector.values, values, vector.present)


def _finish(op: str, is_bool: bool, labels: list[dict], kept: np.ndarray, values: np.ndarray,
            present: np.ndarray) -> Vector:
    """Apply comparison filtering (keeping `kept`, the vector's own values) and drop names as Prometheus does."""
    if op in COMPARISONS and not is_bool:
        present = present & (values == 1.0)
        return Vector(labels, kept, present).without_empty()
    unnamed = [{k: v for k, v in row.items() if k != NAME_TAG} for row in labels]
    return merged(unnamed, values, present).without_empty()


def _vector_vector(node: ast.Binary, lhs: Vector, rhs: Vector) -> Vector:
    matching = node.matching or ast.Matching(False, (), None)
    if matching.group == "right":
        lhs, rhs = rhs, lhs
    by_signature: dict[tuple, list[int]] = {}
    for index, labels in enumerate(rhs.labels):
        by_signature.setdefault(signature(labels, matching.labels, matching.on), []).append(index)
    pairs = [(left, right) for left, labels in enumerate(lhs.labels)
             for right in by_signature.get(signature(labels, matching.labels, matching.on), ())]
    steps = lhs.values.shape[1]
    if not pairs:
        return Vector.empty(steps)
    left_rows, right_rows = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    present = lhs.present[left_rows] & rhs.present[right_rows]
    _check_unique(left_rows, present, "right", matching.group)  # a series of the 'many' side matching several
    if matching.group is None:
        _check_unique(right_rows, present, "left", None)
    a, b = lhs.values[left_rows], rhs.values[right_rows]
    values = apply_op(node.op, b, a) if matching.group == "right" else apply_op(node.op, a, b)
    labels = [_result_labels(node, matching, lhs.labels[left], rhs.labels[right]) for left, right in pairs]
    if node.op in COMPARISONS and not node.bool_modifier:
        present = present & (values == 1.0)
        return merged(labels, a, present).without_empty()
    return merged(labels, values, present).without_empty()


def _check_unique(rows: np.ndarray, present: np.ndarray, side: str, group: str | None) -> None:
    """Several pairs sharing one series of a side that must be 'one' at the same step: Prometheus refuses."""
    for row in np.unique(rows):
        if present[rows == row].sum(axis=0).max(initial=0) > 1:
            raise QueryRejected(f"many-to-many matching not allowed: found duplicate series on the {side} hand-side"
                                + ("" if group else " (use group_left/group_right for many-to-one)"))


def _result_labels(node: ast.Binary, matching: ast.Matching, left: dict, right: dict) -> dict:
    drop_name = node.op not in COMPARISONS or node.bool_modifier
    labels = {k: v for k, v in left.items() if not (drop_name and k == NAME_TAG)}
    if matching.group is None:
        if matching.on:
            labels = {k: v for k, v in labels.items() if k in matching.labels}
        else:
            labels = {k: v for k, v in labels.items() if k not in matching.labels}
    for name in matching.include:
        if right.get(name):
            labels[name] = right[name]
        else:
            labels.pop(name, None)
    return labels
