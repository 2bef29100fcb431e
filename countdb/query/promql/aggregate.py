"""PromQL aggregation operators and histogram_quantile over a Vector, group by group, every step at once.

Invariant: a group answers at a step only where at least one of its series has a sample there.
"""

from __future__ import annotations

import numpy as np

from countdb.query.promql.functions import quantile, quantile_outside
from countdb.query.promql.values import Vector, signature
from countdb.query.selectors import NAME_TAG


def _groups(vector: Vector, labels: tuple[str, ...], without: bool) -> dict[tuple, list[int]]:
    groups: dict[tuple, list[int]] = {}
    for index, row_labels in enumerate(vector.labels):
        groups.setdefault(signature(row_labels, labels, not without), []).append(index)
    return groups


def _group_labels(row_labels: dict[str, str], labels: tuple[str, ...], without: bool) -> dict[str, str]:
    if without:
        return {k: v for k, v in row_labels.items() if k not in labels and k != NAME_TAG}
    return {k: v for k, v in row_labels.items() if k in labels and v}


def aggregate(op: str, vector: Vector, labels: tuple[str, ...], without: bool,
              param: np.ndarray | None) -> Vector:
    """sum/avg/min/max/count/stddev/stdvar/quantile (one row per group) or topk/bottomk (the chosen series)."""
    if op in ("topk", "bottomk"):
        return _top(op, vector, labels, without, param)
    out_labels, out_values, out_present = [], [], []
    for rows in _groups(vector, labels, without).values():
        values, present = vector.values[rows], vector.present[rows]
        count = present.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out_values.append(_reduce_group(op, values, present, count, param))
        out_present.append(count > 0)
        out_labels.append(_group_labels(vector.labels[rows[0]], labels, without))
    if not out_labels:
        return Vector.empty(vector.values.shape[1])
    return Vector(out_labels, np.array(out_values), np.array(out_present))


def _reduce_group(op: str, values: np.ndarray, present: np.ndarray, count: np.ndarray,
                  param: np.ndarray | None) -> np.ndarray:
    total = np.where(present, values, 0.0).sum(axis=0)
    if op == "sum":
        return total
    if op == "count":
        return count.astype(float)
    if op == "avg":
        return total / np.maximum(count, 1)
    if op in ("min", "max"):
        fill = np.inf if op == "min" else -np.inf
        masked = np.where(present & ~np.isnan(values), values, fill)
        result = masked.min(axis=0) if op == "min" else masked.max(axis=0)
        return np.where(np.isinf(result) & (result == fill), np.nan, result)
    if op in ("stddev", "stdvar"):
        mean = total / np.maximum(count, 1)
        variance = np.where(present, (values - mean) ** 2, 0.0).sum(axis=0) / np.maximum(count, 1)
        return np.sqrt(variance) if op == "stddev" else variance
    if op == "quantile":
        out = np.full(values.shape[1], np.nan)
        for step in np.flatnonzero(count):
            out[step] = quantile(param[step], values[present[:, step], step])
        return out
    raise ValueError(op)


def _top(op: str, vector: Vector, labels: tuple[str, ...], without: bool, param: np.ndarray) -> Vector:
    present = np.zeros_like(vector.present)
    for rows in _groups(vector, labels, without).values():
        values = vector.values[rows]
        key = np.where(vector.present[rows], -values if op == "topk" else values, np.inf)
        key = np.where(np.isnan(key), np.inf, key)
        rank = np.argsort(np.argsort(key, axis=0, kind="stable"), axis=0)
        k = np.nan_to_num(param, nan=0.0).astype(np.int64)
        present[rows] = vector.present[rows] & (rank < k)
    keep = present.any(axis=1)
    return Vector([labels for labels, kept in zip(vector.labels, keep) if kept], vector.values[keep],
                  present[keep])


def histogram_quantile(phi: np.ndarray, vector: Vector) -> Vector:
    """Prometheus' bucketQuantile over classic `le` buckets, per group of series equal but for `le`."""
    groups: dict[tuple, list[tuple[float, int]]] = {}
    for index, row_labels in enumerate(vector.labels):
        try:
            upper = float(row_labels.get("le", ""))
        except ValueError:
            continue
        key = tuple(sorted((k, v) for k, v in row_labels.items() if k not in ("le", NAME_TAG)))
        groups.setdefault(key, []).append((upper, index))
    steps = vector.values.shape[1]
    out_labels, out_values, out_present = [], [], []
    for key, buckets in groups.items():
        buckets.sort()
        uppers = np.array([upper for upper, _ in buckets])
        rows = [index for _, index in buckets]
        values, present = vector.values[rows], vector.present[rows]
        result = np.full(steps, np.nan)
        for step in np.flatnonzero(present.any(axis=0)):
            have = present[:, step]
            result[step] = _bucket_quantile(phi[step], uppers[have], values[have, step])
        out_labels.append(dict(key))
        out_values.append(result)
        out_present.append(present.any(axis=0))
    if not out_labels:
        return Vector.empty(steps)
    return Vector(out_labels, np.array(out_values), np.array(out_present))


def _bucket_quantile(phi: float, uppers: np.ndarray, counts: np.ndarray) -> float:
    outside = quantile_outside(phi)
    if outside is not None:
        return outside
    if len(uppers) == 0 or not np.isposinf(uppers[-1]):
        return np.nan
    uppers, inverse = np.unique(uppers, return_inverse=True)  # coalesce equal bounds
    counts = np.bincount(inverse, weights=counts)
    counts = np.maximum.accumulate(counts)  # ensure monotonic
    if len(uppers) < 2 or counts[-1] == 0:
        return np.nan
    rank = phi * counts[-1]
    b = int(np.searchsorted(counts[:-1], rank, "left"))
    if b == len(uppers) - 1:
        return float(uppers[-2])
    if b == 0 and uppers[0] <= 0:
        return float(uppers[0])
    start, end, count = 0.0, uppers[b], counts[b]
    if b > 0:
        start, count, rank = uppers[b - 1], counts[b] - counts[b - 1], rank - counts[b - 1]
    return float(start + (end - start) * (rank / count))
