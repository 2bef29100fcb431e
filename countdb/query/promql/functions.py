"""PromQL's range-vector functions (rate, increase, *_over_time …) over one series' samples, for every step at
once in numpy: each step's window is located with searchsorted and summarised with prefix sums or reduceat.

Invariant: a window is (t - range, t] (left-open, as in Prometheus 3); a function with too few samples in a
window answers no sample there (present False), never a made-up value.
"""

from __future__ import annotations

import numpy as np

RANGE_FUNCTIONS = {"rate", "irate", "increase", "delta", "idelta", "deriv", "sum_over_time", "avg_over_time",
                   "min_over_time", "max_over_time", "count_over_time", "last_over_time", "stddev_over_time",
                   "stdvar_over_time", "present_over_time", "changes", "resets", "quantile_over_time"}


def windows(ts: np.ndarray, eval_ms: np.ndarray, range_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Index bounds [lo, hi) of the samples in (t - range_ms, t] for each t in eval_ms."""
    return np.searchsorted(ts, eval_ms - range_ms, "right"), np.searchsorted(ts, eval_ms, "right")


def _prefix(values: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(values)])


def evaluate_range_function(name: str, ts: np.ndarray, values: np.ndarray, eval_ms: np.ndarray, range_ms: int,
                            param: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(values, present) of `name` over one series for each step."""
    lo, hi = windows(ts, eval_ms, range_ms)
    count = hi - lo
    last = np.maximum(hi - 1, 0)
    if name in ("rate", "increase", "delta"):
        return _extrapolated(name, ts, values, eval_ms, range_ms, lo, hi)
    if name in ("irate", "idelta"):
        present = count >= 2
        prev = np.maximum(hi - 2, 0)
        diff = values[last] - values[prev] if len(values) else np.zeros(len(eval_ms))
        if name == "idelta":
            return diff, present
        diff = np.where(diff < 0, values[last], diff) if len(values) else diff
        seconds = (ts[last] - ts[prev]) / 1000.0 if len(ts) else np.ones(len(eval_ms))
        present &= seconds > 0
        return diff / np.where(seconds > 0, seconds, 1.0), present
    if name == "deriv":
        return _deriv(ts, values, lo, hi)
    present = count >= 1
    safe = np.maximum(count, 1)
    if name == "count_over_time":
        return count.astype(float), present
    if name == "present_over_time":
        return np.ones(len(eval_ms)), present
    if name == "last_over_time":
        return (values[last] if len(values) else np.zeros(len(eval_ms))), present
    if name in ("sum_over_time", "avg_over_time"):
        sums = _prefix(values)
        total = sums[hi] - sums[lo]
        return (total if name == "sum_over_time" else total / safe), present
    if name in ("stddev_over_time", "stdvar_over_time"):
        centred = values - (values.mean() if len(values) else 0.0)
        sums, squares = _prefix(centred), _prefix(centred * centred)
        mean = (sums[hi] - sums[lo]) / safe
        variance = np.maximum((squares[hi] - squares[lo]) / safe - mean * mean, 0.0)
        return (np.sqrt(variance) if name == "stddev_over_time" else variance), present
    if name in ("min_over_time", "max_over_time"):
        return _reduce(np.minimum if name == "min_over_time" else np.maximum, values, lo, hi), present
    if name in ("changes", "resets"):
        steps = values[1:] != values[:-1] if name == "changes" else values[1:] < values[:-1]
        counts = np.concatenate([[0], np.cumsum(steps)])
        return np.where(present, counts[last] - counts[np.minimum(lo, last)], 0).astype(float), present
    if name == "quantile_over_time":
        return _quantile_over_time(values, lo, hi, param), present
    raise ValueError(name)


def _reduce(ufunc, values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """ufunc over values[lo:hi] per step via one reduceat over interleaved bounds (empty windows: NaN)."""
    if len(values) == 0:
        return np.full(len(lo), np.nan)
    padded = np.append(values, np.nan)
    bounds = np.empty(2 * len(lo), np.int64)
    bounds[0::2], bounds[1::2] = np.minimum(lo, len(values)), hi
    return np.where(hi > lo, ufunc.reduceat(padded, bounds)[0::2], np.nan)


def _extrapolated(name: str, ts: np.ndarray, values: np.ndarray, eval_ms: np.ndarray, range_ms: int,
                  lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prometheus' extrapolatedRate: the change between the window's first and last samples (counter resets
    added back for rate/increase), extrapolated towards the window's edges."""
    present = hi - lo >= 2
    if not present.any():
        return np.zeros(len(eval_ms)), present
    first, last = np.where(present, lo, 0), np.where(present, hi - 1, 1)
    is_counter = name != "delta"
    corrected = values
    if is_counter:
        drops = np.concatenate([[0.0], np.where(values[1:] < values[:-1], values[:-1], 0.0)])
        corrected = values + np.cumsum(drops)
    result = corrected[last] - corrected[first]
    first_t, last_t = ts[first].astype(float), ts[last].astype(float)
    to_start = (first_t - (eval_ms - range_ms)) / 1000.0
    to_end = (eval_ms - last_t) / 1000.0
    sampled = (last_t - first_t) / 1000.0
    average = sampled / np.maximum(hi - lo - 1, 1)
    if is_counter:
        with np.errstate(divide="ignore", invalid="ignore"):
            to_zero = sampled * (values[first] / result)
        use_zero = (result > 0) & (values[first] >= 0) & (to_zero < to_start)
        to_start = np.where(use_zero, to_zero, to_start)
    threshold = average * 1.1
    interval = sampled + np.where(to_start >= threshold, average / 2, to_start)
    interval += np.where(to_end >= threshold, average / 2, to_end)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = interval / sampled
    if name == "rate":
        factor = factor / (range_ms / 1000.0)
    return result * factor, present & (sampled > 0)


def _deriv(ts: np.ndarray, values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares slope (per second) of each window's samples."""
    present = hi - lo >= 2
    if not present.any():
        return np.zeros(len(lo)), present
    x = (ts - ts[0]) / 1000.0
    y = values - values.mean()
    sx, sy, sxy, sxx = _prefix(x), _prefix(y), _prefix(x * y), _prefix(x * x)
    n = (hi - lo).astype(float)
    cov = (sxy[hi] - sxy[lo]) - (sx[hi] - sx[lo]) * (sy[hi] - sy[lo]) / np.maximum(n, 1)
    var = (sxx[hi] - sxx[lo]) - (sx[hi] - sx[lo]) ** 2 / np.maximum(n, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return cov / var, present & (var > 0)


def _quantile_over_time(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, phi: np.ndarray) -> np.ndarray:
    out = np.full(len(lo), np.nan)
    for step, (start, end) in enumerate(zip(lo, hi)):
        if end > start:
            out[step] = quantile(phi[step], values[start:end])
    return out


def quantile(phi: float, values: np.ndarray) -> float:
    """Prometheus' quantile: linear interpolation between closest ranks; φ outside [0, 1] gives ∓Inf."""
    outside = quantile_outside(phi)
    return float(np.quantile(values, phi)) if outside is None else outside


def quantile_outside(phi: float) -> float | None:
    """What any Prometheus quantile answers for φ NaN (NaN), below 0 (-Inf) or above 1 (+Inf); None inside."""
    if np.isnan(phi):
        return np.nan
    if phi < 0:
        return -np.inf
    if phi > 1:
        return np.inf
    return None
