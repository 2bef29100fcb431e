"""Reading a selector's samples once for a whole query: every matched series' points in the time span the
query needs, through the existing query engine, as numpy columns.

Invariant: samples of series i are ts[starts[i]:starts[i + 1]] (time order); labels are the stored labels,
`__name__` included, exactly as remote write stored them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from countdb.model import parse_series_key
from countdb.query.engine import QueryEngine
from countdb.query.selection import query_range_matching
from countdb.query.selectors import NAME_TAG, Matcher, Selector


@dataclass
class Samples:
    labels: list[dict[str, str]]
    starts: np.ndarray  # (series + 1,) int64
    ts: np.ndarray  # int64 ms
    values: np.ndarray  # float64

    def series(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.starts[index], self.starts[index + 1]
        return self.ts[lo:hi], self.values[lo:hi]


def fetch_samples(engine: QueryEngine, matchers: tuple[Matcher, ...], start_ms: int, end_ms: int,
                  max_series: int) -> Samples:
    """The samples in [start_ms, end_ms] of every series `matchers` select (LimitExceeded past max_series)."""
    text = "{" + ",".join(f"{m.key}{m.op}{m.value!r}" for m in matchers) + "}"
    rows = query_range_matching(engine, Selector(text, matchers), max(start_ms, 0), max(end_ms, 0), None,
                                max_series)
    table = rows.read_all() if isinstance(rows, pa.RecordBatchReader) else rows
    if table.num_rows == 0:
        return Samples([], np.zeros(1, np.int64), np.empty(0, np.int64), np.empty(0))
    runs = pc.run_end_encode(table["series"].combine_chunks())
    ends = runs.run_ends.to_numpy().astype(np.int64)
    labels = []
    for key in runs.values.to_pylist():
        name, tags = parse_series_key(key)
        labels.append({NAME_TAG: name, **tags})
    return Samples(labels, np.concatenate([[0], ends]), table["timestamp"].to_numpy(),
                   table["value"].to_numpy())
