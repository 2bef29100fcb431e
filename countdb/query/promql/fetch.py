"""Reading a selector's samples once for a whole query: every matched series' points in the time span the
query needs, through the existing query engine, as numpy columns.

Invariant: samples of series i are ts[starts[i]:starts[i + 1]] (time order); labels are the stored labels,
`__name__` included, exactly as remote write stored them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa

from countdb.model import RemotePoints
from countdb.query.discovery import match_series
from countdb.query.engine import QueryEngine
from countdb.query.execute import select_visible
from countdb.query.selectors import NAME_TAG, Matcher, Selector, selector_text


@dataclass
class Samples:
    labels: list[dict[str, str]]
    starts: np.ndarray  # (series + 1,) int64
    ts: np.ndarray  # int64 ms
    values: np.ndarray  # float64

    def series(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.starts[index], self.starts[index + 1]
        return self.ts[lo:hi], self.values[lo:hi]


RemoteFor = Callable[[str, int, int], "RemotePoints | None"]
"""Other cluster nodes' points of the series a selector (text) matches in [start, end]: Reads.selection_points."""


def fetch_samples(engine: QueryEngine, matchers: tuple[Matcher, ...], start_ms: int, end_ms: int,
                  max_series: int, remote_for: RemoteFor | None = None) -> Samples:
    """The samples in [start_ms, end_ms] of every series `matchers` select (LimitExceeded past max_series), with
    the other cluster nodes' (`remote_for`)."""
    start_ms, end_ms = max(start_ms, 0), max(end_ms, 0)
    text = selector_text(matchers)
    snapshot = engine.snapshot(remote_for(text, start_ms, end_ms) if remote_for else None)
    matched = match_series(engine, Selector(text, matchers), start_ms, end_ms, snapshot, max_series)
    empty = Samples([], np.zeros(1, np.int64), np.empty(0, np.int64), np.empty(0))
    if matched.num_rows == 0:
        return empty
    # NOTE: points carry their series' row number in `matched`, not its key: sorting and moving 4-byte integers
    # instead of millions of key strings halves the read (issue 15's 1,000 series x 1 day benchmark).
    numbered = pa.table({"series": matched["series"], "row": pa.array(range(matched.num_rows), pa.int32())})

    def build(points: str) -> str:
        return f"SELECT m.row, p.ts, p.value FROM {points} p JOIN numbered m ON m.series = p.series"

    table = select_visible(engine, start_ms, end_ms, "series IN (SELECT series FROM numbered)", {}, build,
                           snapshot=snapshot, tables={"numbered": numbered}).read_all()
    if table.num_rows == 0:
        return empty
    rows, ts = table["row"].to_numpy(), table["ts"].to_numpy()
    # NOTE: sorted here, not by DuckDB: the points arrive nearly in order (blocks are sorted by series and time),
    # which numpy's stable sort (timsort on runs) exploits and DuckDB's ORDER BY does not.
    order = np.argsort((rows.astype(np.int64) << 43) | (ts - ts.min()), kind="stable")
    rows, ts = rows[order], ts[order]
    counts = np.bincount(rows, minlength=matched.num_rows)
    keep = np.flatnonzero(counts)  # series whose extent overlaps but that have no point in the span stay out
    labels = []
    for name, tags in zip(matched["name"].take(keep).to_pylist(), matched["tags"].take(keep).to_pylist()):
        labels.append({NAME_TAG: name, **dict(tags or ())})
    return Samples(labels, np.concatenate([[0], np.cumsum(counts[keep])]).astype(np.int64),
                   ts, table["value"].to_numpy()[order])
