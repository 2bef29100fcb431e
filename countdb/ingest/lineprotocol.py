"""InfluxDB line protocol → Count points (pure; no I/O). Spec: InfluxDB 3 line protocol reference.

Invariant: a line yields all of its points or none; a bad line becomes a LineError and never stops the
other lines. Only the whole-body argument `precision` can raise (InvalidInput).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from countdb.errors import InvalidInput
from countdb.model import MAX_SERIES_KEY_BYTES, MAX_TAGS, MAX_TIMESTAMP_MS, TAG_KEY_PATTERN, series_key

_I64_MIN, _I64_MAX, _U64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
_INF = float("inf")
_BOOLS = {"t": 1.0, "T": 1.0, "true": 1.0, "True": 1.0, "TRUE": 1.0,
          "f": 0.0, "F": 0.0, "false": 0.0, "False": 0.0, "FALSE": 0.0}
_VALUE = (r"(?:-?[0-9]+i|[0-9]+u|-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"
          r"|t|T|true|True|TRUE|f|F|false|False|FALSE)")
_VALUE_RE = re.compile(_VALUE)
# Fast path only: a field set with no escapes and no strings, validated in one C-level match.
_PLAIN_FIELDS_RE = re.compile(rf"[^,= ]+={_VALUE}(?:,[^,= ]+={_VALUE})*")
# Slow path: element tokens. `\\.` takes any escaped pair; unknown escapes are unescaped later as literals.
_MEASUREMENT_RE = re.compile(r"(?:[^,\\ ]|\\.)+", re.S)
_KEY_RE = re.compile(r"(?:[^,=\\ ]|\\.)+", re.S)
_TAG_VALUE_RE = _MEASUREMENT_RE
_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BARE_RE = re.compile(r"[^, ]*")
_TIMESTAMP_RE = re.compile(r"-?[0-9]{1,19}")
_SPACES_RE = re.compile(" *")
_NAME_ESCAPE_RE = re.compile(r"\\([, \\])")
_KEY_ESCAPE_RE = re.compile(r"\\([, =\\])")

_MAX_CACHED_PREFIXES = 8192
_MAX_CACHED_FIELDS = 256

_PRECISIONS = {
    "v1": {"": "ns", "ns": "ns", "n": "ns", "u": "us", "µ": "us", "us": "us", "ms": "ms", "s": "s",
           "m": "m", "h": "h"},
    "v2": {"": "ns", "ns": "ns", "us": "us", "ms": "ms", "s": "s"},
    "v3": {"": "auto", "auto": "auto", "nanosecond": "ns", "microsecond": "us", "millisecond": "ms",
           "second": "s", "ns": "ns", "us": "us", "ms": "ms", "s": "s"},
}


def _auto_to_ms(ts: int) -> int:
    """InfluxDB 3 `precision=auto`: < 5e9 is seconds, < 5e12 ms, < 5e15 µs, anything larger ns."""
    if ts < 5_000_000_000:
        return ts * 1000
    if ts < 5_000_000_000_000:
        return ts
    if ts < 5_000_000_000_000_000:
        return ts // 1000
    return ts // 1_000_000


_TO_MS: dict[str, Callable[[int], int]] = {
    "ns": lambda ts: ts // 1_000_000, "us": lambda ts: ts // 1000, "ms": lambda ts: ts,
    "s": lambda ts: ts * 1000, "m": lambda ts: ts * 60_000, "h": lambda ts: ts * 3_600_000,
    "auto": _auto_to_ms,
}


@dataclass(frozen=True)
class LineError:
    """One rejected line: `line_number` is 1-based over every line of the body, blank and comment lines too."""

    line_number: int
    original_line: str
    message: str


@dataclass
class ParsedLines:
    """Parallel lists, one entry per point (one point per numeric or boolean field)."""

    series: list[str] = field(default_factory=list)
    ts_ms: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    string_fields: int = 0
    lines: int = 0


class _BadLineError(Exception):
    """Internal: the current line is rejected with this message."""


def normalize_precision(text: str, api: str) -> str:
    """Map an endpoint's `precision` parameter to ns|us|ms|s|m|h|auto; "" gives the endpoint's default.

    `api` is "v1" (/write: ns n u µ ms s m h), "v2" (/api/v2/write: ns us ms s) or "v3" (/api/v3/write_lp:
    auto nanosecond microsecond millisecond second, plus the short forms). Raises InvalidInput(field="precision").
    """
    accepted = _PRECISIONS.get(api, {})
    if text not in accepted:
        choices = ", ".join(name for name in accepted if name)
        raise InvalidInput(f"unknown precision {text!r} for the {api} write API (use one of: {choices})",
                           field="precision")
    return accepted[text]


def parse_lines(body: bytes, precision: str, now_ns: int) -> ParsedLines:
    """Parse a line-protocol body into points with integer millisecond timestamps (floor division).

    `precision` is ns|us|ms|s|m|h|auto (see normalize_precision); a line without a timestamp gets `now_ns`.
    A field `value` names the series `measurement`, any other field `measurement.field`; string fields are
    counted in `string_fields` and not stored. A line that is not UTF-8 is one LineError. Raises only
    InvalidInput(field="precision") for an unknown precision.
    """
    to_ms = _TO_MS.get(precision)
    if to_ms is None:
        raise InvalidInput(f"unknown precision {precision!r}", field="precision")
    lines, undecodable = _decode_lines(body)
    out = ParsedLines()
    now_ms = now_ns // 1_000_000
    # NOTE: '\\' and '"' are ASCII, so they cannot hide inside a multi-byte UTF-8 sequence.
    plain_body = b"\\" not in body and b'"' not in body
    for number, line in enumerate(lines, 1):
        text = line
        if line[:1] in _SKIP_FIRST:
            text = line.lstrip(" \t")
            if not text or text[0] == "#":
                continue
        out.lines += 1
        if undecodable and number in undecodable:
            out.errors.append(LineError(number, line, "line is not valid UTF-8"))
            continue
        point = None
        if plain_body or ("\\" not in text and '"' not in text):
            point = _parse_plain(text, to_ms, now_ms)
        if point is None:
            point = _parse_escaped(text, to_ms, now_ms, out, number, line)
            if point is None:
                continue
        keys, values, ts_ms = point
        out.series += keys
        out.values += values
        out.ts_ms += [ts_ms] * len(keys)
    return out


_SKIP_FIRST = frozenset(("", "#", " ", "\t"))


def _decode_lines(body: bytes) -> tuple[list[str], set[int]]:
    """Split into lines (LF or CRLF). A body that is not UTF-8 is decoded line by line; bad line numbers return.

    NOTE: a newline always ends a line, even inside a quoted string: the InfluxDB docs say newlines are not
    supported in field values, and this way one stray quote cannot swallow the rest of the body.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        lines, undecodable = [], set()
        for number, raw in enumerate(body.split(b"\n"), 1):
            try:
                lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                lines.append(raw.decode("utf-8", "replace"))
                undecodable.add(number)
        return [line[:-1] if line.endswith("\r") else line for line in lines], undecodable
    if "\r" in text:
        text = text.replace("\r\n", "\n").removesuffix("\r")
    return text.split("\n"), set()


