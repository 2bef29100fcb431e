"""Selector parsing (pure) and matcher semantics evaluated by real DuckDB over a small series table."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from countdb.errors import InvalidInput
from countdb.query.selectors import NAME_TAG, Matcher, matcher_sql, parse_selector

M = Matcher


@pytest.mark.parametrize("text, matchers", [
    ("cpu", [M(NAME_TAG, "=", "cpu")]),
    ("  cpu.usage_user ", [M(NAME_TAG, "=", "cpu.usage_user")]),
    ('cpu{host="h1"}', [M(NAME_TAG, "=", "cpu"), M("host", "=", "h1")]),
    ('cpu{ region = "eu" , host=~"h1.*", dc!="x", rack!~\'r[0-9]\', }',
     [M(NAME_TAG, "=", "cpu"), M("region", "=", "eu"), M("host", "=~", "h1.*"), M("dc", "!=", "x"),
      M("rack", "!~", "r[0-9]")]),
    ('{__name__=~"cpu|mem", job="node"}', [M(NAME_TAG, "=~", "cpu|mem"), M("job", "=", "node")]),
    ('x{path="a\\"b\\\\c\\n"}', [M(NAME_TAG, "=", "x"), M("path", "=", 'a"b\\c\n')]),
    ("x{re=`a\\d+`}", [M(NAME_TAG, "=", "x"), M("re", "=", "a\\d+")]),
    ('x{v=""}', [M(NAME_TAG, "=", "x"), M("v", "=", "")]),
    ('x{a="1,2}"}', [M(NAME_TAG, "=", "x"), M("a", "=", "1,2}")]),
])
def test_selectors_parse_into_matchers(text, matchers):
    assert list(parse_selector(text).matchers) == matchers


@pytest.mark.parametrize("text, problem", [
    ("", "names no series"),
    ("{}", "names no series"),
    ("  ", "names no series"),
    ('cpu{host="h1"', "expected '}'"),
    ('cpu{host~"h1"}', "expected one of"),
    ('cpu{host=h1}', "expected a quoted value"),
    ('cpu{host="h1}', "unterminated"),
    ('cpu{="h1"}', "expected a tag key"),
    ('cpu{host="h1" region="eu"}', "expected ',' or '}'"),
    ('cpu{host="\\q"}', "unknown escape"),
    ('cpu{9host="a"}', "expected a tag key"),
    ("x" * 5000, "over 4096 characters"),
])
def test_bad_selectors_name_the_field_and_the_problem(text, problem):
    with pytest.raises(InvalidInput) as caught:
        parse_selector(text)
    assert caught.value.field == "match" and caught.value.message.startswith("match:")
    assert problem in caught.value.message


def test_the_error_gives_the_position_of_the_problem():
    with pytest.raises(InvalidInput, match="at character 9"):
        parse_selector('cpu{host~"h1"}')


SERIES = pa.table({
    "name": ["cpu", "cpu", "cpu", "mem"],
    "tags": pa.array([[("host", "h1"), ("region", "eu")], [("host", "h10")], [], [("host", "h1")]],
                     pa.map_(pa.string(), pa.string())),
    "id": [0, 1, 2, 3],
})


def matching(text: str) -> list[int]:
    params: dict = {}
    where = " AND ".join(matcher_sql(m, params, i) for i, m in enumerate(parse_selector(text).matchers))
    connection = duckdb.connect()
    connection.register("series", SERIES)
    rows = connection.sql(f"SELECT id FROM series WHERE {where} ORDER BY id", params=params).fetchall()
    return [row[0] for row in rows]


@pytest.mark.parametrize("text, ids", [
    ("cpu", [0, 1, 2]),
    ('cpu{host="h1"}', [0]),
    ('{host="h1"}', [0, 3]),
    ('cpu{host=~"h1"}', [0]),            # anchored: h10 does not match h1
    ('cpu{host=~"h1.*"}', [0, 1]),
    ('cpu{host!~"h1"}', [1, 2]),         # an absent tag is "" and "" !~ h1
    ('cpu{host=""}', [2]),               # absent tag matches the empty string
    ('cpu{host!=""}', [0, 1]),
    ('cpu{region!="eu"}', [1, 2]),
    ('{__name__=~"c.*|mem", host="h1"}', [0, 3]),
    ('{__name__!="cpu"}', [3]),
])
def test_matchers_follow_prometheus_semantics(text, ids):
    assert matching(text) == ids
