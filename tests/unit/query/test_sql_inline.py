"""Count's own values inlined into view SQL: quoted so DuckDB reads back exactly the value given."""

from __future__ import annotations

import duckdb
import pytest

from countdb.query.sandbox import sql_literal
from countdb.query.sql import inline_params


@pytest.mark.parametrize("value", ["plain", "it's", "''", "/data/time_blocks/2024-01/a'b.parquet", "ü\\n", 0,
                                   -5, 2**62, ["a", "b'c"], []])
def test_a_literal_reads_back_as_its_value(value):
    assert duckdb.sql(f"SELECT {sql_literal(value)}").fetchall() == [(value,)]


def test_other_types_have_no_literal():
    with pytest.raises(TypeError):
        sql_literal(True)
    with pytest.raises(TypeError):
        sql_literal(1.5)


def test_each_parameter_is_replaced_by_its_own_name():
    sql = inline_params("SELECT $files1, $files10, $low", {"files1": ["x"], "files10": ["y"], "low": 3})
    assert sql == "SELECT ['x'], ['y'], 3"
