"""The visible points of a Scope as one SQL relation: stored points minus shadowed ones, merged with the
unflushed points so that each (series, ts) appears once, the latest write winning; points hidden by a
delete (tombstone) or older than the retention floor are left out. Other cluster nodes' points of series this
node does not hold (Scope.foreign) are added as they are.

Stored points are already unique (the Flusher guarantees it), so only the time window the unflushed points
cover needs the costly de-duplication; everything outside it is scanned as is.
"""

from __future__ import annotations

import itertools
import re

import duckdb
import pyarrow.compute as pc

from countdb.query.engine import Scope
from countdb.storage.hiding import not_deleted, not_shadowed, tombstone_table

_EMPTY = "(SELECT NULL::VARCHAR AS series, NULL::BIGINT AS ts, NULL::DOUBLE AS value, NULL::BIGINT AS seq WHERE false)"
_names = itertools.count()


def visible_points(cursor: duckdb.DuckDBPyConnection, scope: Scope, where: str, params: dict,
                   with_seq: bool = False) -> str:
    """SQL for `(series, ts, value)` of every visible point of `scope` that satisfies `where` (SQL over
    series/ts using $parameters, which are added to `params`), and its write stamp `seq` with `with_seq`
    (what a cluster node sends another). Registers Arrow tables on `cursor`."""
    columns = "series, ts, value, seq" if with_seq else "series, ts, value"
    suffix = next(_names)
    tombstones = f"tombstones_{suffix}" if scope.tombstones else None
    if tombstones:
        cursor.register(tombstones, tombstone_table(scope.tombstones))

    def undeleted(alias: str) -> str:
        return f" AND {not_deleted(alias, tombstones)}" if tombstones else ""

    stored = _stored(scope, where, params, suffix, undeleted("o"))
    foreign = ""
    if scope.foreign is not None and scope.foreign.num_rows:
        cursor.register(f"foreign_{suffix}", scope.foreign)
        foreign = f" UNION ALL SELECT {columns} FROM foreign_{suffix} f WHERE {where}"
    unflushed = scope.unflushed
    if unflushed.num_rows == 0:
        return f"(SELECT {columns} FROM {stored} p{foreign})"
    table = f"unflushed_{suffix}"
    cursor.register(table, unflushed)
    low, high = (v.as_py() for v in pc.min_max(unflushed["ts"]).values())
    params[f"ulow{suffix}"], params[f"uhigh{suffix}"] = low, high
    return f"""(
        SELECT {columns} FROM {stored} p WHERE ts < $ulow{suffix} OR ts > $uhigh{suffix}
        UNION ALL
        SELECT {columns} FROM (
            SELECT series, ts, value, seq, -1 AS pos FROM {stored} p WHERE ts BETWEEN $ulow{suffix} AND $uhigh{suffix}
            UNION ALL
            SELECT series, ts, value, seq, pos FROM {table} u WHERE {where}{undeleted("u")}
        ) QUALIFY row_number() OVER (PARTITION BY series, ts ORDER BY seq DESC, pos DESC) = 1{foreign}
    )"""


def _stored(scope: Scope, where: str, params: dict, suffix: int, undeleted: str) -> str:
    if not scope.files:
        return _EMPTY
    params[f"files{suffix}"] = scope.files
    sql = f"(SELECT series, ts, value, seq FROM read_parquet($files{suffix}) o WHERE {where}"
    if scope.floor_ms:
        params[f"floor{suffix}"] = scope.floor_ms
        sql += f" AND o.ts >= $floor{suffix}"
    if scope.shadows:
        params[f"shadows{suffix}"] = scope.shadows
        sql += " AND " + not_shadowed("o", f"shadows{suffix}")
    return sql + undeleted + ")"


def used_params(sql: str, params: dict) -> dict:
    """Only the parameters `sql` mentions: DuckDB refuses a statement given more than it uses."""
    mentioned = set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", sql))
    return {name: value for name, value in params.items() if name in mentioned}
