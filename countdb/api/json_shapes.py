"""JSON layouts of the query endpoints, each rendering a stream of flat Arrow rows as JSON chunks.

Invariant: a layout never holds more than one batch of rows; the flat rows (what CSV, NDJSON, Arrow and
Parquet answer) carry the same facts, so only the nesting differs between formats.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from countdb.api.results import JsonShape, dumps, python_rows
from countdb.model import parse_series_key


def json_series(batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    """Rows (series, timestamp, value) sorted by series → `{"series": [{"key", "name", "tags",
    "points": [{"timestamp", "value"}, …]}, …]}`; a series' points may span batches."""
    yield b'{"series":['
    current = None
    for batch in batches:
        if not batch.num_rows:
            continue
        runs = pc.run_end_encode(batch.column("series"))
        ts, values = batch.column("timestamp").to_pylist(), batch.column("value").to_pylist()
        start = 0
        for key, end in zip(runs.values.to_pylist(), runs.run_ends.to_pylist()):
            points = dumps([{"timestamp": t, "value": v} for t, v in zip(ts[start:end], values[start:end])])[1:-1]
            if key == current:
                yield b"," + points
            else:
                name, tags = parse_series_key(key)
                opening = dumps({"key": key, "name": name, "tags": tags})[:-1] + b',"points":['
                yield (b"]}," if current is not None else b"") + opening + points
                current = key
            start = end
    yield b"]}]}" if current is not None else b"]}"


def json_groups(batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    """Rows (<group tag columns>…, value) → `{"groups": [{"tags": {tag: value, …}, "value": …}, …]}`; a tag
    a group's series lack is left out of its tags."""
    yield b'{"groups":['
    separator = b""
    for batch in batches:
        if batch.num_rows:
            groups = [{"tags": {k: v for k, v in row.items() if k != "value" and v is not None},
                       "value": row["value"]} for row in python_rows(batch)]
            yield separator + dumps(groups)[1:-1]
            separator = b","
    yield b"]}"


def json_listing(name: str, rename: dict[str, str] | None = None) -> JsonShape:
    """Rows → `{name: [{column: value, …}, …]}`, columns renamed by `rename`."""
    def shape(batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
        yield b'{"' + name.encode() + b'":['
        separator = b""
        for batch in batches:
            if batch.num_rows:
                if rename:
                    batch = batch.rename_columns([rename.get(c, c) for c in batch.schema.names])
                yield separator + dumps(python_rows(batch))[1:-1]
                separator = b","
        yield b"]}"
    return shape


def json_values(name: str) -> JsonShape:
    """A one-column result → `{name: [value, …]}`."""
    def shape(batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
        yield b'{"' + name.encode() + b'":['
        separator = b""
        for batch in batches:
            if batch.num_rows:
                yield separator + dumps(batch.column(0).to_pylist())[1:-1]
                separator = b","
        yield b"]}"
    return shape
