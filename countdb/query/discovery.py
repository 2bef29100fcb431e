"""Which series exist: selector matching over the series index plus the unflushed series, tag keys and values.

Invariant: a series is listed when the catalog's series table or the snapshot's unflushed points hold it, so
a just-written series is discoverable at once; its extent is the widest the two report.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from countdb.errors import InvalidInput, LimitExceeded
from countdb.query.engine import QueryEngine, Snapshot
from countdb.query.selectors import NAME_TAG, Selector, matcher_sql
from countdb.query.series_index import SERIES_SCHEMA, series_of
from countdb.query.visible import used_params

_MATCH = """
    SELECT series, any_value(name) AS name, any_value(tags) AS tags,
           min(first_ts) AS first_ts, max(last_ts) AS last_ts
    FROM ({candidates}) c WHERE {where}
    GROUP BY series HAVING min(first_ts) <= $end AND max(last_ts) >= $start
    ORDER BY series
"""


def match_series(engine: QueryEngine, selector: Selector | None, start_ms: int = 0, end_ms: int = 2**62,
                 snapshot: Snapshot | None = None, max_series: int | None = None) -> pa.Table:
    """Series (SERIES_SCHEMA, by key) that satisfy `selector` (all when None) and whose extent overlaps
    [start_ms, end_ms]. InvalidInput for a regex RE2 refuses; LimitExceeded past `max_series`."""
    snapshot = snapshot or engine.snapshot()
    tables = {"stored_series": engine.series_index.stored()}
    candidates = "SELECT * FROM stored_series"
    listings = [engine.series_index.unflushed(snapshot.unflushed)]
    if snapshot.foreign is not None:
        listings.append(series_of(snapshot.foreign))
    for index, listed in enumerate(listings):
        if listed.num_rows:
            tables[f"unflushed_series{index}"] = listed
            candidates += f" UNION ALL SELECT * FROM unflushed_series{index}"
    params: dict = {"start": start_ms, "end": end_ms}
    matchers = selector.matchers if selector else ()
    where = " AND ".join(matcher_sql(m, params, i) for i, m in enumerate(matchers)) or "true"
    cursor = engine.cursor()
    try:
        _check_regexes(cursor, selector)
        for name, table in tables.items():
            cursor.register(name, table)
        sql = _MATCH.format(candidates=candidates, where=where)
        matched = cursor.sql(sql, params=used_params(sql, params)).to_arrow_table().cast(SERIES_SCHEMA)
    finally:
        cursor.close()
    if max_series is not None and matched.num_rows > max_series:
        raise LimitExceeded(f"match: {selector.text if selector else 'all'!r} selects {matched.num_rows} series, "
                            f"over the limit of {max_series} (QUERY_MAX_SERIES); narrow the selector",
                            limit="query_max_series", maximum=max_series)
    return matched


def _check_regexes(cursor: duckdb.DuckDBPyConnection, selector: Selector | None) -> None:
    for matcher in selector.matchers if selector else ():
        if matcher.op in ("=~", "!~"):
            try:
                cursor.execute("SELECT regexp_full_match('', $re)", {"re": matcher.value}).fetchall()
            except duckdb.InvalidInputException as error:
                problem = str(error).removeprefix("Invalid Input Error: ")
                raise InvalidInput(f"match: bad regex {matcher.value!r} for {matcher.key}: {problem}",
                                   field="match") from None


def tag_keys(series: pa.Table) -> pa.Table:
    """Distinct tag keys of `series` (a match_series result), sorted, as a table with one column `tag`."""
    keys = series["tags"].combine_chunks().keys if series.num_rows else pa.array([], pa.string())
    return pa.table({"tag": pc.unique(keys).sort()})


def tag_values(series: pa.Table, key: str) -> pa.Table:
    """Distinct values of tag `key` (NAME_TAG: the series names) among `series`, sorted, as column `value`."""
    if key == NAME_TAG:
        values = series["name"]
    elif series.num_rows:
        values = pc.map_lookup(series["tags"], pa.scalar(key), "first")
    else:
        values = pa.chunked_array([], pa.string())
    return pa.table({"value": pc.unique(pc.drop_null(values)).sort()})
