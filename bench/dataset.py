"""Deterministic TSBS-like "cpu-only" data, and the shipped real exporter recording, as flat point arrays.

Invariant: the same (scale, seed) always yields bit-identical points, and every wire format in bench/wire.py
encodes exactly these points, so protocols, storage and queries are measured on one data set.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from countdb.model import parse_series_key, series_key

MEASUREMENT = "cpu"
FIELDS = ("usage_user", "usage_system", "usage_idle", "usage_nice", "usage_iowait",
          "usage_irq", "usage_softirq", "usage_steal", "usage_guest", "usage_guest_nice")
INTERVAL_MS = 10_000
MONTH_BOUNDARY_MS = 1_738_368_000_000  # 2025-02-01T00:00:00Z: every scale straddles it, so two month folders exist
EXPORTER_DATA = Path(__file__).parent / "data" / "node_exporter.parquet"
# What agents send (issue 17): full-precision floats are the worst case, nothing compresses them; gauges are
# mostly rounded (two decimals is common), counters are integers, and many series repeat their last value.
VALUE_SHAPES = ("full_precision", "two_decimals", "integer_counters", "repeated")
REPEAT_RUN_MEAN = 10  # samples a `repeated` value holds on average

_REGIONS = ("us-east-1", "us-west-1", "us-west-2", "eu-west-1", "eu-central-1",
            "ap-southeast-1", "ap-southeast-2", "ap-northeast-1", "sa-east-1")
_OS = ("Ubuntu16.10", "Ubuntu16.04LTS", "Ubuntu15.10")
_TEAMS = ("SF", "NYC", "LON", "CHI")
_ENVIRONMENTS = ("production", "staging", "test")
# Per field: typical level (%), random-walk step (%), diurnal amplitude (%), share of load bursts.
_SHAPES = {
    "usage_user": (28.0, 0.60, 12.0, 0.55), "usage_system": (9.0, 0.30, 4.0, 0.20),
    "usage_nice": (1.5, 0.05, 0.3, 0.0), "usage_iowait": (3.0, 0.25, 1.0, 0.20),
    "usage_irq": (0.4, 0.02, 0.1, 0.0), "usage_softirq": (1.0, 0.05, 0.4, 0.05),
    "usage_steal": (0.6, 0.05, 0.0, 0.0), "usage_guest": (0.8, 0.05, 0.0, 0.0),
    "usage_guest_nice": (0.2, 0.01, 0.0, 0.0),
}


@dataclass(frozen=True)
class Scale:
    """A data-set size; points = hosts * len(FIELDS) * points_per_series."""

    name: str
    hosts: int
    points_per_series: int
    wrk_seconds: float
    repeats: int
    query_samples: int
    fresh_starts: int = 5  # single-insert runs, each from a fresh node start
    catch_up_seconds: float = 120.0  # the second query stage, after a restart on the flushed blocks (issue 17)

    @property
    def series(self) -> int:
        return self.hosts * len(FIELDS)

    @property
    def points(self) -> int:
        return self.series * self.points_per_series


SCALES = {
    # tiny: the smoke test's scale (~2.8 h of data), runs end to end in well under a minute.
    "tiny": Scale("tiny", hosts=10, points_per_series=1_000, wrk_seconds=2, repeats=2, query_samples=15,
                  fresh_starts=2, catch_up_seconds=3),
    "small": Scale("small", hosts=10, points_per_series=10_000, wrk_seconds=5, repeats=3, query_samples=40),
    "medium": Scale("medium", hosts=100, points_per_series=10_000, wrk_seconds=10, repeats=3, query_samples=60),
    # NOTE: 100 M points of 1,000 series at 10 s span 11.6 days, not a month (a month would be 259 M points).
    "large": Scale("large", hosts=100, points_per_series=100_000, wrk_seconds=15, repeats=5, query_samples=100),
}


@dataclass(frozen=True)
class SeriesSet:
    """The distinct series of a data set: canonical key, name and tags, by index."""

    keys: tuple[str, ...]
    names: tuple[str, ...]
    tags: tuple[dict, ...]

    @classmethod
    def from_keys(cls, keys) -> "SeriesSet":
        parsed = [parse_series_key(key) for key in keys]
        return cls(tuple(keys), tuple(name for name, _ in parsed), tuple(tags for _, tags in parsed))


@dataclass(frozen=True)
class Points:
    """Flat points: series index into `series`, timestamp (int64 ms), value (float64), in ingest order."""

    series: SeriesSet
    idx: np.ndarray
    ts: np.ndarray
    value: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def slice(self, start: int, stop: int) -> "Points":
        return Points(self.series, self.idx[start:stop], self.ts[start:stop], self.value[start:stop])


class CpuDataset:
    """N hosts x 10 fields at 10 s; values are generated once, in memory (800 MB at the large scale)."""

    def __init__(self, scale: Scale, seed: int = 42):
        self.scale, self.seed = scale, seed
        span_ms = scale.points_per_series * INTERVAL_MS
        self.start_ms = (MONTH_BOUNDARY_MS - span_ms // 2) // 3_600_000 * 3_600_000
        self.timestamps = self.start_ms + np.arange(scale.points_per_series, dtype=np.int64) * INTERVAL_MS
        self.host_tags = [_host_tags(np.random.default_rng([seed, 0, host]), host) for host in range(scale.hosts)]

    @property
    def end_ms(self) -> int:
        """The last timestamp (inclusive)."""
        return int(self.timestamps[-1])

    @cached_property
    def series(self) -> SeriesSet:
        """Series index = host * 10 + field, the order the line protocol's fields expand to."""
        keys = [series_key(f"{MEASUREMENT}.{field}", tags) for tags in self.host_tags for field in FIELDS]
        return SeriesSet.from_keys(keys)

    @cached_property
    def values(self) -> np.ndarray:
        """float64 array (series, time), each host from its own seeded generator."""
        out = np.empty((self.scale.series, self.scale.points_per_series), dtype=np.float64)
        for host in range(self.scale.hosts):
            rng = np.random.default_rng([self.seed, 1, host])
            out[host * len(FIELDS):(host + 1) * len(FIELDS)] = _host_values(rng, self.timestamps)
        return out

    def points(self, t0: int = 0, t1: int | None = None, shape: str = "full_precision") -> Points:
        """Points of time steps [t0, t1) for every series, time-major (as agents send them), with values of one
        of VALUE_SHAPES."""
        t1 = self.scale.points_per_series if t1 is None else t1
        steps, count = t1 - t0, self.scale.series
        values = self.values if shape == "full_precision" else shaped_values(self.values, shape, self.seed)
        return Points(self.series, np.tile(np.arange(count, dtype=np.int32), steps),
                      np.repeat(self.timestamps[t0:t1], count), values[:, t0:t1].T.reshape(-1))