# ---------------------------------------------------------------------------------------------------------
# Fast path: a line without backslashes or quotes. It never reports errors: on any doubt it returns None and
# the escaped path parses the line again and says precisely what is wrong.

_PREFIXES: dict[str, _Series | None] = {}


def _parse_plain(line: str, to_ms: Callable[[int], int], now_ms: int):
    """(series keys, values, ts_ms) for a valid plain line, else None. Hot loop: keep it lean."""
    parts = line.split(" ")
    if len(parts) == 3:
        prefix, fields, ts_text = parts
        if not (ts_text.isdigit() and ts_text.isascii() and len(ts_text) < 20):
            return None
        ts_raw = int(ts_text)
        if ts_raw > _I64_MAX:
            return None
        ts_ms = to_ms(ts_raw)
    elif len(parts) == 2:
        prefix, fields = parts
        ts_ms = now_ms
    else:
        return None
    if not 0 <= ts_ms <= MAX_TIMESTAMP_MS or _PLAIN_FIELDS_RE.fullmatch(fields) is None:
        return None
    entry = _PREFIXES.get(prefix, False)
    if entry is False:
        entry = _cache_prefix(prefix)
    if entry is None:
        return None
    keys_by_field = entry.keys_by_field
    keys, values = [], []
    for item in fields.split(","):
        name, _, raw = item.partition("=")
        key = keys_by_field.get(name) or entry.cached_key(name)
        if key is None:
            return None
        last = raw[-1]
        if last == "i" or last == "u":
            if len(raw) > 19:
                return None  # near the 64-bit limits: the escaped path checks the range exactly
            value = float(raw[:-1])
        elif last <= "9":
            value = float(raw)
            if value == _INF or value == -_INF:
                return None
        else:
            value = _BOOLS[raw]
        keys.append(key)
        values.append(value)
    if len(keys) > 1 and len(set(keys)) != len(keys):
        return None
    return keys, values, ts_ms


