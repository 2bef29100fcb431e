"""Aggregations by name, and the SQL that computes one over groups of visible points.

Invariant: a group with no points has no row, and an aggregate over nothing is NULL (count: 0), so every
endpoint answers 'nothing' the same way. `rate` is Prometheus' rate(): per-second increase of a counter,
resets handled, extrapolated to the window's edges; over several series it is the sum of their rates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from countdb.errors import InvalidInput

SIMPLE = {
    "sum": "sum(value)",
    "mean": "avg(value)",
    "avg": "avg(value)",
    "min": "min(value)",
    "max": "max(value)",
    "count": "count(*)",
    "first": "arg_min(value, ts)",
    "last": "arg_max(value, ts)",
    "stddev": "stddev_samp(value)",
    "median": "quantile_cont(value, 0.5)",
}
NAMES = (*SIMPLE, "p50", "p90", "p95", "p99", "quantile", "rate")
_PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d+)?)\Z")


@dataclass(frozen=True)
class Aggregation:
    name: str
    expression: str  # over columns ts, value of one group; unused for rate

    @property
    def is_rate(self) -> bool:
        return self.name == "rate"


def parse_aggregation(name: str | None, quantile: str | None = None, default: str | None = None) -> Aggregation:
    """The aggregation a request names (`p90`, `quantile` with quantile=0.9, …); InvalidInput naming the field.
    A quantile= without an aggregation means aggregation=quantile."""
    if not name:
        name = "quantile" if quantile is not None else default
    if not name:
        raise InvalidInput(f"aggregation: query parameter is required (one of {', '.join(NAMES)})",
                           field="aggregation")
    name = name.lower()
    if quantile is not None and name != "quantile":
        raise InvalidInput(f"quantile: only goes with aggregation=quantile (got aggregation={name})", field="quantile")
    if name in SIMPLE:
        return Aggregation(name, SIMPLE[name])
    if name == "rate":
        return Aggregation(name, "")
    if name == "quantile":
        return Aggregation(name, f"quantile_cont(value, {_quantile(quantile)!r})")
    percentile = _PERCENTILE.match(name)
    if percentile and 0 < float(percentile.group(1)) < 100:
        return Aggregation(name, f"quantile_cont(value, {float(percentile.group(1)) / 100!r})")
    raise InvalidInput(f"aggregation: {name!r} is not one of {', '.join(NAMES)} (or pNN, e.g. p75)",
                       field="aggregation")


def _quantile(raw: str | None) -> float:
    if raw is None:
        raise InvalidInput("quantile: required with aggregation=quantile (a number between 0 and 1, e.g. 0.95)",
                           field="quantile")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise InvalidInput(f"quantile: {raw!r} is not a number between 0 and 1", field="quantile")
    return value


def grouped_sql(aggregation: Aggregation, source: str, keys: list[tuple[str, str]], window: tuple[str, str]) -> str:
    """SELECT <key aliases>, <aggregate> AS value FROM source GROUP BY the keys. `keys` are (SQL expression over
    the source's columns series/ts/value/…, alias); `window` is SQL for the [start, end] ms that rate
    extrapolates to (it may use the aliases). Without keys: one row, NULL (count: 0) over no points."""
    selected = [f"{expression} AS {quoted(alias)}" for expression, alias in keys]
    aliases = [quoted(alias) for _, alias in keys]
    group = f" GROUP BY {', '.join(aliases)}" if keys else ""
    if not aggregation.is_rate:
        return f"SELECT {', '.join([*selected, f'{aggregation.expression} AS value'])} FROM {source} g{group}"
    partition = ", ".join(["series", *(expression for expression, _ in keys)])
    stats = f"""
        SELECT {', '.join(['series AS "__series"', *selected])}, count(*) AS n,
               min(ts) AS t0, max(ts) AS t1, arg_min(value, ts) AS v0,
               sum(CASE WHEN delta < 0 THEN value ELSE coalesce(delta, 0) END) AS inc
        FROM (SELECT *, value - lag(value) OVER (PARTITION BY {partition} ORDER BY ts) AS delta FROM {source} g) d
        GROUP BY ALL"""
    rates = f"SELECT *, {_extrapolated_rate(*window)} AS rate FROM ({stats}) s"
    return f"SELECT {', '.join([*aliases, 'sum(rate) AS value'])} FROM ({rates}) r{group}"


def quoted(identifier: str) -> str:
    """A SQL identifier in double quotes (tag keys become column names)."""
    return '"' + identifier.replace('"', '""') + '"'


def _extrapolated_rate(window_start: str, window_end: str) -> str:
    """Prometheus' extrapolatedRate over per-series stats n, t0, t1 (ms), v0 (first value), inc (increase,
    resets added back), for the window [start, end] ms taken as Prometheus' range (start, end]: end - start long
    (a point at start itself still counts, at distance 0)."""
    sampled = "((t1 - t0) / 1000.0)"
    average = f"({sampled} / (n - 1))"
    to_zero = f"CASE WHEN inc > 0 AND v0 >= 0 THEN {sampled} * v0 / inc ELSE 'inf'::DOUBLE END"
    to_start = f"least((t0 - {window_start}) / 1000.0, {to_zero})"
    to_end = f"(({window_end} - t1) / 1000.0)"
    extrapolated = (f"{sampled} + CASE WHEN {to_start} < 1.1 * {average} THEN {to_start} ELSE {average} / 2 END"
                    f" + CASE WHEN {to_end} < 1.1 * {average} THEN {to_end} ELSE {average} / 2 END")
    seconds = f"(({window_end} - {window_start}) / 1000.0)"
    return f"CASE WHEN n >= 2 THEN inc * ({extrapolated}) / {sampled} / {seconds} END"
