"""The fast path for big compact JSON-array and NDJSON batches: points become columns by Arrow string kernels,
with no Python object per point. Invariant: it accepts exactly what parse.py's general path accepts, with the
same points, or returns None and leaves the body to that path (which also words every error).
"""

from __future__ import annotations

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from countdb.errors import CountError
from countdb.ingest.validate import keyed_series
from countdb.model import MAX_TIMESTAMP_MS
from countdb.wal.record import WAL_DICTIONARY_SCHEMA

# A point's text between its braces is `<head>"timestamp":<ms>,"value":<number>`. The body is cut into points at
# `},{` (array) or `}\n{` (NDJSON) and each point at the LAST `,"value":` and `"timestamp":`, and every piece is
# checked: the numbers by these patterns, each distinct head by orjson as the start of an object. A cut inside a
# string leaves a piece that fails a check, so a batch that passes is the same JSON text cut at its real commas;
# orjson keeps a key's last occurrence, so the trailing timestamp and value are the ones the general path takes.
# Besides compact text (orjson, JSON.stringify), Python's json.dumps default `, ` and `: ` separators are read.
_MS = "^(?:0|[1-9][0-9]{0,15})$"
_NUMBER = r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?$"
_HEAD_TAIL = b'"timestamp":0,"value":0}'  # completes a head into a point object for checking it

_KEYS: dict[bytes, str] = {}  # head -> canonical key, for every request of this worker
_KEYS_LIMIT = 32_768  # heads of ~300 bytes: about 20 MB per worker at most
_MIN_POINTS = 64  # below this the general path is as fast, and a batch's few heads aren't worth caching


def array_points(body: bytes) -> pa.RecordBatch | None:
    """A body `[{…},{…}]` whose points, timestamps and values are separated as its first timestamp is."""
    if body[:2] != b"[{" or body[-2:] != b"}]":
        return None
    item, key = _separators(body)
    return _columns(body[2:-2], b"}" + item + b"{", item, key)


def line_points(body: bytes) -> pa.RecordBatch | None:
    """NDJSON with one point per line like array_points', `\\n` line ends and no blank lines."""
    if body[-1:] == b"\n":
        body = body[:-1]
    if body[:1] != b"{" or body[-1:] != b"}":
        return None
    return _columns(body[1:-1], b"}\n{", *_separators(body))


def _separators(body: bytes) -> tuple[bytes, bytes]:
    """(between items, after keys) as at the body's first timestamp key: compact, or json.dumps' default."""
    after = body.find(b'"timestamp":') + len(b'"timestamp":')
    return (b", ", b": ") if body[after:after + 1] == b" " else (b",", b":")


def _columns(inner: bytes, point_separator: bytes, item: bytes, key: bytes) -> pa.RecordBatch | None:
    points = pc.split_pattern(pa.array([inner], pa.binary()), point_separator).flatten()
    if len(points) < _MIN_POINTS:
        return None
    rest, values = _cut_last(points, item + b'"value"' + key)
    if rest is None:
        return None
    heads, stamps = _cut_last(rest, b'"timestamp"' + key)
    if heads is None or not _all(pc.match_substring_regex(stamps, _MS)) or not _all(
            pc.match_substring_regex(values, _NUMBER)) or _any(pc.equal(values, b"-0")):
        return None  # `-0` is left to the general path: orjson reads it as the integer 0, a cast as -0.0
    series = _series(heads.dictionary_encode())
    ts = stamps.cast(pa.int64())
    try:
        value = values.cast(pa.float64())
    except pa.ArrowInvalid:  # beyond float64: the general path refuses it
        return None
    if series is None or pc.max(ts).as_py() > MAX_TIMESTAMP_MS or not _all(pc.is_finite(value)):
        return None
    return pa.record_batch([series, ts, value], schema=WAL_DICTIONARY_SCHEMA)


def _cut_last(texts: pa.Array, marker: bytes) -> tuple[pa.Array | None, pa.Array | None]:
    """Each text cut at its last `marker`: (before, after), or (None, None) if one lacks it."""
    parts = pc.split_pattern(texts, marker, max_splits=1, reverse=True)
    if pc.min(pc.list_value_length(parts)).as_py() != 2:
        return None, None
    return pc.list_element(parts, 0), pc.list_element(parts, 1)


def _all(flags: pa.Array) -> bool:
    return pc.all(flags).as_py() is True


def _any(flags: pa.Array) -> bool:
    return pc.any(flags).as_py() is True


def _series(heads: pa.DictionaryArray) -> pa.DictionaryArray | None:
    """Heads -> canonical keys, each distinct head checked once; None if one is not a valid point's head."""
    keys = [_KEYS.get(head) or _key_of(head) for head in heads.dictionary.to_pylist()]
    if None in keys:
        return None
    distinct = dict.fromkeys(keys)
    indices = heads.indices
    if len(distinct) < len(keys):  # two spellings of one series (tag order, spaces): one dictionary entry
        slot = {key: number for number, key in enumerate(distinct)}
        indices = pa.array([slot[key] for key in keys], pa.int32()).take(indices)
    return pa.DictionaryArray.from_arrays(indices.cast(pa.int32()), pa.array(list(distinct), pa.string()))


def _key_of(head: bytes) -> str | None:
    """The key of a valid head (cached), else None. A head with a newline is refused: in NDJSON it would join
    two lines into one point."""
    if b"\n" in head:
        return None
    try:
        point = orjson.loads(b"{" + head + _HEAD_TAIL)
        key = keyed_series(point["series"], point.get("tags"), "")
    except (orjson.JSONDecodeError, KeyError, CountError):
        return None
    if len(_KEYS) >= _KEYS_LIMIT:
        _KEYS.clear()  # bounded; a cold cache only costs one check per head
    _KEYS[head] = key
    return key
