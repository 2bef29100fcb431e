"""The values PromQL expressions evaluate to over a grid of steps: Scalar (one value a step) and Vector (a
dense matrix, one row per label set, one column per step, with a presence mask).

Invariant: a Vector's rows have distinct label sets; `present` says which cells hold a sample, so a NaN sample
(a histogram quantile over no observations) stays distinct from no sample at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from countdb.errors import QueryRejected
from countdb.query.selectors import NAME_TAG


@dataclass
class Scalar:
    values: np.ndarray  # (steps,)


@dataclass
class Vector:
    labels: list[dict[str, str]]
    values: np.ndarray  # (series, steps) float64
    present: np.ndarray  # (series, steps) bool

    @classmethod
    def empty(cls, steps: int) -> Vector:
        return cls([], np.empty((0, steps)), np.zeros((0, steps), bool))

    def without_empty(self) -> Vector:
        """The series that have a value at some step (an operation may leave a series with none)."""
        keep = self.present.any(axis=1)
        if keep.all():
            return self
        return Vector([labels for labels, kept in zip(self.labels, keep) if kept], self.values[keep],
                      self.present[keep])

    def without_name(self) -> Vector:
        return Vector([{k: v for k, v in labels.items() if k != NAME_TAG} for labels in self.labels],
                      self.values, self.present)


def signature(labels: dict[str, str], names: tuple[str, ...], on: bool) -> tuple:
    """The label values that identify a series for matching or grouping: only `names` (on/by) or all but
    `names` and the metric name (ignoring/without)."""
    if on:
        return tuple(labels.get(name, "") for name in names)
    return tuple(sorted((k, v) for k, v in labels.items() if k not in names and k != NAME_TAG))


def merged(labels: list[dict[str, str]], values: np.ndarray, present: np.ndarray) -> Vector:
    """Rows with equal label sets folded into one; QueryRejected if two of them have a sample at the same step
    (Prometheus: "vector cannot contain metrics with the same labelset")."""
    rows: dict[tuple, int] = {}
    order = []
    for index, row_labels in enumerate(labels):
        key = tuple(sorted(row_labels.items()))
        rows.setdefault(key, len(order))
        if rows[key] == len(order):
            order.append([index])
        else:
            order[rows[key]].append(index)
    if len(order) == len(labels):
        return Vector(labels, values, present)
    out_values = np.full((len(order), values.shape[1]), np.nan)
    out_present = np.zeros((len(order), values.shape[1]), bool)
    for out_row, indexes in enumerate(order):
        if present[indexes].sum(axis=0).max(initial=0) > 1:
            raise QueryRejected(f"vector cannot contain metrics with the same labelset {labels[indexes[0]]}")
        for index in indexes:
            out_values[out_row] = np.where(present[index], values[index], out_values[out_row])
            out_present[out_row] |= present[index]
    return Vector([labels[indexes[0]] for indexes in order], out_values, out_present)
