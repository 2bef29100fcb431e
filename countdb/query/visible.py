"""The visible points of a Scope as one SQL relation: stored points minus shadowed ones, merged with the
unflushed points so that each (series, ts) appears once, the latest write winning; points hidden by a
delete (tombstone) or older than the retention floor are left out. Other cluster nodes' points of series this
node does not hold (Scope.foreign) are added as they are.

Stored points are already unique (the Flusher guarantees it), so only the time window the unflushed points
cover needs the costly de-duplication; everything outside it is scanned as is.

Each condition on a stored point's time sits in the WHERE right over its read_parquet, and never as an OR: DuckDB
pushes a statement's own filters on `ts` into the Parquet scan (skipping row groups by their statistics) only
through plain column projections down to a scan whose other filters on `ts` combine with them by AND. With the
window's two sides as an OR, or a conversion of `ts` above a subquery, a one-hour filter read every row of every
block (measured: 3.4 M rows for the 136 k of the hour), so a dashboard's SQL slowed as the store grew (issue 14 §6).
"""

from __future__ import annotations

import itertools
import re

import duckdb
import pyarrow.compute as pc

from countdb.query.engine import Scope
from countdb.storage.hiding import hide_deleted, hide_shadowed, tombstone_table

_EMPTY = "(SELECT NULL::VARCHAR AS series, NULL::{ts} AS ts, NULL::DOUBLE AS value, NULL::BIGINT AS seq WHERE false)"
_names = itertools.count()


def visible_points(cursor: duckdb.DuckDBPyConnection, scope: Scope, where: str, params: dict,
                   with_seq: bool = False, timestamps: bool = False) -> str:
    """SQL for `(series, ts, value)` of every visible point of `scope` that satisfies `where` (SQL over
    series/ts using $parameters, which are added to `params`), and its write stamp `seq` with `with_seq`
    (what a cluster node sends another). With `timestamps`, `ts` comes as a TIMESTAMP (what SQL users see), converted
    where each point is read, so that their filters on it reach the scans. Registers Arrow tables on `cursor`."""
    names = ("series", "ts", "value", "seq") if with_seq else ("series", "ts", "value")
    columns = ", ".join(names)
    suffix = next(_names)
    tombstones = f"tombstones_{suffix}" if scope.tombstones else None
    if tombstones:
        cursor.register(tombstones, tombstone_table(scope.tombstones))

    def undeleted(alias: str) -> str:
        return hide_deleted(alias, tombstones) if tombstones else ""

    def read(alias: str, wanted: tuple[str, ...] = ("series", "ts", "value", "seq")) -> str:
        return ", ".join(f"make_timestamp_ms({alias}.ts) AS ts" if name == "ts" and timestamps else name
                         for name in wanted)

    def stored(condition: str = "") -> str:
        return _stored(scope, f"({where}){condition}", params, suffix, undeleted("o"), read("o"), timestamps)

    foreign = ""
    if scope.foreign is not None and scope.foreign.num_rows:
        cursor.register(f"foreign_{suffix}", scope.foreign)
        foreign = f" UNION ALL SELECT {read('f', names)} FROM foreign_{suffix} f WHERE {where}"
    unflushed = scope.unflushed
    if unflushed.num_rows == 0:
        return f"(SELECT {columns} FROM {stored()} p{foreign})"
    table = f"unflushed_{suffix}"
    cursor.register(table, unflushed)
    low, high = (v.as_py() for v in pc.min_max(unflushed["ts"]).values())
    params[f"ulow{suffix}"], params[f"uhigh{suffix}"] = low, high
    before, after = stored(f" AND o.ts < $ulow{suffix}"), stored(f" AND o.ts > $uhigh{suffix}")
    within = stored(f" AND o.ts BETWEEN $ulow{suffix} AND $uhigh{suffix}")
    return f"""(
        SELECT {columns} FROM {before} p
        UNION ALL
        SELECT {columns} FROM {after} p
        UNION ALL
        SELECT {columns} FROM (
            SELECT series, ts, value, seq, -1 AS pos FROM {within} p
            UNION ALL
            SELECT {read("u")}, pos FROM {table} u{undeleted("u")} WHERE {where}
        ) QUALIFY row_number() OVER (PARTITION BY series, ts ORDER BY seq DESC, pos DESC) = 1{foreign}
    )"""


def _stored(scope: Scope, where: str, params: dict, suffix: int, undeleted: str, columns: str,
            timestamps: bool) -> str:
    if not scope.files:
        return _EMPTY.format(ts="TIMESTAMP" if timestamps else "BIGINT")
    params[f"files{suffix}"] = scope.files
    hiding = undeleted
    if scope.shadows:
        params[f"shadows{suffix}"] = scope.shadows
        hiding = hide_shadowed("o", f"shadows{suffix}") + hiding
    sql = f"(SELECT {columns} FROM read_parquet($files{suffix}) o{hiding} WHERE {where}"
    if scope.floor_ms:
        params[f"floor{suffix}"] = scope.floor_ms
        sql += f" AND o.ts >= $floor{suffix}"
    return sql + ")"


def used_params(sql: str, params: dict) -> dict:
    """Only the parameters `sql` mentions: DuckDB refuses a statement given more than it uses."""
    mentioned = set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", sql))
    return {name: value for name, value in params.items() if name in mentioned}
