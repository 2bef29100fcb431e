"""Whether a SQL statement can run on each cluster node over the series that node answers for, the answers
simply concatenated: a single SELECT over `points` grouped by the bare `series` column (so no group mixes two
series), with nothing that looks across groups (ORDER BY, LIMIT, DISTINCT, windows, subqueries, grouping sets).

Invariant: a statement is only ever called splittable when the concatenation is exactly its answer over all
points; anything this module does not recognise is not splittable (the caller then reads every point here).
"""

from __future__ import annotations

import duckdb
import orjson

_CROSS_GROUP_CLASSES = {"SUBQUERY", "WINDOW"}


def splits_by_series(cursor: duckdb.DuckDBPyConnection, sql: str) -> bool:
    """True when `sql`'s answer over all points is the union of its answers over disjoint sets of series."""
    try:
        parsed = orjson.loads(cursor.execute("SELECT json_serialize_sql($sql)", {"sql": sql}).fetchone()[0])
    except (duckdb.Error, orjson.JSONDecodeError, TypeError):
        return False
    statements = parsed.get("statements") or []
    if parsed.get("error") or len(statements) != 1:
        return False
    node = statements[0].get("node", {})
    source = node.get("from_table") or {}
    return (node.get("type") == "SELECT_NODE" and not node.get("modifiers") and not node.get("cte_map", {}).get("map")
            and source.get("type") == "BASE_TABLE" and source.get("table_name") == "points"
            and source.get("schema_name") in ("", "main", "temp") and not source.get("sample")
            and node.get("sample") is None and node.get("qualify") is None
            and _grouped_by_series(node, source.get("alias") or "points") and not _looks_across_groups(node))


def _grouped_by_series(node: dict, table: str) -> bool:
    if node.get("aggregate_handling") == "FORCE_AGGREGATES":  # GROUP BY ALL: the non-aggregate select items
        return any(_is_series(item, table) for item in node.get("select_list", []))
    keys = node.get("group_expressions", [])
    sets = node.get("group_sets", [])
    series_keys = {index for index, key in enumerate(keys) if _is_series(key, table)}
    return len(sets) == 1 and bool(series_keys & set(sets[0]))


def _is_series(expression: dict, table: str) -> bool:
    """A bare reference to the `series` column (a group key of one series), as `series` or `<table>.series`."""
    names = tuple(expression.get("column_names", ()))
    return expression.get("class") == "COLUMN_REF" and names in (("series",), (table, "series"))


def _looks_across_groups(tree) -> bool:
    if isinstance(tree, dict):
        if tree.get("class") in _CROSS_GROUP_CLASSES or str(tree.get("type", "")).startswith("WINDOW"):
            return True
        return any(_looks_across_groups(value) for value in tree.values())
    if isinstance(tree, list):
        return any(_looks_across_groups(value) for value in tree)
    return False
