"""The PromQL parser: precedence and associativity as in Prometheus, selectors and modifiers, and refusals that
name the construct (the HTTP answers are checked in tests/server/test_prometheus_query_api.py)."""

from __future__ import annotations

import pytest

from countdb.errors import InvalidInput
from countdb.query.promql import ast
from countdb.query.promql.parser import parse_duration_ms, parse_promql
from countdb.query.selectors import Matcher


def test_power_binds_tighter_than_unary_minus_and_is_right_associative():
    assert parse_promql("-2 ^ 2") == ast.Unary(ast.Binary("^", ast.Number(2.0), ast.Number(2.0), None))
    assert parse_promql("2 ^ 3 ^ 2").rhs == ast.Binary("^", ast.Number(3.0), ast.Number(2.0), None)


def test_multiplication_before_addition_before_comparison():
    node = parse_promql("1 + 2 * 3 > bool 4")
    assert node.op == ">" and node.bool_modifier and node.lhs.op == "+" and node.lhs.rhs.op == "*"


def test_selector_with_every_matcher_type_range_and_offset():
    node = parse_promql('rate(x{a="1", b!="2", c=~"3|4", d!~`5.*`}[90s] offset 1h30m)')
    matrix = node.args[0]
    assert matrix.range_ms == 90_000 and matrix.vector.offset_ms == 5_400_000
    assert matrix.vector.matchers == (Matcher("__name__", "=", "x"), Matcher("a", "=", "1"),
                                      Matcher("b", "!=", "2"), Matcher("c", "=~", "3|4"), Matcher("d", "!~", "5.*"))


def test_aggregation_modifiers_before_or_after_and_matching_clauses():
    assert parse_promql("sum(x) by (a, b)") == parse_promql("sum by (a, b) (x)")
    node = parse_promql("a / ignoring(cpu) group_left(team) b")
    assert node.matching == ast.Matching(False, ("cpu",), "left", ("team",))


@pytest.mark.parametrize("text, words", [
    ("a or b", "'or' operator"), ("a unless b", "'unless' operator"), ("x[5m:1m]", "subquery"),
    ("x @ 1", "@ modifier"), ("absent(x)", "absent()"), ('{a=""}', "non-empty matcher"),
    ("sum(x", "expected ')'"), ("rate(x)", "range vector"), ("x{a=1}", "expected a string"),
    ("round(x, 1, 2)", "takes 2 argument"),
])
def test_refusals_say_what_is_wrong(text, words):
    with pytest.raises(InvalidInput) as caught:
        parse_promql(text)
    assert words in caught.value.message


def test_durations():
    assert parse_duration_ms("1h30m") == 5_400_000 and parse_duration_ms("250ms") == 250
    with pytest.raises(InvalidInput):
        parse_duration_ms("5")