def _cache_prefix(prefix: str) -> _Series | None:
    """Resolve `measurement,k=v,…` (no escapes) once; None (also cached) if the escaped path must explain it."""
    measurement, *pairs = prefix.split(",")
    try:
        entry = _Series(measurement, [pair.partition("=")[::2] for pair in pairs])
    except _BadLineError:
        entry = None
    if len(_PREFIXES) >= _MAX_CACHED_PREFIXES:
        _PREFIXES.clear()  # NOTE: crude but bounded; a cold cache only costs one re-resolution per prefix
    _PREFIXES[prefix] = entry
    return entry


# ---------------------------------------------------------------------------------------------------------
# Escaped path: the whole grammar (escapes, quoted strings, repeated spaces), with precise error messages.


def _parse_escaped(line: str, to_ms: Callable[[int], int], now_ms: int, out: ParsedLines, number: int,
                   original: str):
    """(series keys, values, ts_ms) for a valid line; otherwise records a LineError and returns None."""
    try:
        measurement, tag_pairs, fields, ts_text = _split_line(line)
        series = _Series(measurement, tag_pairs)
        ts_ms = _timestamp_ms(ts_text, to_ms, now_ms)
        keys, values, strings, seen = [], [], 0, set()
        for name, raw in fields:
            if name in seen:
                raise _BadLineError(f"duplicate field {name!r}")
            seen.add(name)
            if raw.startswith('"'):
                strings += 1
                continue
            values.append(_field_value(name, raw))
            keys.append(series.key(name))
    except _BadLineError as error:
        out.errors.append(LineError(number, original, str(error)))
        return None
    out.string_fields += strings
    return keys, values, ts_ms


def _split_line(line: str) -> tuple[str, list[tuple[str, str]], list[tuple[str, str]], str | None]:
    """Tokenize into (measurement, [(tag key, tag value)], [(field key, raw value)], timestamp text), unescaped."""
    match = _MEASUREMENT_RE.match(line)
    if match is None:
        raise _BadLineError("missing measurement" + _found(line, 0))
    measurement, pos, tags = _NAME_ESCAPE_RE.sub(r"\1", match.group()), match.end(), []
    while line.startswith(",", pos):
        key, pos = _token(_KEY_RE, line, pos + 1, "tag key")
        if not line.startswith("=", pos):
            raise _BadLineError(f"tag {key!r} has no '='" + _found(line, pos))
        value, pos = _token(_TAG_VALUE_RE, line, pos + 1, f"value of tag {key!r}")
        tags.append((key, value))
    if pos < len(line) and line[pos] != " ":
        raise _BadLineError("expected ',' or ' ' after the series" + _found(line, pos))
    pos = _skip_spaces(line, pos)
    if pos >= len(line):
        raise _BadLineError("missing field set")
    fields, pos = _split_fields(line, pos)
    if pos >= len(line):
        return measurement, tags, fields, None
    match = _TIMESTAMP_RE.match(line, pos)
    token = line[pos:].split(" ")[0]
    if match is None or match.end() != pos + len(token):
        raise _BadLineError(f"timestamp {token!r} is not an integer of at most 19 digits")
    if _skip_spaces(line, match.end()) < len(line):
        raise _BadLineError("unexpected text after the timestamp" + _found(line, _skip_spaces(line, match.end())))
    return measurement, tags, fields, match.group()


def _split_fields(line: str, pos: int) -> tuple[list[tuple[str, str]], int]:
    """Read `k=v,k=v` from pos; return the raw fields and the position after the trailing spaces."""
    fields = []
    while True:
        name, pos = _token(_KEY_RE, line, pos, "field key")
        if not line.startswith("=", pos):
            raise _BadLineError(f"field {name!r} has no '='" + _found(line, pos))
        pos += 1
        match = (_STRING_RE if line.startswith('"', pos) else _BARE_RE).match(line, pos)
        if match is None:
            raise _BadLineError(f"string field {name!r} has no closing quote")
        fields.append((name, match.group()))
        pos = match.end()
        if not line.startswith(",", pos):
            break
        pos += 1
    if pos < len(line) and line[pos] != " ":
        raise _BadLineError(f"field {name!r}: expected ',' or ' ' after the value" + _found(line, pos))
    return fields, _skip_spaces(line, pos)


def _token(pattern: re.Pattern, line: str, pos: int, what: str) -> tuple[str, int]:
    match = pattern.match(line, pos)
    if match is None:
        raise _BadLineError(f"missing {what}" + _found(line, pos))
    return _KEY_ESCAPE_RE.sub(r"\1", match.group()), match.end()


def _skip_spaces(line: str, pos: int) -> int:
    return _SPACES_RE.match(line, pos).end()


