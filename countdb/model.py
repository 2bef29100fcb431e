"""The data model: series keys, millisecond timestamps, UTC months and the Arrow schema of a point.

Invariant: a series key is canonical (tags sorted, Prometheus-style quoting), so one series has one key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc

Millis = int
"""Milliseconds since the Unix epoch, UTC."""

MAX_TIMESTAMP_MS: Millis = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant a YearMonth can name
MAX_SERIES_KEY_BYTES = 1024
MAX_TAGS = 64

POINT_SCHEMA = pa.schema(
    [
        pa.field("series", pa.string(), nullable=False),
        pa.field("ts", pa.int64(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
    ]
)
"""Every buffered, logged and stored point has these columns; `seq` orders writes (last write wins)."""

@dataclass(frozen=True)
class RemotePoints:
    """Stamped points (series, ts, value, seq) other cluster nodes hold, for one query, and how they meet this
    node's own points (`mode`): "merge", copies of series this node holds too (the last write wins); "add",
    series this node does not hold (each point once, nothing to merge); "only", this node holds none of the
    query's series, so these points are the whole answer."""

    table: pa.Table
    mode: str


def last_writes(copies: pa.Table, keys: list[str]) -> pa.Table:
    """One row per value of the `keys` columns (sortable types): the copy with the highest `seq`, in key order; on
    equal stamps the copy that comes first in `copies` (the sort is stable)."""
    if copies.num_rows < 2:
        return copies
    ordered = copies.take(pc.sort_indices(copies, [*((key, "ascending") for key in keys), ("seq", "descending")]))
    first = pc.not_equal(ordered[keys[0]][1:], ordered[keys[0]][:-1])
    for key in keys[1:]:
        first = pc.or_(first, pc.not_equal(ordered[key][1:], ordered[key][:-1]))
    return ordered.filter(pa.concat_arrays([pa.array([True]), *first.chunks]))


TAG_KEY_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.:/\-]*\Z")
_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_.:/\-]*)="((?:[^"\\]|\\.)*)"(?:,|\Z)')
_UNESCAPE = re.compile(r"\\(.)")


def used_keys_only(keys: pa.DictionaryArray) -> pa.DictionaryArray:
    """`keys` with a dictionary of only the entries its rows use (a slice keeps its whole parent's dictionary)."""
    used = pc.unique(keys.indices).drop_null()
    return pa.DictionaryArray.from_arrays(pc.index_in(keys.indices, value_set=used), keys.dictionary.take(used))


def series_key(name: str, tags: dict[str, str] | None = None) -> str:
    """Canonical key: the bare name without tags, else `name{k="v",…}` with keys sorted."""
    if not tags:
        return name
    body = ",".join(f'{k}="{str(v).translate(_ESCAPES)}"' for k, v in sorted(tags.items()))
    return f"{name}{{{body}}}"


def parse_series_key(key: str) -> tuple[str, dict[str, str]]:
    """Split a canonical key back into its name and tags. A key with no well-formed tag block is all name."""
    brace = key.find("{")
    if brace <= 0 or not key.endswith("}"):
        return key, {}
    body = key[brace + 1 : -1]
    tags: dict[str, str] = {}
    pos = 0
    while pos < len(body):
        match = _LABEL.match(body, pos)
        if match is None:
            return key, {}
        tags[match.group(1)] = _UNESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), match.group(2))
        pos = match.end()
    return key[:brace], tags


@dataclass(frozen=True, order=True)
class YearMonth:
    """A UTC calendar month: the unit of partitioning under time_blocks/."""

    year: int
    month: int

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @classmethod
    def parse(cls, text: str) -> "YearMonth":
        year, month = text.split("-")
        if len(year) != 4 or len(month) != 2 or not 1 <= int(month) <= 12:
            raise ValueError(f"not a YYYY-MM month: {text!r}")
        return cls(int(year), int(month))

    def start_ms(self) -> Millis:
        return int(datetime(self.year, self.month, 1, tzinfo=timezone.utc).timestamp() * 1000)

    def end_ms(self) -> Millis:
        """The last millisecond of the month (inclusive)."""
        return self.next().start_ms() - 1 if self.year < 9999 or self.month < 12 else MAX_TIMESTAMP_MS

    def next(self) -> "YearMonth":
        return YearMonth(self.year + (self.month == 12), self.month % 12 + 1)


def month_of(ts_ms: Millis) -> YearMonth:
    """The UTC month a millisecond timestamp falls in."""
    moment = datetime.fromtimestamp(ts_ms // 1000, tz=timezone.utc)
    return YearMonth(moment.year, moment.month)


def months_between(start_ms: Millis, end_ms: Millis) -> list[YearMonth]:
    """Every month touched by the inclusive range [start_ms, end_ms], in order."""
    if start_ms > end_ms or start_ms > MAX_TIMESTAMP_MS or end_ms < 0:
        return []
    months, current, last = [], month_of(max(start_ms, 0)), month_of(min(end_ms, MAX_TIMESTAMP_MS))
    while current <= last:
        months.append(current)
        if current == YearMonth(9999, 12):
            break
        current = current.next()
    return months