def shaped_values(values: np.ndarray, shape: str, seed: int) -> np.ndarray:
    """The (series, time) gauges `values` as another kind of metric of VALUE_SHAPES, deterministically:
    `two_decimals` rounds them; `integer_counters` sums them, scaled per series to 1-1,000 per sample, into
    monotonic integer totals (bytes, requests); `repeated` rounds them and holds each value for a random run of
    REPEAT_RUN_MEAN samples on average (states, sizes, slowly changing gauges)."""
    rng = np.random.default_rng([seed, 2])
    if shape == "two_decimals":
        return np.round(values, 2)
    if shape == "integer_counters":
        rates = rng.uniform(0.01, 10.0, (values.shape[0], 1))
        return np.cumsum(np.rint(values * rates), axis=1)
    if shape == "repeated":
        changes = rng.random(values.shape) < 1 / REPEAT_RUN_MEAN
        changes[:, 0] = True
        held = np.maximum.accumulate(np.where(changes, np.arange(values.shape[1]), 0), axis=1)
        return np.take_along_axis(np.round(values, 2), held, axis=1)
    raise ValueError(f"unknown value shape {shape!r}; one of {VALUE_SHAPES}")


def _host_tags(rng: np.random.Generator, host: int) -> dict[str, str]:
    region = _REGIONS[rng.integers(len(_REGIONS))]
    return {
        "hostname": f"host_{host}", "region": region, "datacenter": f"{region}{'abc'[rng.integers(3)]}",
        "rack": str(rng.integers(100)), "os": _OS[rng.integers(len(_OS))], "arch": ("x64", "x86")[rng.integers(2)],
        "team": _TEAMS[rng.integers(len(_TEAMS))], "service": str(rng.integers(20)),
        "service_version": str(rng.integers(2)), "service_environment": _ENVIRONMENTS[rng.integers(3)],
    }


def _host_values(rng: np.random.Generator, timestamps: np.ndarray) -> np.ndarray:
    """One host's 10 fields: level + diurnal cycle + detrended random walk + load bursts; idle is the rest."""
    steps = len(timestamps)
    load = rng.uniform(0.4, 1.6)
    day = 2 * np.pi * (timestamps % 86_400_000) / 86_400_000 + rng.uniform(0, 2 * np.pi)
    bursts = _bursts(rng, steps)
    rows = {}
    for field, (level, step, amplitude, burst_share) in _SHAPES.items():
        walk = np.cumsum(rng.normal(0.0, step, steps))
        wander = walk - _moving_mean(walk, 360)  # bounded wander around the level, about an hour of memory
        row = level * load + amplitude * load * np.sin(day) + wander + burst_share * bursts
        rows[field] = np.clip(row, 0.0, 100.0)
    busy = sum(rows.values())
    rows["usage_idle"] = np.clip(100.0 - busy + rng.normal(0.0, 0.3, steps), 0.0, 100.0)
    return np.stack([rows[field] for field in FIELDS])


def _bursts(rng: np.random.Generator, steps: int) -> np.ndarray:
    """Box-shaped load spikes (deploys, batch jobs): about one per 6 hours, 5-30 minutes, 10-50 % high."""
    count = rng.poisson(max(1.0, steps / 2160))
    edges = np.zeros(steps + 1)
    starts = rng.integers(0, steps, count)
    heights = rng.uniform(10, 50, count)
    np.add.at(edges, starts, heights)
    np.add.at(edges, np.minimum(starts + rng.integers(30, 180, count), steps), -heights)
    return np.cumsum(edges[:-1])


def _moving_mean(x: np.ndarray, window: int) -> np.ndarray:
    sums = np.cumsum(np.concatenate(([0.0], x)))
    lo = np.maximum(np.arange(1, len(x) + 1) - window, 0)
    return (sums[1:] - sums[lo]) / (np.arange(1, len(x) + 1) - lo)


def load_exporter_points(path: Path = EXPORTER_DATA) -> Points:
    """The shipped node-exporter recording in scrape order; non-finite samples are dropped (JSON can't carry them)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    table = table.filter(pc.is_finite(table["value"])).sort_by([("ts", "ascending"), ("series", "ascending")])
    encoded = table["series"].combine_chunks().dictionary_encode()
    series = SeriesSet.from_keys(encoded.dictionary.to_pylist())
    return Points(series, encoded.indices.to_numpy().astype(np.int32),
                  table["ts"].to_numpy(), table["value"].to_numpy())