def _found(line: str, pos: int) -> str:
    if pos >= len(line):
        return " at end of line"
    if line[pos] == "\\":
        return f" at column {pos + 1} (a lone trailing backslash must be written as \\\\)"
    return f" at column {pos + 1} (found {line[pos]!r})"


def _field_value(name: str, raw: str) -> float:
    """The stored float for an unquoted field value; raises _BadLineError with the field named."""
    if _VALUE_RE.fullmatch(raw) is None:
        raise _BadLineError(f"field {name!r} has invalid value {raw!r} "
                            '(expected a float, an integer like 1i, an unsigned like 1u, a boolean or a "string")')
    if raw in _BOOLS:
        return _BOOLS[raw]
    if raw[-1] == "i" or raw[-1] == "u":
        # NOTE: the length test comes first: int() refuses strings of over 4300 digits with a ValueError.
        number = int(raw[:-1]) if len(raw) <= 22 else _U64_MAX + 1
        low, high = (_I64_MIN, _I64_MAX) if raw[-1] == "i" else (0, _U64_MAX)
        if not low <= number <= high:
            raise _BadLineError(f"field {name!r}: {raw} is out of the 64-bit range")
        return float(number)
    value = float(raw)
    if value == _INF or value == -_INF:
        raise _BadLineError(f"field {name!r}: {raw} is not a finite float")
    return value


def _timestamp_ms(text: str | None, to_ms: Callable[[int], int], now_ms: int) -> int:
    if text is None:
        ts_ms = now_ms
    else:
        raw = int(text)
        if not _I64_MIN <= raw <= _I64_MAX:
            raise _BadLineError(f"timestamp {text} is out of the signed 64-bit range")
        ts_ms = to_ms(raw)
    if not 0 <= ts_ms <= MAX_TIMESTAMP_MS:
        raise _BadLineError(f"timestamp {text or 'now'} is {ts_ms} ms, outside 0..{MAX_TIMESTAMP_MS}")
    return ts_ms


class _Series:
    """A validated measurement and tag set; makes the series key of each field, memoized for the fast path."""

    __slots__ = ("measurement", "tag_suffix", "tag_suffix_bytes", "keys_by_field")

    def __init__(self, measurement: str, tag_pairs: list[tuple[str, str]]):
        tags = _validate_series(measurement, tag_pairs)
        # series_key(name, tags) is name + a suffix made from the tags alone; computing the suffix once per
        # series instead of once per field is what makes a cold prefix cheap (tests pin the equality).
        self.measurement = measurement
        self.tag_suffix = series_key(measurement, tags)[len(measurement):]
        self.tag_suffix_bytes = len(self.tag_suffix.encode("utf-8"))
        self.keys_by_field: dict[str, str] = {}

    def key(self, field_name: str) -> str:
        """series key for one field: `measurement` for a field called value, else `measurement.field`."""
        if "{" in field_name:
            raise _BadLineError(f"field {field_name!r} contains '{{', which would make the series key ambiguous")
        name = self.measurement if field_name == "value" else f"{self.measurement}.{field_name}"
        size = len(name.encode("utf-8")) + self.tag_suffix_bytes
        if size > MAX_SERIES_KEY_BYTES:
            raise _BadLineError(f"series key for field {field_name!r} is {size} bytes, over the limit of "
                                f"{MAX_SERIES_KEY_BYTES}")
        return name + self.tag_suffix

    def cached_key(self, field_name: str) -> str | None:
        """key() memoized (bounded); None where key() would raise, so the fast path can hand over."""
        try:
            key = self.key(field_name)
        except _BadLineError:
            return None
        if len(self.keys_by_field) < _MAX_CACHED_FIELDS:
            self.keys_by_field[field_name] = key
        return key


def _validate_series(measurement: str, tag_pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The tags as a dict, after the checks the series key needs; raises _BadLineError."""
    if not measurement:
        raise _BadLineError("missing measurement")
    if "{" in measurement:
        raise _BadLineError(f"measurement {measurement!r} contains '{{', which would make the series key ambiguous")
    if len(tag_pairs) > MAX_TAGS:
        raise _BadLineError(f"{len(tag_pairs)} tags, more than the limit of {MAX_TAGS}")
    tags: dict[str, str] = {}
    for key, value in tag_pairs:
        if TAG_KEY_PATTERN.match(key) is None:
            raise _BadLineError(f"tag key {key!r} is not allowed (it must match {TAG_KEY_PATTERN.pattern[:-2]})")
        if not value:
            raise _BadLineError(f"tag {key!r} has an empty value (omit the tag instead)")
        if key in tags:
            raise _BadLineError(f"duplicate tag {key!r}")
        tags[key] = value
    return tags
