"""Series selectors in Prometheus syntax: `name{key="v",key!="v",key=~"re",key!~"re"}`, parsed into matchers.

Invariant: a parsed Selector has at least one matcher and every matcher names a valid tag key (or __name__);
regexes are fully anchored, and an absent tag matches as the empty string, as in Prometheus.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from countdb.errors import InvalidInput
from countdb.model import TAG_KEY_PATTERN

NAME_TAG = "__name__"
OPERATORS = ("=~", "!~", "!=", "=")  # longest first: "=~" must not be read as "=" then "~"
MAX_SELECTOR_CHARS = 4096

_KEY = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.:/\-]*)\s*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "`": "`"}


@dataclass(frozen=True)
class Matcher:
    key: str  # a tag key, or NAME_TAG for the series name
    op: str  # one of OPERATORS
    value: str


@dataclass(frozen=True)
class Selector:
    text: str
    matchers: tuple[Matcher, ...]


def parse_selector(text: str, field: str = "match") -> Selector:
    """Parse `name`, `name{matchers}` or `{matchers}`; InvalidInput naming `field` and the position otherwise."""
    if len(text) > MAX_SELECTOR_CHARS:
        raise InvalidInput(f"{field}: selector is over {MAX_SELECTOR_CHARS} characters", field=field)
    brace = text.find("{")
    name = (text if brace < 0 else text[:brace]).strip()
    matchers = [Matcher(NAME_TAG, "=", name)] if name else []
    if brace >= 0:
        if not text.rstrip().endswith("}"):
            raise _bad(field, text, len(text.rstrip()), "expected '}' at the end")
        matchers += _parse_matchers(text, brace + 1, len(text.rstrip()) - 1, field)
    if not matchers:
        raise InvalidInput(f"{field}: selector {text!r} names no series (give a name or at least one matcher)",
                           field=field)
    return Selector(text, tuple(matchers))


def selector_text(matchers: tuple[Matcher, ...]) -> str:
    """`{key op "value", …}`: matchers as parse_selector reads them back (the form peers are asked in)."""
    quoted = (m.value.replace("\\", "\\\\").replace('"', '\\"') for m in matchers)
    return "{" + ",".join(f'{m.key}{m.op}"{value}"' for m, value in zip(matchers, quoted)) + "}"


def _parse_matchers(text: str, pos: int, end: int, field: str) -> list[Matcher]:
    """The comma-separated matchers in text[pos:end] (a trailing comma is allowed, as in PromQL)."""
    matchers = []
    while text[pos:end].strip():
        key_match = _KEY.match(text, pos, end)
        if key_match is None:
            raise _bad(field, text, pos, "expected a tag key")
        pos = key_match.end()
        op = next((op for op in OPERATORS if text.startswith(op, pos, end)), None)
        if op is None:
            raise _bad(field, text, pos, "expected one of =, !=, =~, !~")
        value, pos = _parse_string(text, _skip_spaces(text, pos + len(op), end), end, field)
        key = key_match.group(1)
        if key != NAME_TAG and not TAG_KEY_PATTERN.match(key):
            raise _bad(field, text, key_match.start(1), f"{key!r} is not a valid tag key")
        matchers.append(Matcher(key, op, value))
        pos = _skip_spaces(text, pos, end)
        if pos < end:
            if text[pos] != ",":
                raise _bad(field, text, pos, "expected ',' or '}'")
            pos += 1
    return matchers


def _parse_string(text: str, pos: int, end: int, field: str) -> tuple[str, int]:
    """A quoted value ("…", '…' or `…`, backslash escapes except in backticks); returns it and the next pos."""
    if pos >= end or text[pos] not in "\"'`":
        raise _bad(field, text, pos, "expected a quoted value")
    quote, out, pos = text[pos], [], pos + 1
    while pos < end:
        char = text[pos]
        if char == quote:
            return "".join(out), pos + 1
        if char == "\\" and quote != "`":
            pos += 1
            if pos >= end or text[pos] not in _ESCAPES:
                raise _bad(field, text, pos, "unknown escape in a quoted value")
            char = _ESCAPES[text[pos]]
        out.append(char)
        pos += 1
    raise _bad(field, text, pos, f"unterminated quoted value (missing {quote})")


def _skip_spaces(text: str, pos: int, end: int) -> int:
    while pos < end and text[pos].isspace():
        pos += 1
    return pos


def _bad(field: str, text: str, pos: int, problem: str) -> InvalidInput:
    return InvalidInput(f"{field}: bad selector {text!r} at character {pos + 1}: {problem}", field=field)


def matcher_sql(matcher: Matcher, params: dict, index: int, name_column: str = "name",
                tags_column: str = "tags") -> str:
    """SQL that is true when a series (columns `name`, `tags` MAP) satisfies `matcher`; adds $m{index}.
    Regexes run in DuckDB's RE2, Prometheus' own regex engine, so they take linear time and the same syntax."""
    column = name_column if matcher.key == NAME_TAG else f"coalesce({tags_column}[$k{index}], '')"
    if matcher.key != NAME_TAG:
        params[f"k{index}"] = matcher.key
    params[f"m{index}"] = matcher.value
    return {
        "=": f"{column} = $m{index}",
        "!=": f"{column} <> $m{index}",
        "=~": f"regexp_full_match({column}, $m{index})",
        "!~": f"NOT regexp_full_match({column}, $m{index})",
    }[matcher.op]
