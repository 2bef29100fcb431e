"""Statements with bound parameters (Flight SQL prepared statements) run under the same sandbox limits, and a
parameter stays a value: it never becomes SQL."""

from __future__ import annotations

import pytest

from countdb.errors import LimitExceeded, QueryRejected, QueryTimeout
from countdb.query.sandbox import Sandbox


@pytest.fixture
def sandbox(tmp_path):
    opened = Sandbox(tmp_path, memory_limit_mb=256, timeout_seconds=0.3, max_rows=1000, threads=1)
    yield opened
    opened.close()


def rows(sandbox: Sandbox, sql: str, params: list) -> list[dict]:
    run = sandbox.start()
    try:
        _, batches = run.batches(sql, params=params)
        return [row for batch in batches for row in batch.to_pylist()]
    finally:
        run.close()


def test_a_parameter_is_a_value_not_sql(sandbox):
    assert rows(sandbox, "SELECT ? AS x, $1 = 'x''; SELECT 1' AS same", ["x'; SELECT 1"]) == [
        {"x": "x'; SELECT 1", "same": True}]


def test_a_parameterized_statement_is_stopped_at_the_time_limit(sandbox):
    with pytest.raises(QueryTimeout, match="QUERY_TIMEOUT_SECONDS"):
        rows(sandbox, "SELECT sum(i * i) FROM range(?) t(i)", [10 ** 12])


def test_a_parameterized_statement_is_stopped_at_the_row_limit(sandbox):
    with pytest.raises(LimitExceeded, match="QUERY_MAX_ROWS"):
        rows(sandbox, "SELECT i FROM range(?) t(i)", [1001])
    assert len(rows(sandbox, "SELECT i FROM range(?) t(i)", [1000])) == 1000


def test_a_missing_parameter_is_a_rejected_query(sandbox):
    with pytest.raises(QueryRejected, match="parameter"):
        rows(sandbox, "SELECT ? + ? AS x", [1])
