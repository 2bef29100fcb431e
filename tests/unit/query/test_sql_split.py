"""Which statements split by series (query/sql_split.py): only those whose answer over all points is the union
of their answers over disjoint sets of series. Anything else must read every point on one node."""

import duckdb
import pytest

from countdb.query.sql_split import splits_by_series

SPLIT = [
    "SELECT series, avg(value) FROM points GROUP BY series",
    "select series, avg(value) a from points where ts > now() - interval 1 day group by all having count(*) > 1",
    "SELECT series, name, max(value) FROM points GROUP BY series, name",
    "SELECT points.series, max(value) FROM points GROUP BY points.series",
    "SELECT p.series, max(value) FROM points p GROUP BY p.series",
    "SELECT series, avg(value) FROM points GROUP BY series, value",
]
NOT_SPLIT = [
    "SELECT name, avg(value) FROM points GROUP BY name",  # a name's groups span series
    "SELECT series, avg(value) FROM points GROUP BY series ORDER BY 2 LIMIT 3",
    "SELECT count(*) FROM points",
    "SELECT * FROM points WHERE value > 1",  # no grouping: not recognised, though rows would split
    "SELECT series, avg(value) FROM points GROUP BY ROLLUP(series)",
    "SELECT series, count(*) FROM points GROUP BY GROUPING SETS ((series), ())",
    "SELECT series, avg(value) OVER () FROM points GROUP BY series, value",
    "SELECT series, (SELECT count(*) FROM points) FROM points GROUP BY series",
    "SELECT DISTINCT series, count(*) FROM points GROUP BY series",
    "SELECT series, count(*) FROM series GROUP BY series",
    "SELECT s.series, count(*) FROM points p, points s GROUP BY s.series",
    "SELECT q.series, count(*) FROM points p GROUP BY q.series",
    "SELECT substr(series, 1, 3), count(*) FROM points GROUP BY ALL",
    "SELECT name AS series, count(*) FROM points GROUP BY ALL",
    "SELECT series, count(*) FROM points p JOIN series s ON s.key = p.series GROUP BY series",
    "WITH x AS (SELECT * FROM points) SELECT series, count(*) FROM x GROUP BY series",
    "SELECT series, count(*) FROM points GROUP BY series UNION ALL SELECT 'x', 1",
    "SELECT series, count(*) FROM points GROUP BY series; SELECT 1",
    "SELECT series, count(*) FROM read_parquet('x') GROUP BY series",
    "not sql at all",
]


@pytest.fixture(scope="module")
def cursor():
    connection = duckdb.connect()
    yield connection
    connection.close()


@pytest.mark.parametrize("sql", SPLIT)
def test_a_statement_grouped_by_the_bare_series_column_splits(cursor, sql):
    assert splits_by_series(cursor, sql)


@pytest.mark.parametrize("sql", NOT_SPLIT)
def test_a_statement_that_looks_across_series_or_is_not_recognised_does_not_split(cursor, sql):
    assert not splits_by_series(cursor, sql)
